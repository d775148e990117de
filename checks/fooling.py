"""Checks for notebook 3 (helpers/fooling.py): one fooling step, the fooling loop, one class-visualization step.

Each check runs the student's function on saved inputs and compares the result with the reference solution's
output, saved in checks/references/fooling.pt: the two single steps on two 112 px images through the real
network, the loop on four tiny images through a small smooth network (see :func:`smooth_network`).
"""
from __future__ import annotations

import torch
from torch import nn

from checks.core import Verdict, check_device, compare, model_or_default, relative_error, report, run
from checks.references import case

TOPIC = "fooling"
REFERENCE_INPUTS = ("fooling_step: photos chelsea and camera at 112 px, targets (130, 945), step 2.0; "
                    "make_fooling_image: a small smooth seeded network (10 classes) on 4 seeded 3x16x16 "
                    "images, step 0.2, max 30 steps, 2 extra; class_visualization_step: chelsea + seeded "
                    "noise at 112 px, targets (130, 980), l2_reg 0.02, learning rate 2.0, jitter (5, -3)")

PHOTOS = ("chelsea", "camera")
SIZE = 112
FOOLING_TARGETS = (130, 945)  # flamingo, bell pepper: far from a cat and a cameraman
FOOLING_STEP_SIZE = 2.0
LOOP_STEP_SIZE = 0.2
LOOP_MAX_STEPS = 30
LOOP_EXTRA_STEPS = 2
LOOP_IMAGES = 4
VIS_TARGETS = (130, 980)  # flamingo, volcano
VIS_L2_REG = 0.02
VIS_LEARNING_RATE = 2.0
VIS_JITTER = (5, -3)
# Input gradients of a ReLU network jump where a unit crosses its kink, and round-off (CPU vs GPU, batch of
# one vs two) moves units across kinks: one such flip changes a pixel of a step of length L by ~5e-4 * L.
# Steps of length 2 and a tolerance of 5e-3 of the pixel scale leave a 5x margin; the typical mistakes
# change pixels by 2e-2 or more.
STEP_TOL = 5e-3


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image cosine similarity of two (N, ...) tensors."""
    a, b = a.flatten(1), b.flatten(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)


def _step_hints(start: torch.Tensor, step_length: float, jitter=None) -> list:
    """Likely causes shared by the two single-step checks. ``start`` is the input images (CPU float64)."""
    hints = [
        ("the image moved DOWN the gradient: gradient ascent adds step * g / ||g||, it does not subtract it",
         lambda a, e: bool((_cosine(a - start, e - start) < -0.3).all())),
    ]
    if jitter is not None:
        ox, oy = jitter
        hints.append(("the jitter was not undone: roll the stepped image back by (-oy, -ox) before returning it",
                      lambda a, e: _close(a, torch.roll(e, shifts=(oy, ox), dims=(2, 3)))
                      or _close(a - start, torch.roll(e - start, shifts=(oy, ox), dims=(2, 3)))))
        hints.append(("the jitter was applied twice instead of undone: roll back with the NEGATED offsets",
                      lambda a, e: _close(a, torch.roll(e, shifts=(2 * oy, 2 * ox), dims=(2, 3)))))
    hints += [
        ("the step was not normalized: divide each image's gradient by its own L2 norm (over C, H, W)",
         lambda a, e: bool(((a - start).flatten(1).norm(dim=1) > 1.5 * step_length).any()
                           or ((a - start).flatten(1).norm(dim=1) < step_length / 1.5).all())),
        ("the gradient was normalized over the whole batch: use each image's own L2 norm",
         lambda a, e: bool((_cosine(a - start, e - start) > 0.99).all())),
    ]
    return hints


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = STEP_TOL) -> bool:
    return relative_error(a, b) < tol


def _judge_step(check: str, expected: torch.Tensor, hints: list):
    """A judge for one step's output: the pixel range first (a missing clamp may be small), then the values."""
    def judge(out) -> Verdict:
        if (isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.is_floating_point(out)
                and (out.min() < -1e-6 or out.max() > 1 + 1e-6)):
            return Verdict(check, False, f"values from {out.min().item():.4g} to {out.max().item():.4g}: "
                           "clamp the new image to the valid pixel range [0, 1]")
        return compare(check, out, expected, tol=STEP_TOL, hints=hints, expected_device=check_device())
    return judge


def check_fooling_step(fn=None, model=None) -> Verdict:
    """One step of helpers.fooling.fooling_step on two photos must match the reference."""
    if fn is None:
        from helpers.fooling import fooling_step as fn
    model = model_or_default(model)
    ref = case(TOPIC, "fooling_step", check_device())
    images, targets = ref["inputs"]["images"], ref["inputs"]["targets"]
    step = float(ref["inputs"]["step_size"])
    start = images.detach().to("cpu", torch.float64)
    hints = _step_hints(start, step) + [
        ("the step went in a different direction: use the RAW target score (no softmax, no cross-entropy loss)",
         lambda a, e: bool((_cosine(a - start, e - start) < 0.9).any())),
    ]
    return report(run("fooling_step", fn, (model, images, targets, step),
                      _judge_step("fooling_step", ref["output"], hints), model=model,
                      arg_names=("model", "images", "targets", "step_size"),
                      what="one normalized ascent step matches the reference"))


def smooth_network(weights: dict | None = None, seed: int = 0) -> nn.Module:
    """A small classifier without kinks (tanh), 3 x 16 x 16 images -> 10 classes, frozen, in eval mode.

    The fooling loop is checked on it: with ReLU networks, round-off moves units across their kinks and a
    few normalized steps amplify that into visibly different images, so the loop's output would not be
    reproducible across devices. ``weights``: a state dict; ``None`` draws them from ``seed``.
    """
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    if weights is None:
        generator = torch.Generator().manual_seed(seed)
        weights = {name: torch.randn(value.shape, generator=generator)
                   * (2.0 / value[0].numel() ** 0.5 if value.dim() > 1 else 0.1)
                   for name, value in net.state_dict().items()}
    net.load_state_dict(weights)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def check_make_fooling_image(fn=None, model=None) -> Verdict:
    """helpers.fooling.make_fooling_image on a small smooth network: same step counts and same final images.

    ``model`` only sets the device here (the loop is checked on :func:`smooth_network`).
    """
    if fn is None:
        from helpers.fooling import make_fooling_image as fn
    device = next(model.parameters()).device if model is not None else check_device()
    ref = case(TOPIC, "make_fooling_image", device)
    inputs = ref["inputs"]
    net = smooth_network({k: v.cpu() for k, v in inputs["network"].items()}).to(device)
    expected_images, expected_steps = ref["output"]["images"], ref["output"]["steps"]
    extra = int(inputs["extra_steps"])
    start = inputs["images"].detach().to("cpu", torch.float64)

    def judge(out) -> Verdict:
        if not isinstance(out, tuple) or len(out) != 2:
            return Verdict("make_fooling_image", False,
                           f"returned {type(out).__name__}; expected a tuple (fooled images, steps)")
        fooled, steps = out
        if not isinstance(steps, torch.Tensor):
            return Verdict("make_fooling_image", False,
                           f"steps is a {type(steps).__name__}; expected an int64 tensor with one count per image")
        steps = steps.detach().cpu().long().reshape(-1)
        want = expected_steps.cpu()
        if steps.shape != want.shape:
            return Verdict("make_fooling_image", False,
                           f"steps has {steps.numel()} value(s); expected one per image ({want.numel()})")
        if not torch.equal(steps, want):
            got, exp = steps.tolist(), want.tolist()
            if torch.equal(steps, want + extra):
                cause = "; likely cause: steps counts the extra steps too; report the step of the FIRST success"
            elif (steps < 0).all():
                cause = "; likely cause: the first success is never recorded (compare argmax with the target)"
            elif torch.equal(steps, want - 1) or torch.equal(steps, want + 1):
                cause = ("; likely cause: an off-by-one in the count: after k fooling_step calls the count is k, "
                         "and 0 means the model already predicted the target")
            else:
                cause = "; run the fooling_step check first: a wrong step changes when the model is fooled"
            return Verdict("make_fooling_image", False, f"steps {got}, expected {exp}{cause}")
        if isinstance(fooled, torch.Tensor) and fooled.requires_grad:
            return Verdict("make_fooling_image", False, "the images still require grad; return them detached")
        moved = lambda x: (x - start).flatten(1).norm(dim=1)
        hints = [
            ("too few extra steps after the first success: keep going until the target has stayed top-1 for "
             "extra_steps more steps", lambda a, e: bool((moved(a) < 0.9 * moved(e)).any())),
            ("too many steps: an image must stop once the target has stayed top-1 for extra_steps steps "
             "(step only the images that are still moving)", lambda a, e: bool((moved(a) > 1.1 * moved(e)).any())),
        ]
        return compare("make_fooling_image", fooled, expected_images, tol=1e-4, hints=hints,
                       expected_device=device)

    return report(run("make_fooling_image", fn, (net, inputs["images"], inputs["targets"]), judge,
                      kwargs={"step_size": float(inputs["step_size"]), "max_steps": int(inputs["max_steps"]),
                              "extra_steps": extra},
                      model=net, arg_names=("model", "images", "targets"),
                      what="step counts and fooled images match the reference"))


def check_class_visualization_step(fn=None, model=None) -> Verdict:
    """One jittered, L2-regularized step of helpers.fooling.class_visualization_step must match the reference."""
    if fn is None:
        from helpers.fooling import class_visualization_step as fn
    model = model_or_default(model)
    ref = case(TOPIC, "class_visualization_step", check_device())
    inputs = ref["inputs"]
    images = inputs["images"]
    jitter = tuple(int(v) for v in inputs["jitter"].tolist())
    lr = float(inputs["learning_rate"])
    start = images.detach().to("cpu", torch.float64)
    hints = _step_hints(start, lr, jitter) + [
        ("the L2 penalty has the wrong sign (or is missing): maximize score - l2_reg * ||I||^2, whose gradient "
         "-2 * l2_reg * I pulls pixels toward 0",
         lambda a, e: bool((((a - e) * start).flatten(1).sum(1) > 0).all())),
        ("the step went in a different direction: use the RAW target score (no softmax, no loss)",
         lambda a, e: True),
    ]
    return report(run("class_visualization_step", fn,
                      (model, images, inputs["targets"], float(inputs["l2_reg"]), lr),
                      _judge_step("class_visualization_step", ref["output"], hints), kwargs={"jitter": jitter},
                      model=model, arg_names=("model", "images", "targets", "l2_reg", "learning_rate"),
                      what="one jittered, regularized ascent step matches the reference"))


def build_references(model) -> dict:
    """Run the reference solution on fixed inputs (CPU, float32, seeded). Returns the topic's cases."""
    from helpers.fooling import class_visualization_step, fooling_step, make_fooling_image
    from helpers.images import load_photos

    photos, _, _ = load_photos(PHOTOS, size=SIZE)
    fool_targets = torch.tensor(FOOLING_TARGETS, dtype=torch.int64)
    cases = {
        "fooling_step": {
            "inputs": {"images": photos, "targets": fool_targets, "step_size": torch.tensor(FOOLING_STEP_SIZE)},
            "output": fooling_step(model, photos, fool_targets, FOOLING_STEP_SIZE),
        }
    }
    net = smooth_network(seed=0)
    generator = torch.Generator().manual_seed(1)
    small = 0.2 + 0.6 * torch.rand(LOOP_IMAGES, 3, 16, 16, generator=generator)
    with torch.no_grad():
        predicted = net(small).argmax(dim=1)
    # Targets other than the current class; the last image's target is its class, so it only takes the
    # extra steps (its count is 0).
    loop_targets = (predicted + 1 + torch.arange(LOOP_IMAGES)) % 10
    loop_targets[-1] = predicted[-1]
    fooled, steps = make_fooling_image(net, small, loop_targets, step_size=LOOP_STEP_SIZE,
                                       max_steps=LOOP_MAX_STEPS, extra_steps=LOOP_EXTRA_STEPS)
    cases["make_fooling_image"] = {
        "inputs": {"images": small, "targets": loop_targets, "network": net.state_dict(),
                   "step_size": torch.tensor(LOOP_STEP_SIZE), "max_steps": torch.tensor(LOOP_MAX_STEPS),
                   "extra_steps": torch.tensor(LOOP_EXTRA_STEPS)},
        "output": {"images": fooled, "steps": steps},
    }
    generator = torch.Generator().manual_seed(0)
    noise = (0.5 + 0.15 * torch.randn(1, 3, SIZE, SIZE, generator=generator)).clamp(0, 1)
    vis_images = torch.cat([photos[:1], noise])
    vis_targets = torch.tensor(VIS_TARGETS, dtype=torch.int64)
    cases["class_visualization_step"] = {
        "inputs": {"images": vis_images, "targets": vis_targets, "l2_reg": torch.tensor(VIS_L2_REG),
                   "learning_rate": torch.tensor(VIS_LEARNING_RATE), "jitter": torch.tensor(VIS_JITTER)},
        "output": class_visualization_step(model, vis_images, vis_targets, VIS_L2_REG, VIS_LEARNING_RATE,
                                           jitter=VIS_JITTER),
    }
    return cases


CHECKS = {
    "fooling_step": check_fooling_step,
    "make_fooling_image": check_make_fooling_image,
    "class_visualization_step": check_class_visualization_step,
}
