"""Notebook 2 (helpers/gradcam.py): the reference solution against Captum and written-out formulas, the model
left untouched (also when its forward pass raises), and the composite's mass measure
(convlens/attribution.py). The checks are tested with the check framework."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.attribution import mass_in_columns
from convlens.images import load_photos
from convlens.model import get_layer
from helpers import gradcam

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


def hook_count(model) -> int:
    """Every hook registered on the model and its submodules (forward, forward-pre, backward, backward-pre)."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, kind)) for m in model.modules() for kind in kinds)


class Interrupted(RuntimeError):
    pass


class FailingForward(nn.Module):
    """Runs the classifier (so the hooks on it fire), then raises."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images):
        self.net(images)
        raise Interrupted("forward pass interrupted on purpose")


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
        assert hook_count(model) == 0
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())
        assert not images.requires_grad and images.grad is None
    torch.testing.assert_close(model(images), before, rtol=0, atol=0)


def test_hooks_removed_when_the_forward_raises(model, batch):
    images, labels = batch
    failing = FailingForward(model)
    with pytest.raises(Interrupted):
        gradcam.guided_backprop(failing, images, labels)
    with pytest.raises(Interrupted):
        gradcam.grad_cam(failing, images, labels, layer=get_layer(model, "head"))
    assert hook_count(model) == 0


def test_hook_count_sees_a_hook_left_behind(model):
    # hook_count must not be blind, or the two tests above pass for any code.
    handle = get_layer(model, "block3").register_forward_hook(lambda module, inputs, output: None)
    try:
        assert hook_count(model) == 1
    finally:
        handle.remove()
    assert hook_count(model) == 0


def test_mass_in_columns():
    maps = torch.zeros(2, 4, 4)
    maps[0, :, :2] = 1.0
    maps[1, 0, 3] = 2.0
    torch.testing.assert_close(mass_in_columns(maps, 0, 2), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(mass_in_columns(maps, 3, 4), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(mass_in_columns(torch.zeros(1, 2, 2), 0, 1), torch.tensor([0.0]))  # no 0 / 0


# ------------------------------------------------------------------ independent versions used above

def plain_gradient(model, images, labels):
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    return grad
