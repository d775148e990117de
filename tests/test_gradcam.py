"""Notebook 2 (helpers/gradcam.py, checks/gradcam.py): the reference solution against Captum and written-out
formulas, the model left untouched, and the checks' verdicts for typical mistakes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from checks import gradcam as checks
from checks.core import _hook_count
from helpers import gradcam
from helpers.images import load_photos
from helpers.model import get_layer

SIZE = 96  # small and fast: head map 3 x 3, block10 map 6 x 6; `model` is the session fixture (conftest.py)


@pytest.fixture(scope="module")
def batch():
    images, _, _ = load_photos(["chelsea", "coffee"], size=SIZE)
    return images, torch.tensor([281, 967])


def relu_modules(model):
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


def set_inplace(model, value: bool) -> None:
    for m in relu_modules(model):
        m.inplace = value


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


# ------------------------------------------------------------------ the reference solution is right

def test_guided_backprop_equals_captum(model, batch):
    from captum.attr import GuidedBackprop

    images, labels = batch
    ours = gradcam.guided_backprop(model, images, labels)
    theirs = GuidedBackprop(model).attribute(images.clone(), target=labels).detach()
    assert ours.shape == images.shape and ours.dtype == images.dtype
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    assert rel_err(ours, plain_gradient(model, images, labels)) > 0.1  # the hooks really changed something


def test_guided_backprop_with_inplace_activations(model, batch):
    from captum.attr import GuidedBackprop

    images, labels = batch
    expected = gradcam.guided_backprop(model, images, labels)
    set_inplace(model, True)
    try:
        ours = gradcam.guided_backprop(model, images, labels)
        theirs = GuidedBackprop(model).attribute(images.clone(), target=labels).detach()
    finally:
        set_inplace(model, False)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    torch.testing.assert_close(theirs, expected, rtol=1e-6, atol=1e-7)


def test_guided_backprop_matches_the_formula_on_a_tiny_net():
    # x -> W1 x + b1 -> ReLU -> W2 h: guided grad = W1^T [ (W1 x + b1 > 0) * relu(W2[c]) ].
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).eval()
    x = torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 1])
    pre = net[0](x)
    w1, w2 = net[0].weight.detach(), net[2].weight.detach()
    expected = ((pre > 0).float() * w2[labels].clamp(min=0)) @ w1
    torch.testing.assert_close(gradcam.guided_backprop(net, x, labels), expected)


def test_grad_cam_equals_captum_layer_grad_cam(model, batch):
    from captum.attr import LayerAttribution, LayerGradCam

    images, labels = batch
    for layer in ("head", "block10"):
        raw = gradcam.grad_cam(model, images, labels, layer=layer, normalize=False)
        small = LayerGradCam(model, get_layer(model, layer)).attribute(images, target=labels,
                                                                        relu_attributions=True)
        theirs = LayerAttribution.interpolate(small, (SIZE, SIZE), "bilinear")[:, 0].detach()
        assert raw.shape == (2, SIZE, SIZE)
        assert rel_err(raw, theirs) < 1e-5, layer


def test_grad_cam_matches_the_written_out_formula(model, batch):
    images, labels = batch
    x = images.clone().requires_grad_()
    feats = model.features(x)  # the "head" layer's output, (N, 1280, 3, 3)
    logits = model._fc(model._avg_pooling(feats).flatten(1))
    (grads,) = torch.autograd.grad(logits.gather(1, labels[:, None]).sum(), feats)
    cam = torch.einsum("nc,nchw->nhw", grads.mean(dim=(2, 3)), feats).relu()
    expected = F.interpolate(cam[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    expected = expected / expected.flatten(1).amax(1).view(-1, 1, 1)
    normalized = gradcam.grad_cam(model, images, labels)
    assert rel_err(normalized, expected.detach()) < 1e-5
    assert normalized.min() >= 0 and torch.allclose(normalized.flatten(1).amax(1), torch.ones(2))


def test_grad_cam_all_zero_map_stays_zero():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        net[4].weight.zero_()  # no evidence for any class: the gradient is zero everywhere
    cam = gradcam.grad_cam(net, torch.rand(1, 3, 8, 8), torch.tensor([0]), layer=net[1])
    assert torch.equal(cam, torch.zeros(1, 8, 8))


def test_guided_grad_cam_equals_captum_with_bilinear(model, batch):
    from captum.attr import GuidedGradCam

    images, labels = batch
    ours = gradcam.guided_grad_cam(model, images, labels)
    gc = GuidedGradCam(model, get_layer(model, "head"))
    bilinear = gc.attribute(images, target=labels, interpolate_mode="bilinear").detach()
    nearest = gc.attribute(images, target=labels).detach()  # Captum's default upsampling
    assert rel_err(ours, bilinear) < 1e-5
    assert rel_err(ours, nearest) > 1e-2  # the documented difference


def test_model_left_untouched(model, batch):
    images, labels = batch
    images = images.clone()
    before = model(images)
    flags = [p.requires_grad for p in model.parameters()]
    for fn in (gradcam.guided_backprop, gradcam.grad_cam, gradcam.guided_grad_cam):
        with torch.no_grad():  # must work even when called under no_grad
            out = fn(model, images, labels)
        assert not out.requires_grad and out.device == images.device
        assert _hook_count(model) == 0
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())
        assert not images.requires_grad and images.grad is None
    torch.testing.assert_close(model(images), before, rtol=0, atol=0)


def test_hooks_removed_when_the_forward_raises(model, batch):
    images, labels = batch
    failing = checks._FailingForward(model)
    with pytest.raises(checks._Interrupted):
        gradcam.guided_backprop(failing, images, labels)
    with pytest.raises(checks._Interrupted):
        gradcam.grad_cam(failing, images, labels, layer=get_layer(model, "head"))
    assert _hook_count(model) == 0


def test_side_by_side_and_mass_in_columns():
    left, right = torch.zeros(3, 50, 80), torch.ones(3, 60, 40)
    both = gradcam.side_by_side(left, right, size=32)
    assert both.shape == (3, 32, 32)
    assert both[:, :, :16].abs().max() < 1e-6 and (both[:, :, 16:] - 1).abs().max() < 1e-6
    maps = torch.zeros(2, 4, 4)
    maps[0, :, :2] = 1.0
    maps[1, 0, 3] = 2.0
    torch.testing.assert_close(gradcam.mass_in_columns(maps, 0, 2), torch.tensor([1.0, 0.0]))


# ------------------------------------------------------------------ the checks

def plain_gradient(model, images, labels):
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    return grad


def deconvnet(model, images, labels):
    from captum.attr import Deconvolution

    return Deconvolution(model).attribute(images.clone(), target=labels).detach()


def full_backward_hooks(model, images, labels):
    """Right on a model with out-of-place activations; raises on in-place ones."""
    handles = [m.register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(min=0),))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        x = images.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    finally:
        for h in handles:
            h.remove()
    return grad


def clamp_output_grad(module, inputs, output):
    output.register_hook(lambda grad: grad.clamp(min=0))


def returns_the_handle(module, inputs, output):
    return output.register_hook(lambda grad: grad.clamp(min=0))  # replaces the module's output


def hooks_without_finally(model, images, labels):
    handles = [m.register_forward_hook(clamp_output_grad) for m in model.modules() if isinstance(m, nn.ReLU)]
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    for h in handles:
        h.remove()
    return grad


def hook_returns_handle(model, images, labels):
    handles = [m.register_forward_hook(returns_the_handle) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        x = images.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    finally:
        for h in handles:
            h.remove()
    return grad


def hooks_left_behind(model, images, labels):
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(clamp_output_grad)
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    return grad


@pytest.mark.parametrize("wrong, expected_words", [
    (plain_gradient, "plain gradient"),
    (deconvnet, "deconvnet"),
    (full_backward_hooks, "full backward hooks cannot handle in-place"),
    (hooks_without_finally, "finally"),
    (hooks_left_behind, "hooks were left registered"),
    (hook_returns_handle, "return value replaces"),
])
def test_guided_backprop_check_names_the_mistake(model, wrong, expected_words, capsys):
    verdict = checks.check_guided_backprop(wrong, model=model)
    line = capsys.readouterr().out.strip()
    assert not verdict.passed and line == verdict.line and line.startswith("FAIL guided_backprop")
    assert expected_words in line
    assert _hook_count(model) == 0 and not any(m.inplace for m in relu_modules(model))  # cleaned up


def captum_cam(relu=True, mode="bilinear", normalize_anyway=None, fixed_layer=None):
    """A Grad-CAM built from Captum with one deliberate mistake."""
    from captum.attr import LayerAttribution, LayerGradCam

    def wrong(model, images, labels, layer="head", normalize=True):
        layer = fixed_layer or layer
        small = LayerGradCam(model, get_layer(model, layer)).attribute(images, target=labels, relu_attributions=relu)
        cam = LayerAttribution.interpolate(small, tuple(images.shape[-2:]), mode)[:, 0].detach()
        if normalize if normalize_anyway is None else normalize_anyway:
            cam = cam / cam.flatten(1).amax(1).view(-1, 1, 1)
        return cam

    return wrong


@pytest.mark.parametrize("wrong, expected_words", [
    (captum_cam(relu=False), "ReLU is missing"),
    (captum_cam(mode="nearest"), "'nearest'"),
    (captum_cam(normalize_anyway=False), "not normalized"),
    (captum_cam(fixed_layer="head"), "layer argument is ignored"),
    (lambda model, images, labels, **kw: gradcam.grad_cam(model, images, labels, **kw)[:, None],
     "drop the channel dimension"),
])
def test_grad_cam_check_names_the_mistake(model, wrong, expected_words, capsys):
    verdict = checks.check_grad_cam(wrong, model=model)
    line = capsys.readouterr().out.strip()
    assert not verdict.passed and line.startswith("FAIL grad_cam") and expected_words in line, line


def test_grad_cam_check_wants_finally(model, capsys):
    def hook_without_finally(model, images, labels, layer="head", normalize=True):
        module = get_layer(model, layer) if isinstance(layer, str) else layer
        handle = module.register_forward_hook(lambda module, inputs, output: None)
        model(images)  # the check's interrupted forward pass raises here
        handle.remove()
        return gradcam.grad_cam(model, images, labels, layer=layer, normalize=normalize)

    verdict = checks.check_grad_cam(hook_without_finally, model=model)
    assert not verdict.passed and "finally" in capsys.readouterr().out
    assert _hook_count(model) == 0


def test_guided_grad_cam_check_names_normalized_cam(model, capsys):
    def with_normalized_cam(model, images, labels, layer="head"):
        cam = gradcam.grad_cam(model, images, labels, layer=layer)
        return gradcam.guided_backprop(model, images, labels) * cam[:, None]

    verdict = checks.check_guided_grad_cam(with_normalized_cam, model=model)
    assert not verdict.passed and "normalize=False" in capsys.readouterr().out



def test_checks_say_not_implemented_for_a_stub_and_leave_no_hooks(model):
    def stub(*args, **kwargs):
        raise NotImplementedError("write your code")

    for check in checks.CHECKS.values():
        verdict = check(stub, model=model)
        assert not verdict.passed and "not implemented yet" in verdict.line, verdict.line
    assert _hook_count(model) == 0
