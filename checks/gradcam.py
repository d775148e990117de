"""Checks for notebook 2 (helpers/gradcam.py): guided backprop, Grad-CAM, guided Grad-CAM.

Each check runs the student's function on two saved images, compares with the reference output, and also
makes sure the model is left untouched: no hooks (also when the forward pass raises), the same
``requires_grad`` flags, no ``.grad``. Guided backprop is run a second time with in-place activations.
Whatever a student's function leaves behind (hooks, in-place flags) is cleaned up after the check, so one
broken attempt does not spoil the next cells.

The reference file also holds a few outputs of typical mistakes, made with Captum and plain autograd (not
with the hand-written solution), so a FAIL line can name the likely cause.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from checks.core import HOOK_DICTS, Verdict, compare, hook_count, model_or_default, relative_error, report, run
from checks.references import case

TOPIC = "gradcam"
SIZE = 128
# Image 0 is chelsea, image 1 chelsea and coffee side by side (each squeezed to half the width). Targets: 'tabby'
# and 'espresso', neither of which is the model's top class for its image here, so explaining the predicted
# class fails; and the composite's raw 'espresso' map is negative over the cat, so a missing ReLU shows.
LABELS = (281, 967)
CAM_LAYERS = {"grad_cam": "head", "grad_cam_raw": "head", "grad_cam_block10": "block10"}
REFERENCE_INPUTS = ("128 px: chelsea (target 281 tabby) and chelsea|coffee side by side (target 967 espresso); "
                    "Grad-CAM at 'head' (normalized and raw) and 'block10'; typical-mistake outputs from Captum")
MISTAKE_TOL = 1e-2  # how close an output must be to a stored mistake for the hint to name it


# ----------------------------------------------------------------------------------------------- references

def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    from helpers.gradcam import side_by_side
    from helpers.images import load_photos

    photos, _, _ = load_photos(["chelsea", "coffee"], size=SIZE)
    images = torch.stack([photos[0], side_by_side(photos[0], photos[1], size=SIZE)])
    return images, torch.tensor(LABELS, dtype=torch.int64)


def _detached(mistakes: dict) -> dict:
    """Mistake outputs, detached. (They stay float32: float16 rounding would flip between CPU thread counts
    by more than the 1e-4 that the rebuilt-references test allows.)"""
    return {name: value.detach() for name, value in mistakes.items()}


def _upsample(maps: torch.Tensor, size, align_corners: bool = False, mode: str = "bilinear") -> torch.Tensor:
    """(N, 1, h, w) -> (N, H, W)."""
    kwargs = {} if mode == "nearest" else {"align_corners": align_corners}
    return torch.nn.functional.interpolate(maps, size=size, mode=mode, **kwargs)[:, 0]


def _cam_mistakes(model, images, labels) -> dict[str, torch.Tensor]:
    """Raw (unnormalized) head-layer maps of typical Grad-CAM mistakes, computed with Captum."""
    from captum.attr import LayerGradCam, LayerGradientXActivation

    from helpers.model import get_layer

    layer = get_layer(model, "head")
    size = tuple(images.shape[-2:])
    signed = LayerGradCam(model, layer).attribute(images, target=labels, relu_attributions=False).detach()
    grad_x_act = LayerGradientXActivation(model, layer).attribute(images, target=labels).detach()
    predicted = model(images).argmax(1)
    top_class = LayerGradCam(model, layer).attribute(images, target=predicted, relu_attributions=True).detach()
    return {
        "no_relu": _upsample(signed, size),
        "relu_after_upsampling": _upsample(signed, size).relu(),
        "align_corners": _upsample(signed.relu(), size, align_corners=True),
        "nearest": _upsample(signed.relu(), size, mode="nearest"),
        "not_averaged": _upsample(grad_x_act.sum(1, keepdim=True).relu(), size),
        "predicted_class": _upsample(top_class, size),
    }


def _gbp_mistakes(model, images, labels) -> dict[str, torch.Tensor]:
    """Guided-backprop look-alikes: the plain gradient and Captum's Deconvolution."""
    from captum.attr import Deconvolution

    x = images.detach().clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    deconv = Deconvolution(model).attribute(images.clone(), target=labels).detach()
    return {"plain_gradient": plain.detach(), "deconvnet": deconv}


def build_references(model: nn.Module) -> dict:
    """Reference outputs of the solution in helpers/gradcam.py on two images (CPU, float32), plus typical-mistake
    outputs for the hints."""
    images, labels = _inputs()
    inputs = {"images": images, "labels": labels}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum's notes that it sets hooks and marks inputs as requiring grad
        return _build_cases(model, images, labels, inputs)


def _build_cases(model, images, labels, inputs) -> dict:
    from captum.attr import GuidedGradCam

    from helpers import gradcam as solution
    from helpers.model import get_layer

    cases = {"guided_backprop": {"inputs": inputs, "output": solution.guided_backprop(model, images, labels),
                                 "mistakes": _detached(_gbp_mistakes(model, images, labels))}}
    for name, layer in CAM_LAYERS.items():
        cases[name] = {"inputs": inputs, "output": solution.grad_cam(
            model, images, labels, layer=layer, normalize=name != "grad_cam_raw")}
    cases["grad_cam_raw"]["mistakes"] = _detached(_cam_mistakes(model, images, labels))
    blocky = GuidedGradCam(model, get_layer(model, "head")).attribute(images, target=labels)  # "nearest"
    cases["guided_grad_cam"] = {"inputs": inputs, "output": solution.guided_grad_cam(model, images, labels),
                                "mistakes": _detached({"nearest": blocky})}
    return cases


# ----------------------------------------------------------------------------------------------- helpers

def _close(a: torch.Tensor, b: torch.Tensor, tol: float = MISTAKE_TOL) -> bool:
    """a and b (same shape) agree to ``tol`` of b's scale."""
    return relative_error(a, b) < tol


def _per_image_max(maps: torch.Tensor) -> torch.Tensor:
    return maps.flatten(1).amax(1).view(-1, *([1] * (maps.dim() - 1)))


def _normalized(maps: torch.Tensor) -> torch.Tensor:
    return maps / _per_image_max(maps).clamp_min(1e-30)


@contextlib.contextmanager
def _model_restored(model: nn.Module):
    """Afterwards: remove hooks added meanwhile, restore in-place flags and requires_grad, drop .grad."""
    hooks = {(id(m), attr): set(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS}
    inplace = {m: m.inplace for m in model.modules() if hasattr(m, "inplace")}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m in model.modules():
            for attr in HOOK_DICTS:
                registry = getattr(m, attr, None)
                for key in [k for k in (registry or {}) if k not in hooks.get((id(m), attr), set())]:
                    del registry[key]
        for m, value in inplace.items():
            m.inplace = value
        for p, value in flags:
            p.requires_grad_(value)
            p.grad = None


@contextlib.contextmanager
def _inplace_activations(model: nn.Module):
    """Temporarily make every nn.ReLU-type activation in-place."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    old = [m.inplace for m in relus]
    try:
        for m in relus:
            m.inplace = True
        yield
    finally:
        for m, value in zip(relus, old):
            m.inplace = value


class _Interrupted(RuntimeError):
    pass


class _FailingForward(nn.Module):
    """Runs the classifier, then raises: the student's hooks must still be removed."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.net(images)
        raise _Interrupted("forward pass interrupted on purpose by the check")


def _hooks_survive_error(check: str, fn, model, images, labels, **kwargs) -> Verdict | None:
    """A FAIL verdict if hooks stay on the model when its forward pass raises, else None."""
    wrapper = _FailingForward(model)
    before = hook_count(model)
    try:
        fn(wrapper, images, labels, **kwargs)
    except Exception:  # the interruption itself, or whatever the student's code makes of it
        pass
    if hook_count(model) != before:
        return Verdict(check, False, "hooks stay registered when the forward pass raises; remove them in a "
                                     "finally: block (try: ... finally: handle.remove())")
    return None


def _explained(verdict: Verdict) -> Verdict:
    """Add the likely cause to error messages that have a typical one."""
    if "BackwardHookFunction" in verdict.detail:
        return Verdict(verdict.check, False, verdict.detail + "; full backward hooks cannot handle in-place "
                       "activations: use a forward hook that calls output.register_hook(...)")
    if "'RemovableHandle'" in verdict.detail:
        return Verdict(verdict.check, False, verdict.detail + "; a forward hook's return value replaces the "
                       "module's output: don't return output.register_hook(...) from it")
    return verdict


def _mistake_hints(mistakes: dict, texts: dict, transform=lambda m: m) -> list:
    """(text, test) pairs that name a stored mistake when the output is close to it."""
    return [(texts[name], lambda a, e, m=mistakes[name]: _close(a, transform(m)))
            for name in texts if name in mistakes]


def _shape_first(check: str, expected: torch.Tensor, hints, device, what: str, tol: float):
    """An ``expected`` callable for run(): a clearer message for a kept channel dim, then compare()."""

    def judge(out) -> Verdict:
        if isinstance(out, torch.Tensor) and out.dim() == expected.dim() + 1 and out.shape[1] == 1 \
                and out.shape[0] == expected.shape[0] and out.shape[2:] == expected.shape[1:]:
            return Verdict(check, False, f"shape {tuple(out.shape)}, expected {tuple(expected.shape)}; drop the "
                                         "channel dimension of size 1 (cam[:, 0])")
        return compare(check, out, expected, tol=tol, hints=hints, expected_device=device, what=what)

    return judge


# ----------------------------------------------------------------------------------------------- checks

GBP_HINTS = {
    "plain_gradient": "this is the plain gradient: clamp negative gradients at every activation "
                      "(do the hooks run? register them on modules with isinstance(m, nn.ReLU))",
    "deconvnet": "the forward mask is missing (that is the 'deconvnet' rule): clamp the gradient of the "
                 "activation's output and let its own backward zero it where the input was inactive",
}


def check_guided_backprop(fn=None, model=None) -> Verdict:
    """guided_backprop(model, images, labels) -> (N, 3, H, W); also with in-place activations."""
    if fn is None:
        from helpers.gradcam import guided_backprop as fn
    model = model_or_default(model)
    device = next(model.parameters()).device
    ref = case(TOPIC, "guided_backprop", device)
    images, labels = ref["inputs"]["images"], ref["inputs"]["labels"]
    hints = [*_mistake_hints(ref["mistakes"], GBP_HINTS),
             ("an abs() or a max over colour channels was taken; return the raw (N, 3, H, W) gradient",
              lambda a, e: _close(a, e.abs())),
             ("the gradient is not clamped at every activation, or hooks sit on the wrong modules "
              "(only the nn.ReLU ones)", lambda a, e: True)]
    name = "guided_backprop"
    with _model_restored(model):
        verdict = run(name, fn, (model, images, labels), ref["output"], hints=hints, model=model,
                      arg_names=("model", "images", "labels"))
    if verdict.passed:  # the PASS line is this run's
        what = (f"shape {tuple(ref['output'].shape)}, values match the reference, also with in-place activations; "
                "no hooks left behind")
        with _model_restored(model), _inplace_activations(model):
            verdict = run(name, fn, (model, images, labels), ref["output"], hints=hints[:-1], model=model,
                          arg_names=("model", "images", "labels"), what=what)
        verdict = verdict.prefixed("with in-place activations (ReLU6(inplace=True)): ")
    if verdict.passed:
        with _model_restored(model):
            failed = _hooks_survive_error(name, fn, model, images, labels)
        verdict = failed if failed is not None else verdict  # (a FAIL verdict is falsy: no `or` here)
    return report(_explained(verdict))


CAM_HINTS = {
    "no_relu": "the ReLU is missing: keep only positive evidence, F.relu of the weighted sum",
    "relu_after_upsampling": "the ReLU comes after the upsampling; apply it at the layer's resolution first",
    "align_corners": "upsampled with align_corners=True; use F.interpolate(..., mode='bilinear', "
                     "align_corners=False)",
    "nearest": "upsampled with mode='nearest'; use mode='bilinear' (align_corners=False)",
    "not_averaged": "the gradients were not averaged over space: channel weight = grads.mean(dim=(2, 3))",
    "predicted_class": "the predicted class was explained instead of the given labels",
}


def _cam_hints(mistakes: dict, normalized: bool, head_ref: torch.Tensor | None, layer: str) -> list:
    transform = _normalized if normalized else (lambda m: m)
    hints = _mistake_hints(mistakes, CAM_HINTS, transform)
    if head_ref is not None:
        hints.insert(0, (f"the layer argument is ignored: this map is the 'head' layer's, not the {layer!r} layer's",
                         lambda a, e: _close(a, head_ref)))
    if normalized:
        hints += [("the maps are not normalized: divide each by its own maximum",
                   lambda a, e: _close(_normalized(a), e) and not _close(a, e)),
                  ("min-max normalization was used; divide by the maximum only (zero stays zero)",
                   lambda a, e: _close(a, (e - e.flatten(1).amin(1).view(-1, 1, 1))
                                       / (1 - e.flatten(1).amin(1).view(-1, 1, 1)).clamp_min(1e-30)))]
    else:
        hints += [("with normalize=False return the raw map (no division by its maximum)",
                   lambda a, e: _close(a, _normalized(e))),
                  ("the gradients were summed over space instead of averaged (mean over dims 2 and 3)",
                   lambda a, e: _close(_normalized(a), _normalized(e)))]
    hints.append(("the map has negative values: the ReLU is missing (F.relu of the weighted sum)",
                  lambda a, e: a.min() < -1e-6 * a.abs().max()))
    hints.append(("the wrong layer was used, or the weights are not the spatial mean of the gradients",
                  lambda a, e: True))
    return hints


def check_grad_cam(fn=None, model=None) -> Verdict:
    """grad_cam(model, images, labels, layer, normalize) -> (N, H, W): head normalized, head raw, block10."""
    if fn is None:
        from helpers.gradcam import grad_cam as fn
    model = model_or_default(model)
    device = next(model.parameters()).device
    name = "grad_cam"
    refs = {case_name: case(TOPIC, case_name, device) for case_name in CAM_LAYERS}
    mistakes = refs["grad_cam_raw"]["mistakes"]
    head = refs["grad_cam"]
    head_ref = head["output"].double().cpu()
    verdict = None
    for case_name, layer in CAM_LAYERS.items():
        ref = refs[case_name]
        images, labels = ref["inputs"]["images"], ref["inputs"]["labels"]
        normalized = case_name != "grad_cam_raw"
        kwargs = {"layer": layer, "normalize": normalized}
        hints = _cam_hints(mistakes if layer == "head" else {}, normalized,
                           head_ref if layer != "head" else None, layer)
        judge = _shape_first(name, ref["output"], hints, images.device, "", 1e-3)
        with _model_restored(model):
            verdict = run(name, fn, (model, images, labels), judge, kwargs=kwargs, model=model,
                          arg_names=("model", "images", "labels"))
        if not verdict.passed:
            if not verdict.detail.startswith("not implemented"):
                verdict = verdict.prefixed(f"layer={layer!r}, normalize={normalized}: ")
            return report(_explained(verdict))
    from helpers.model import get_layer

    with _model_restored(model):
        failed = _hooks_survive_error(name, fn, model, head["inputs"]["images"], head["inputs"]["labels"],
                                      layer=get_layer(model, "head"))
    if failed is not None:
        return report(failed)
    return report(Verdict(name, True, f"shape {tuple(head['output'].shape)}, values match the reference at 'head' "
                                      "(normalized and raw) and 'block10'; no hooks left behind"))


def check_guided_grad_cam(fn=None, model=None) -> Verdict:
    """guided_grad_cam(model, images, labels) -> (N, 3, H, W)."""
    if fn is None:
        from helpers.gradcam import guided_grad_cam as fn
    model = model_or_default(model)
    device = next(model.parameters()).device
    ref = case(TOPIC, "guided_grad_cam", device)
    images, labels = ref["inputs"]["images"], ref["inputs"]["labels"]
    ratio_constant = (lambda a, e: _close(a * _per_image_max(e) / _per_image_max(a).clamp_min(1e-30), e)
                      and not _close(a, e))
    hints = [*_mistake_hints(ref["mistakes"], {"nearest": "the CAM was upsampled with 'nearest'; use bilinear"}),
             ("the CAM was normalized; multiply by grad_cam(..., normalize=False)", ratio_constant),
             ("check guided_backprop and grad_cam first: this is their pointwise product, the (N, H, W) map "
              "broadcast over the colour channels (cam.unsqueeze(1))", lambda a, e: True)]
    with _model_restored(model):
        verdict = run("guided_grad_cam", fn, (model, images, labels), ref["output"], hints=hints, model=model,
                      arg_names=("model", "images", "labels"))
    return report(_explained(verdict))


CHECKS = {"guided_backprop": check_guided_backprop, "grad_cam": check_grad_cam,
          "guided_grad_cam": check_guided_grad_cam}
