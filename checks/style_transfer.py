"""Checks for notebook 4 (helpers/style_transfer.py): content, Gram, style and total-variation losses, and
the optimization loop.

The loss checks feed saved feature maps (from two photos at 112 px) or saved images to the student's function
and compare the scalar (or Gram matrices) with the reference. A FAIL line names a likely cause when the value
matches a typical mistake (a mean instead of a sum, a missing normalization or weight, one TV direction
missing, ...): those values are recomputed from the saved inputs in the check itself.

The loop check runs the student's ``style_transfer`` for a few dozen steps with L-BFGS and with Adam on a
96 px photo: the first recorded losses must match the reference (same start, same losses), the total must go
down and the style loss must end well below where it started.
"""
from __future__ import annotations

import torch
from torch import nn

from checks.core import Verdict, check_device, compare, model_or_default, relative_error, report, run
from checks.references import case

TOPIC = "style_transfer"
SIZE = 112
LOOP_SIZE = 64
LOOP_STEPS = 20
STYLE_DROP = 0.3  # the loop must bring the style loss below this fraction of its first value
REFERENCE_INPUTS = (f"{SIZE} px: chelsea and coffee features at block1/block3/block8, mosaic style Gram "
                    f"targets, 64 px photos for TV; loop: chelsea + mosaic at {LOOP_SIZE} px, {LOOP_STEPS} steps")
MISTAKE_TOL = 1e-3  # how close a value must be to a typical mistake for the hint to name it

CONTENT_WEIGHT = 0.05
TV_WEIGHT = 0.3
STYLE_LAYERS = ("block1", "block3", "block8")
STYLE_WEIGHTS = (2.0, 1.0, 5.0)


# ----------------------------------------------------------------------------------------------- references

def _loss_inputs(model: nn.Module) -> dict:
    """Feature maps of two photos and a style image, all detached float32 CPU tensors."""
    from helpers.images import load_photos, load_style
    from helpers.style_transfer import extract_features

    photos, _, _ = load_photos(["chelsea", "coffee"], size=SIZE)
    style = load_style("mosaic", SIZE)[None]
    with torch.no_grad():
        feats = extract_features(model, photos, STYLE_LAYERS)
        style_feats = extract_features(model, style, STYLE_LAYERS)
        # content: each photo's block8 features against the other's (a non-trivial difference)
        content_current = feats["block8"]
        content_target = feats["block8"].flip(0)
    return {"feats": {k: v.clone() for k, v in feats.items()}, "style_feats": style_feats,
            "content_current": content_current, "content_target": content_target.clone(),
            "tv_images": load_photos(["chelsea", "rocket"], size=64)[0]}


def _loop_inputs() -> dict:
    from helpers.images import load_photos, load_style

    return {"content": load_photos(["chelsea"], size=LOOP_SIZE)[0], "style": load_style("mosaic", LOOP_SIZE)[None]}


def loop_settings():
    """The settings the loop check runs with (the notebook's defaults)."""
    from helpers.style_transfer import DEFAULT_SETTINGS

    return DEFAULT_SETTINGS


def build_references(model: nn.Module) -> dict:
    """Reference outputs of the solution in helpers/style_transfer.py (CPU, float32)."""
    from helpers import style_transfer as solution

    x = _loss_inputs(model)
    targets = [solution.gram_matrix(x["style_feats"][layer]) for layer in STYLE_LAYERS]
    cases = {
        "content_loss": {"inputs": {"weight": torch.tensor(CONTENT_WEIGHT), "current": x["content_current"],
                                    "target": x["content_target"]},
                         "output": solution.content_loss(CONTENT_WEIGHT, x["content_current"], x["content_target"])},
        "gram_matrix": {"inputs": {"features": x["feats"]["block3"]},
                        "output": solution.gram_matrix(x["feats"]["block3"]),
                        "unnormalized": solution.gram_matrix(x["feats"]["block3"], normalize=False)},
        "style_loss": {"inputs": {"feats": x["feats"], "targets": targets, "weights": torch.tensor(STYLE_WEIGHTS)},
                       "output": solution.style_loss(x["feats"], STYLE_LAYERS, targets, STYLE_WEIGHTS)},
        "tv_loss": {"inputs": {"images": x["tv_images"], "weight": torch.tensor(TV_WEIGHT)},
                    "output": solution.tv_loss(x["tv_images"], TV_WEIGHT)},
    }
    loop = _loop_inputs()
    starts = []
    for optimizer in ("lbfgs", "adam"):
        torch.manual_seed(0)
        _, history = solution.style_transfer(model, loop["content"], loop["style"], loop_settings(),
                                             steps=LOOP_STEPS, optimizer=optimizer)
        starts.append([history.total[0], history.content[0], history.style[0], history.tv[0]])
    # Only the first evaluation is compared exactly (it does not depend on the optimizer's path).
    cases["style_transfer"] = {"inputs": loop, "output": torch.tensor(starts, dtype=torch.float32)}
    return cases


# ----------------------------------------------------------------------------------------------- helpers

def _near(a, b, tol: float = MISTAKE_TOL) -> bool:
    """Two numbers (or tensors of one shape) agree to ``tol`` of b's scale."""
    return relative_error(a, b) < tol


def _default(fn, name: str):
    if fn is not None:
        return fn
    from helpers import style_transfer

    return getattr(style_transfer, name)


def _gram64(features: torch.Tensor, divide_by: float = 1.0) -> torch.Tensor:
    f = features.double().flatten(2)
    return f @ f.transpose(1, 2) / divide_by


# ----------------------------------------------------------------------------------------------- checks

def check_content_loss(fn=None, model=None) -> Verdict:
    """content_loss(weight, current, target) against the reference scalar."""
    fn = _default(fn, "content_loss")
    c = case(TOPIC, "content_loss", check_device())
    cur, tgt = c["inputs"]["current"], c["inputs"]["target"]
    diff = (cur - tgt).double().cpu()
    hints = [
        ("a mean instead of a sum (sum the squared differences)", lambda a, e: _near(a, e / diff.numel())),
        ("the weight is missing (multiply by content_weight)", lambda a, e: _near(a, e / CONTENT_WEIGHT)),
        ("the differences are not squared", lambda a, e: _near(a, CONTENT_WEIGHT * diff.abs().sum())),
        ("a square root was taken (the loss is the squared distance, not the distance)",
         lambda a, e: _near(a, CONTENT_WEIGHT * diff.pow(2).sum().sqrt())),
    ]
    return report(run("content_loss", fn, (CONTENT_WEIGHT, cur, tgt), c["output"], hints=hints,
                      arg_names=("content_weight", "current", "target"), output=_detached,
                      what="scalar matches the reference"))


def _detached(out):
    """run()'s ``output`` for the losses: a loss may stay attached to the graph (the optimizer needs that)."""
    return out.detach() if isinstance(out, torch.Tensor) else out


def check_gram_matrix(fn=None, model=None) -> Verdict:
    """gram_matrix(features) (normalized) and gram_matrix(features, normalize=False) against the reference."""
    fn = _default(fn, "gram_matrix")
    c = case(TOPIC, "gram_matrix", check_device())
    feats = c["inputs"]["features"]
    n, ch, h, w = feats.shape
    hints = [
        ("not normalized: divide by C * H * W", lambda a, e: _near(a, _gram64(feats.cpu()))),
        ("divided by H * W only: divide by C * H * W", lambda a, e: _near(a, _gram64(feats.cpu(), h * w))),
        ("divided by C * C * H * W? divide by C * H * W once",
         lambda a, e: _near(a, _gram64(feats.cpu(), ch * ch * h * w))),
        ("divided by N * C * H * W: the batch is not part of the normalization",
         lambda a, e: _near(a, _gram64(feats.cpu(), n * ch * h * w))),
    ]

    def judge(out):
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (n, h * w, h * w):
            return Verdict("gram_matrix", False, f"shape {tuple(out.shape)}, expected {(n, ch, ch)}: the features are "
                           "transposed (multiply (N, C, H*W) by its transpose, giving channels x channels)")
        return compare("gram_matrix", out, c["output"], hints=hints, expected_device=feats.device)

    what = "(2, 40, 40) Gram matrices match the reference, normalized and not"
    verdict = run("gram_matrix", fn, (feats,), judge, arg_names=("features",), output=_detached, what=what)
    if verdict.passed:  # the same features without the normalization
        unnormalized_hints = [("normalize=False should skip the division", lambda a, e: _near(a, e / (ch * h * w)))]
        verdict = run("gram_matrix", fn, (feats,), c["unnormalized"], hints=unnormalized_hints,
                      kwargs={"normalize": False}, arg_names=("features",), output=_detached, what=what)
        verdict = verdict.prefixed("with normalize=False: ")
    return report(verdict)


def check_style_loss(fn=None, model=None) -> Verdict:
    """style_loss(feats, layers, targets, weights) against the reference scalar."""
    fn = _default(fn, "style_loss")
    c = case(TOPIC, "style_loss", check_device())
    feats, targets = c["inputs"]["feats"], c["inputs"]["targets"]
    weights = [float(w) for w in c["inputs"]["weights"]]
    cpu = {k: v.cpu() for k, v in feats.items()}

    def terms(divide=True, power=2):
        """Per-layer sums of |G - A| ** power, G normalized or not; A is the (normalized) target as given."""
        out = []
        for layer, target in zip(STYLE_LAYERS, targets):
            f = cpu[layer]
            gram = _gram64(f, f[0].numel() if divide else 1.0)
            out.append((gram - target.cpu().double()).abs().pow(power).sum())
        return out

    hints = [
        ("the Gram matrices are not normalized (use gram_matrix(..., normalize=True))",
         lambda a, e: _near(a, sum(w * t for w, t in zip(weights, terms(divide=False))))),
        ("the layer weights are missing", lambda a, e: _near(a, sum(terms()))),
        ("the differences are not squared", lambda a, e: _near(a, sum(w * t for w, t in zip(weights, terms(power=1))))),
        ("only the last layer is counted: add up one term per layer",
         lambda a, e: _near(a, weights[-1] * terms()[-1])),
        ("a mean instead of a sum over the Gram entries",
         lambda a, e: _near(a, sum(w * t / targets[i][0].numel() for i, (w, t) in enumerate(zip(weights, terms())))))
    ]
    return report(run("style_loss", fn, (feats, list(STYLE_LAYERS), targets, weights), c["output"], hints=hints,
                      arg_names=("feats", "style_layers", "style_targets", "style_weights"), output=_detached,
                      what="scalar matches the reference"))


def check_tv_loss(fn=None, model=None) -> Verdict:
    """tv_loss(images, weight) against the reference scalar."""
    fn = _default(fn, "tv_loss")
    c = case(TOPIC, "tv_loss", check_device())
    images = c["inputs"]["images"]
    x = images.double().cpu()
    dv, dh = x[:, :, 1:] - x[:, :, :-1], x[..., 1:] - x[..., :-1]
    hints = [
        ("only the vertical differences (add the horizontal ones, along dim 3)",
         lambda a, e: _near(a, TV_WEIGHT * dv.pow(2).sum())),
        ("only the horizontal differences (add the vertical ones, along dim 2)",
         lambda a, e: _near(a, TV_WEIGHT * dh.pow(2).sum())),
        ("absolute differences instead of squared ones",
         lambda a, e: _near(a, TV_WEIGHT * (dv.abs().sum() + dh.abs().sum()))),
        ("a mean instead of a sum", lambda a, e: _near(a, TV_WEIGHT * (dv.pow(2).mean() + dh.pow(2).mean()))),
        ("the weight is missing", lambda a, e: _near(a, e / TV_WEIGHT)),
    ]
    return report(run("tv_loss", fn, (images, TV_WEIGHT), c["output"], hints=hints,
                      arg_names=("img", "tv_weight"), output=_detached, what="scalar matches the reference"))


def _judge_loop(name: str, out, inputs: dict, expected_start: torch.Tensor, optimizer: str) -> Verdict | None:
    """A FAIL verdict for the loop's result, or None when it is fine: an image of the right form, the right
    first losses, and real progress."""
    content = inputs["content"]
    if not (isinstance(out, tuple) and len(out) == 2):
        return Verdict(name, False, "should return (image, history)")
    image, history = out
    if not isinstance(image, torch.Tensor):
        return Verdict(name, False, f"the image is a {type(image).__name__}, expected a torch.Tensor")
    if tuple(image.shape) != tuple(content.shape) or image.dtype != content.dtype:
        return Verdict(name, False, f"image {tuple(image.shape)} {image.dtype}, expected {tuple(content.shape)} "
                       f"{content.dtype}")
    if image.device.type != content.device.type:
        return Verdict(name, False, f"the image is on {image.device.type}, expected {content.device.type}")
    if image.requires_grad:
        return Verdict(name, False, "the image still requires grad; return image.detach()")
    if image.min() < 0 or image.max() > 1:
        return Verdict(name, False, "pixels outside [0, 1]: clamp the image")
    n = len(getattr(history, "total", []))
    if n < 2:
        return Verdict(name, False, f"{optimizer}: history holds {n} evaluation(s); call history.record(...) in "
                       "the closure")
    if n > LOOP_STEPS + 1:
        return Verdict(name, False, f"{optimizer}: {n} evaluations for steps={LOOP_STEPS}; use max_eval=steps "
                       "(L-BFGS) or exactly `steps` steps (Adam)")
    start = torch.tensor([history.total[0], history.content[0], history.style[0], history.tv[0]])
    if not _near(start, expected_start, 1e-3):
        parts = ("total", "content", "style", "tv")
        worst = int(((start.double() - expected_start.double()).abs()).argmax())
        cause = (" (did the loop start from the content image?)" if worst == 1 else
                 " (a weight from the settings is missing or applied twice?)")
        return Verdict(name, False, f"{optimizer}: first {parts[worst]} loss {start[worst].item():.6g}, expected "
                       f"{expected_start[worst].item():.6g}{cause}")
    if not history.total[-1] < history.total[0]:
        return Verdict(name, False, f"{optimizer}: the total loss did not go down ({history.total[0]:.4g} -> "
                       f"{history.total[-1]:.4g}); is the optimizer stepping the image?")
    if not history.style[-1] < STYLE_DROP * history.style[0]:
        return Verdict(name, False, f"{optimizer}: the style loss only went from {history.style[0]:.4g} to "
                       f"{history.style[-1]:.4g} (expected below {STYLE_DROP:g} of its start)")
    return None


def check_style_transfer(fn=None, model=None) -> Verdict:
    """style_transfer(...) with L-BFGS and with Adam: right first losses, the loss goes down, valid image."""
    fn = _default(fn, "style_transfer")
    model = model_or_default(model)
    device = next(model.parameters()).device
    c = case(TOPIC, "style_transfer", device)
    inputs = c["inputs"]
    expected = c["output"].cpu()
    settings = loop_settings()
    passed = Verdict("style_transfer", True, "L-BFGS and Adam both start right and lower the losses")

    def judge(out, row, optimizer):
        problem = _judge_loop("style_transfer", out, inputs, expected[row], optimizer)
        return passed if problem is None else problem

    for row, optimizer in enumerate(("lbfgs", "adam")):
        verdict = run("style_transfer", fn, (model, inputs["content"], inputs["style"], settings),
                      lambda out, row=row, optimizer=optimizer: judge(out, row, optimizer),
                      kwargs={"steps": LOOP_STEPS, "optimizer": optimizer}, model=model,
                      arg_names=("model", "content", "style", "settings"))
        if not verdict.passed:
            break
    return report(verdict)


CHECKS = {
    "content_loss": check_content_loss,
    "gram_matrix": check_gram_matrix,
    "style_loss": check_style_loss,
    "tv_loss": check_tv_loss,
    "style_transfer": check_style_transfer,
}
