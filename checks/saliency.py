"""Checks for notebook 1 (helpers/saliency.py): ``saliency_map`` and ``occlusion_map``.

Each check runs the student's function on saved inputs and prints one line. When the values are wrong, the
hints recompute the usual mistakes (no abs, a sum over channels, the probability instead of the score, a
black patch, ...) on the same inputs and name the one that matches what the student returned.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from checks.core import Verdict, check_device, compare, model_or_default, relative_error, report, run
from checks.references import case

TOPIC = "saliency"
REFERENCE_INPUTS = ("photos chelsea and coffee (labels 281, 967): 160 px for saliency_map (objective score and "
                    "loss), 112 px for occlusion_map (window 24, stride 12, fill 0.5)")
SALIENCY_SIZE = 160
OCCLUSION_SIZE = 112
OCCLUSION_ARGS = {"window": 24, "stride": 12, "fill": 0.5}
# Gradients pass ReLU6 kinks; a unit sitting on a kink can flip between CPU and GPU round-off, which moves
# a few pixels by ~1e-4 of the map's scale. Real mistakes are off by 1e-1 or more.
SALIENCY_TOL = 2e-3
# The cross-entropy gradient is -grad s_y + sum_k p_k grad s_k: when p_y is near 1 (coffee: 0.98) the two
# nearly cancel, and float32 kernels that differ only in summation order (1 vs 2 CPU threads, CPU vs GPU)
# disagree by ~4e-3 of the scale. Mistakes (score instead of loss, no abs, sum over channels) are off by >1e-1.
SALIENCY_LOSS_TOL = 2e-2
OCCLUSION_TOL = 1e-3


def build_references(model: torch.nn.Module) -> dict:
    """Cases from the reference solution on CPU: saliency (score and loss) and occlusion, two photos each."""
    from helpers.images import load_photos
    from helpers.saliency import occlusion_map, saliency_map

    cases = {}
    images, labels, _ = load_photos(["chelsea", "coffee"], size=SALIENCY_SIZE)
    for objective in ("score", "loss"):
        cases[f"saliency_map_{objective}"] = {
            "inputs": {"images": images, "labels": labels},
            "output": saliency_map(model, images, labels, objective=objective),
        }
    images, labels, _ = load_photos(["chelsea", "coffee"], size=OCCLUSION_SIZE)
    cases["occlusion_map"] = {"inputs": {"images": images, "labels": labels},
                              "output": occlusion_map(model, images, labels, **OCCLUSION_ARGS)}
    return cases


def _close(actual: torch.Tensor, variant: torch.Tensor, tol: float = 2e-2) -> bool:
    """Is ``actual`` (float64 CPU) within ``tol`` of the variant's scale?"""
    return relative_error(actual, variant) <= tol


def _input_gradient(model, images, labels, objective: str) -> torch.Tensor:
    """d objective / d images, (N, 3, H, W), for the hint variants (independent of the student's code)."""
    x = images.detach().clone().requires_grad_(True)
    logits = model(x)
    if objective == "score":
        value = logits.gather(1, labels.view(-1, 1)).sum()
    elif objective == "loss":
        value = F.cross_entropy(logits, labels, reduction="sum")
    else:  # probability
        value = F.softmax(logits, dim=1).gather(1, labels.view(-1, 1)).sum()
    return torch.autograd.grad(value, x)[0].detach()


def _saliency_hints(model, images, labels, objective: str) -> list:
    @functools.lru_cache(maxsize=None)
    def grad(kind: str) -> torch.Tensor:
        with torch.enable_grad():
            return _input_gradient(model, images, labels, kind)

    other = "loss" if objective == "score" else "score"
    return [
        ("the absolute value is missing: take grad.abs() before the max over channels",
         lambda a, e: (a < 0).any() or _close(a, grad(objective).amax(dim=1))),
        ("the channels were summed; take the max over the colour channels (dim 1)",
         lambda a, e: _close(a, grad(objective).abs().sum(dim=1))),
        ("the channels were averaged; take the max over the colour channels (dim 1)",
         lambda a, e: _close(a, grad(objective).abs().mean(dim=1))),
        ("this is the gradient of the softmax probability; differentiate the unnormalized score "
         "(the logit) for objective='score'" if objective == "score" else
         "this is the gradient of the softmax probability; differentiate the cross-entropy loss",
         lambda a, e: _close(a, grad("prob").abs().amax(dim=1))),
        (f"this matches objective='{other}'; check which quantity you differentiate for '{objective}'",
         lambda a, e: _close(a, grad(other).abs().amax(dim=1))),
        ("the map is a whole multiple of the reference: gradients accumulated over several backward "
         "passes (use a fresh copy of the images, or zero x.grad)",
         lambda a, e: any(_close(a, k * e) for k in (2, 3, 4))),
        ("some images got the wrong gradient: pick each image's own label (logits[i, labels[i]])",
         lambda a, e: True),
    ]


def check_saliency_map(fn=None, model=None) -> Verdict:
    """Compare ``saliency_map`` with the reference for objective "score", then "loss"."""
    if fn is None:
        from helpers.saliency import saliency_map as fn
    device = check_device()
    model = model_or_default(model)
    verdict = None
    for objective in ("score", "loss"):  # the PASS line is the last run's
        data = case(TOPIC, f"saliency_map_{objective}", device)
        images, labels = data["inputs"]["images"], data["inputs"]["labels"]
        verdict = run("saliency_map", fn, (model, images, labels), data["output"],
                      tol=SALIENCY_LOSS_TOL if objective == "loss" else SALIENCY_TOL,
                      hints=_saliency_hints(model, images, labels, objective), kwargs={"objective": objective},
                      model=model, arg_names=("model", "images", "labels"),
                      what=f"shape {tuple(data['output'].shape)}, class-score and loss saliency match the reference")
        if not verdict.passed:
            verdict = verdict.prefixed("objective='loss': " if objective == "loss" else "")
            break
    return report(verdict)


def _occlusion_judge(model, images, labels, expected: torch.Tensor, args: dict):
    """A result -> Verdict function: shape and border problems first, then the values with hints."""
    from helpers.saliency import occlusion_attribution

    window, stride, fill = args["window"], args["stride"], args["fill"]
    height, width = images.shape[-2:]

    @functools.lru_cache(maxsize=None)
    def variant(output: str, baseline: float) -> torch.Tensor:
        return occlusion_attribution(model, images, labels, window=window, stride=stride, baseline=baseline,
                                     output=output)[:, 0]

    starts_h = range(0, height - window + stride, stride)
    starts_w = range(0, width - window + stride, stride)
    count = torch.zeros(height, width, dtype=torch.float64)
    for top in starts_h:
        for left in starts_w:
            count[top:top + window, left:left + window] += 1

    hints = [
        ("the sign is flipped: record original probability minus occluded probability (a drop is positive)",
         lambda a, e: _close(a, -e)),
        ("the drops were summed but not averaged: divide by the number of windows covering each pixel",
         lambda a, e: _close(a, e * count)),
        (f"the patch is black (0); fill it with the value `fill` ({fill}, grey)",
         lambda a, e: _close(a, variant("prob", 0.0))),
        ("this uses the logits; measure the drop in the softmax probability of the class",
         lambda a, e: _close(a, variant("score", fill))),
        ("the patch value or window placement differs: occlude images[:, :, top:top + window, "
         "left:left + window] on a clone for each top, left in range(0, H - window + stride, stride)",
         lambda a, e: True),
    ]
    grid = (len(starts_h), len(starts_w))

    def judge(actual) -> Verdict:
        per_window = isinstance(actual, torch.Tensor) and tuple(actual.shape[-2:]) == grid
        if per_window and actual.shape[-2:] != expected.shape[-2:]:
            return Verdict("occlusion_map", False, f"shape {tuple(actual.shape)} is one value per window; return "
                           f"the per-pixel map {tuple(expected.shape)}: add each window's drop to every pixel it "
                           "covers and divide by the number of windows covering the pixel")
        if isinstance(actual, torch.Tensor) and actual.shape == expected.shape and torch.is_floating_point(actual):
            bad = ~torch.isfinite(actual.detach())
            edge = bad[:, -(window // 2):, :].any() or bad[:, :, -(window // 2):].any()
            if bad.any() and edge:
                return Verdict("occlusion_map", False, "NaN at the bottom/right border: some pixels are covered "
                               "by no window (0 / 0); loop with range(0, H - window + stride, stride) so the last "
                               "window reaches the border")
        return compare("occlusion_map", actual, expected, tol=OCCLUSION_TOL, hints=hints,
                       expected_device=images.device)

    return judge


def check_occlusion_map(fn=None, model=None) -> Verdict:
    """Compare ``occlusion_map`` (window 24, stride 12, grey fill) with the reference on two 112 px photos."""
    if fn is None:
        from helpers.saliency import occlusion_map as fn
    device = check_device()
    model = model_or_default(model)
    data = case(TOPIC, "occlusion_map", device)
    images, labels = data["inputs"]["images"], data["inputs"]["labels"]
    judge = _occlusion_judge(model, images, labels, data["output"], OCCLUSION_ARGS)
    return report(run("occlusion_map", fn, (model, images, labels), judge, kwargs=OCCLUSION_ARGS, model=model,
                      arg_names=("model", "images", "labels"),
                      what=f"shape {tuple(data['output'].shape)}, values match the reference"))


CHECKS = {"saliency_map": check_saliency_map, "occlusion_map": check_occlusion_map}
