"""The checks: solutions pass every case, every known mistake fails and is named, one bug costs one check,
library shortcuts are caught, and each kind of side effect gets its own line."""
from __future__ import annotations

import types
from collections import Counter
from pathlib import Path

import pytest
import torch

from checks import check
from checks.judge import references
from checks.child import specs
from checks.child.compute import compute_case
from checks.judge import run_check
from tools import exercises
from tools.build_references import HIDDEN_DIR, mutated_module
from tools.release import stub_source

ROOT = Path(__file__).resolve().parents[1]
MISTAKES = exercises.mistakes()
VARIANTS = exercises.variants()


def module_from(topic: str, text: str) -> types.ModuleType:
    module = types.ModuleType(f"helpers.{topic}")
    module.__file__ = str(ROOT / "helpers" / f"{topic}.py")
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def solution_text(topic: str) -> str:
    return (ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8")


def with_function(topic: str, code: str) -> types.ModuleType:
    """The solution module with extra code appended (e.g. a replacement of one function)."""
    return module_from(topic, solution_text(topic) + "\n\n" + code)


@pytest.mark.parametrize("name", list(specs.SPECS))
def test_solution_passes_every_public_and_hidden_case(name):
    spec = specs.SPECS[name]
    module = module_from(spec.topic, solution_text(spec.topic))
    cases = references.public_cases(name, spec.topic) + references.public_cases(name, spec.topic, HIDDEN_DIR)
    assert cases, f"{name} has no cases"
    verdict = run_check(spec, cases, lambda case: compute_case(spec, module, case))
    assert verdict.passed, verdict.line
    assert verdict.line == f"PASS {name}: {spec.what}"


def test_every_check_has_public_and_hidden_cases():
    for name, spec in specs.SPECS.items():
        assert references.public_cases(name, spec.topic), name
        assert references.public_cases(name, spec.topic, HIDDEN_DIR), name


@pytest.mark.parametrize("topic", list(specs.TOPICS))
def test_a_stub_says_not_implemented(topic, capsys):
    stubs = module_from(topic, stub_source(solution_text(topic), f"helpers/{topic}.py"))
    for name in specs.checks_of(topic):
        verdict = check(name, module=stubs)
        assert verdict.line == f"FAIL {name}: not implemented yet: fill in the TODO in helpers/{topic}.py ({name})"
    assert capsys.readouterr().out.count("\n") == len(specs.checks_of(topic))


def test_the_mistake_corpus_is_large_enough():
    per_check = Counter(m["check"] for m in MISTAKES)
    assert len(MISTAKES) >= 60
    assert all(per_check[name] >= 3 for name in specs.SPECS), per_check
    assert per_check["style_transfer"] >= 8


@pytest.mark.parametrize("mistake", MISTAKES, ids=[f"{m['check']}-{i}" for i, m in enumerate(MISTAKES)])
def test_every_known_mistake_fails_and_names_its_cause(mistake):
    spec = specs.SPECS[mistake["check"]]
    verdict = check(spec.name, module=mutated_module(spec.topic, mistake["edit"], spec.name, spec.name), quiet=True)
    assert not verdict.passed, f"{mistake['cause']!r} passes"
    assert mistake.get("expect", mistake["cause"]) in verdict.line, verdict.line


def test_every_loop_stores_three_correct_variants():
    per_check = Counter(v["check"] for v in VARIANTS)
    loops = [name for name, spec in specs.SPECS.items() if spec.inputs in ("small_loop", "style_loop")]
    assert loops and all(per_check[name] >= 3 for name in loops), per_check


@pytest.mark.parametrize("variant", VARIANTS, ids=[f"{v['check']}-{i}" for i, v in enumerate(VARIANTS)])
def test_every_stored_correct_variant_passes_every_case(variant):
    """Written differently (another memory, the clamp elsewhere, another loop), still correct: the check
    judges what the run achieved, so every variant passes its public and hidden cases."""
    spec = specs.SPECS[variant["check"]]
    module = mutated_module(spec.topic, variant["edit"], variant["name"], spec.name)
    cases = references.public_cases(spec.name, spec.topic) + references.public_cases(spec.name, spec.topic, HIDDEN_DIR)
    verdict = run_check(spec, cases, lambda case: compute_case(spec, module, case))
    assert verdict.passed, f"{variant['name']}: {verdict.line}"


def _mistake(check_name: str) -> dict:
    return next(m for m in MISTAKES if m["check"] == check_name)


@pytest.mark.parametrize("caller", [name for name, spec in specs.SPECS.items() if spec.stand_ins])
def test_one_bug_costs_one_check(caller):
    """A wrong callee does not fail the checks of the functions that call it."""
    spec = specs.SPECS[caller]
    edits = [edit for callee in spec.stand_ins for edit in _mistake(callee)["edit"]]
    broken = mutated_module(spec.topic, edits, f"broken {', '.join(spec.stand_ins)}")
    for callee in spec.stand_ins:
        assert not check(callee, module=broken, quiet=True).passed
    assert check(caller, module=broken, quiet=True).passed


def test_a_wrong_gram_matrix_fails_exactly_the_gram_check():
    broken = mutated_module("style", [{"replace": "gram = gram / (c * h * w)", "with": "gram = gram / (h * w)"}],
                            "wrong Gram denominator")
    failed = [name for name in specs.checks_of("style") if not check(name, module=broken, quiet=True).passed]
    assert failed == ["gram_matrix"]


def test_checks_ignore_the_students_settings():
    """Every constant a check needs lives in the checks: a student's own defaults change nothing."""
    module = with_function("style", "import convlens.style as _s\n"
                                             "DEFAULT_SETTINGS = _s.DEFAULT_SETTINGS.scaled(tv=100.0)\n")
    assert check("style_transfer", module=module, quiet=True).passed


@pytest.mark.parametrize("name, code, called", [
    ("occlusion_map", """
def occlusion_map(model, images, labels, window=16, stride=8, fill=0.5):
    from captum.attr import Occlusion
    probs = lambda x: torch.softmax(model(x), dim=1)
    return Occlusion(probs).attribute(images, target=labels, sliding_window_shapes=(3, window, window),
                                      strides=stride, baselines=fill)[:, 0].detach()
""", "captum.attr.Occlusion"),
    ("grad_cam", """
def grad_cam(model, images, labels, layer="head", normalize=True):
    from captum.attr import LayerGradCam
    from convlens.model import get_layer
    maps = LayerGradCam(model, get_layer(model, layer)).attribute(images, target=labels, relu_attributions=True)
    return torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode="bilinear")[:, 0].detach()
""", "captum.attr.LayerGradCam"),
    ("guided_backprop", """
def guided_backprop(model, images, labels):
    import captum.attr as ca
    return ca.GuidedBackprop(model).attribute(images.clone(), target=labels).detach()
""", "captum.attr.GuidedBackprop"),
    ("saliency_map", """
def saliency_map(model, images, labels, objective="score"):
    from convlens.attribution import fast_integrated_gradients
    return fast_integrated_gradients(model, images, labels, steps=2).abs().amax(1)
""", "convlens.attribution.fast_integrated_gradients"),
])
def test_calling_a_library_implementation_of_the_exercise_fails(name, code, called):
    topic = specs.SPECS[name].topic
    verdict = check(name, module=with_function(topic, "import torch\n" + code), quiet=True)
    assert verdict.line == f"FAIL {name}: calls {called}: the exercise is to write it yourself"


SIDE_EFFECTS = {
    "in place": ("""
def saliency_map(model, images, labels, objective="score"):
    images.mul_(1.0 + 1e-3)
    return images.abs().amax(1)
""", "FAIL saliency_map: objective='score': images was modified in place; work on a copy (x.clone())"),
    "grad left": ("""
def saliency_map(model, images, labels, objective="score"):
    images.requires_grad_(True)
    model(images).sum().backward()
    images.requires_grad_(False)
    return images.grad.abs().amax(1)
""", "FAIL saliency_map: objective='score': images has a .grad left on it; compute gradients on a copy"),
    "model grads": ("""
def saliency_map(model, images, labels, objective="score"):
    weights = list(model.parameters())
    for p in weights:
        p.requires_grad_(True)
    model(images).sum().backward()
    for p in weights:
        p.requires_grad_(False)
    return images.amax(1)
""", "FAIL saliency_map: objective='score': gradients leaked into the model's parameters (.grad is set)"),
    "flags": ("""
def saliency_map(model, images, labels, objective="score"):
    for p in model.parameters():
        p.requires_grad_(True)
    return images.amax(1)
""", "FAIL saliency_map: objective='score': the model's requires_grad flags were changed and not restored"),
    "weights": ("""
def saliency_map(model, images, labels, objective="score"):
    with torch.no_grad():
        model._fc.weight.mul_(2.0)
    return images.amax(1)
""", "FAIL saliency_map: objective='score': the model's weights were changed in place; never modify the model"),
    "attached": ("""
def saliency_map(model, images, labels, objective="score"):
    return images.clone().requires_grad_(True).amax(1)
""", "FAIL saliency_map: objective='score': the output still requires grad; return it with .detach()"),
    "none": ("""
def saliency_map(model, images, labels, objective="score"):
    x = images.amax(1)
""", "FAIL saliency_map: objective='score': returned None; did you forget the return statement?"),
    "shape": ("""
def saliency_map(model, images, labels, objective="score"):
    return images.abs()
""", "FAIL saliency_map: objective='score': shape (2, 3, 160, 160), expected (2, 160, 160); the channel dimension "
        "was not reduced"),
    "raises": ("""
def saliency_map(model, images, labels, objective="score"):
    return images.view(-1, 7)
""", "FAIL saliency_map: objective='score': raised RuntimeError"),
}


@pytest.mark.parametrize("kind", list(SIDE_EFFECTS))
def test_each_kind_of_problem_gets_its_own_line(kind):
    code, expected = SIDE_EFFECTS[kind]
    verdict = check("saliency_map", module=with_function("saliency", code), quiet=True)
    assert verdict.line.startswith(expected), verdict.line
    assert "\n" not in verdict.line


def test_hooks_left_when_the_forward_pass_raises_are_caught():
    module = with_function("gradcam", """
def guided_backprop(model, images, labels):
    def clamp_on_the_way_back(module, inputs, output):
        output.register_hook(lambda g: g.clamp(min=0))

    handles = [m.register_forward_hook(clamp_on_the_way_back) for m in model.modules() if isinstance(m, nn.ReLU)]
    x = images.detach().clone().requires_grad_(True)
    score = model(x).gather(1, labels.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(score, x)
    for h in handles:
        h.remove()
    return grad
""")
    verdict = check("guided_backprop", module=module, quiet=True)
    assert verdict.line == ("FAIL guided_backprop: when the forward pass raises: hooks stay registered on the model "
                            "when the forward pass raises; remove every handle you registered (handle.remove()) "
                            "whatever happens: try: ... finally:")


def test_full_backward_hooks_on_inplace_activations_are_explained():
    module = with_function("gradcam", """
def guided_backprop(model, images, labels):
    hook = lambda mod, gin, gout: (gin[0].clamp(min=0),)
    handles = [m.register_full_backward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        x = images.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, labels.view(-1, 1)).sum(), x)
    finally:
        for h in handles:
            h.remove()
    return grad
""")
    line = check("guided_backprop", module=module, quiet=True).line
    assert line.startswith("FAIL guided_backprop: with in-place activations (ReLU6(inplace=True)): raised")
    assert "use a forward hook that calls output.register_hook" in line


def test_reference_files_hold_no_hidden_case_and_the_hidden_files_no_public_one():
    for topic in specs.TOPICS:
        public = references.load(references.REFERENCES_DIR / f"{topic}.pt")
        hidden = references.load(HIDDEN_DIR / f"{topic}.pt")
        assert not public["meta"].get("hidden") and hidden["meta"]["hidden"]
        assert len(public["cases"]) and len(hidden["cases"])


def test_without_answers_removes_outputs_and_mistakes():
    case = references.public_cases("gram_matrix", "style")[0]
    seen = references.without_answers(case)
    assert "output" not in seen and "mistakes" not in seen and torch.is_tensor(seen["inputs"]["features"])


CORRECT_VARIANTS = {
    "saliency_map": ("saliency", """
def saliency_map(model, images, labels, objective="score"):
    maps = []
    for image, label in zip(images, labels):  # one image at a time, .backward() and x.grad
        x = image[None].clone().requires_grad_(True)
        logits = model(x)
        value = logits[0, label] if objective == "score" else torch.nn.functional.cross_entropy(logits, label[None])
        value.backward()
        maps.append(x.grad[0].abs().max(dim=0).values)
    return torch.stack(maps)
"""),
    "gram_matrix": ("style", """
def gram_matrix(features, normalize=True):
    gram = torch.einsum("nchw,ndhw->ncd", features, features)
    return gram / features[0].numel() if normalize else gram
"""),
    "tv_loss": ("style", """
def tv_loss(img, tv_weight):
    return tv_weight * (torch.diff(img, dim=2).square().sum() + torch.diff(img, dim=3).square().sum())
"""),
    "make_fooling_image": ("fooling", """
def make_fooling_image(model, images, targets, step_size=1.0, max_steps=100, extra_steps=2):
    single = images.dim() == 3
    batch = images[None] if single else images
    targets = as_targets(targets, batch.shape[0], batch.device)
    results, counts = [], []
    for image, target in zip(batch, targets):  # one image at a time
        x, first, streak, taken = image[None].clone(), -1, 0, 0
        with torch.no_grad():
            if model(x).argmax(1).item() == target.item():
                first, streak = 0, 1
        while streak <= extra_steps and taken < (max_steps + extra_steps if first >= 0 else max_steps):
            x = fooling_step(model, x, target[None], step_size)
            taken += 1
            with torch.no_grad():
                hit = model(x).argmax(1).item() == target.item()
            streak = streak + 1 if hit else 0
            if hit and first < 0:
                first = taken
        results.append(x[0])
        counts.append(first)
    fooled = torch.stack(results)
    return (fooled[0] if single else fooled), torch.tensor(counts, device=batch.device)
"""),
    "class_visualization_step": ("fooling", """
def class_visualization_step(model, images, targets, l2_reg, learning_rate, jitter=(0, 0)):
    ox, oy = jitter
    x = images.roll(oy, dims=2).roll(ox, dims=3).detach().requires_grad_(True)
    score = model(x)[torch.arange(len(x)), targets]
    objective = (score - l2_reg * (x ** 2).flatten(1).sum(1)).sum()
    objective.backward()
    g = x.grad
    step = learning_rate * g / g.flatten(1).norm(dim=1)[:, None, None, None]
    return (x + step).detach().roll(-oy, dims=2).roll(-ox, dims=3).clamp(0, 1)
"""),
}


@pytest.mark.parametrize("name", list(CORRECT_VARIANTS))
def test_a_correct_solution_written_differently_passes(name):
    topic, code = CORRECT_VARIANTS[name]
    verdict = check(name, module=with_function(topic, "import torch\n" + code), quiet=True)
    assert verdict.passed, verdict.line


# First tries of a student that are not stored mistakes (or were not when they were reported): each line
# must still say what is wrong, not only "got X, expected Y".
FIRST_TRIES = [
    ("gradcam", "grad_cam", "images = images.detach().clone().requires_grad_(True)\n    saved",
     "images = images.detach().clone()\n    saved", "needs requires_grad_(True)"),
    ("gradcam", "grad_cam", "peak = cam.amax(dim=(1, 2), keepdim=True)", "peak = cam.max()",
     "a normalization over the whole batch"),
    ("style", "style_loss", "        total = term if total is None else total + term\n",
     "        total = term if total is None else total + term\n        return total\n", "left out"),
    ("style", "style_loss", "        total = term if total is None else total + term\n", "        total = term\n",
     "only the last layer"),
    ("style", "style_transfer", "                    opt.step(closure)\n                    decay.step()",
     "                    decay.step()\n                    opt.step(closure)", "the losses along the way: evaluation 2"),
    ("style", "style_transfer", "s_loss = style_loss(style_feats, settings.style_layers, targets, settings.style_weights)",
     "s_loss = style_loss(style_feats, settings.style_layers, targets, settings.style_weights[::-1])",
     "total, style differ, content, tv match"),
]


@pytest.mark.parametrize("topic, name, old, new, words", FIRST_TRIES)
def test_first_tries_get_a_cause(topic, name, old, new, words):
    verdict = check(name, module=mutated_module(topic, [{"replace": old, "with": new}], name), quiet=True)
    assert not verdict.passed and words in verdict.line, verdict.line


# Side effects a submission's process could hide (a harness replaced inside the child reports nothing): each
# one changes the clean pass after the call, which the judge compares, so the check fails all the same.
HIDDEN_SIDE_EFFECTS = [
    ("gradcam", "guided_backprop", "    finally:\n        for handle in handles:\n            handle.remove()\n",
     "    finally:\n        pass\n", "after your function returned"),
    ("saliency", "saliency_map", "    x = images.detach().clone().requires_grad_(True)\n    logits = model(x)\n",
     "    images.mul_(0.9)\n    x = images.detach().clone().requires_grad_(True)\n    logits = model(x)\n", ""),
    ("saliency", "saliency_map", "    x = images.detach().clone().requires_grad_(True)\n    logits = model(x)\n",
     "    model.train()\n    x = images.detach().clone().requires_grad_(True)\n    logits = model(x)\n", ""),
]


@pytest.mark.parametrize("topic, name, old, new, words", HIDDEN_SIDE_EFFECTS)
def test_side_effects_fail_through_compared_outputs_even_when_not_reported(monkeypatch, topic, name, old, new,
                                                                           words):
    import checks.child.compute

    monkeypatch.setattr(checks.child.compute, "_first", lambda findings: None)  # the child reports no side effect
    spec = specs.SPECS[name]
    module = mutated_module(topic, [{"replace": old, "with": new}], name)
    cases = references.public_cases(name, topic, HIDDEN_DIR)
    assert any(c.get("follow_up") for c in cases)
    verdict = run_check(spec, cases, lambda case: compute_case(spec, module, case))
    assert not verdict.passed and words in verdict.line, verdict.line


def test_a_history_that_lags_one_evaluation_behind_fails_on_its_last_entry():
    # Each entry is the previous evaluation's losses: the count, the start and the sums are right, and L-BFGS's
    # path is not compared; the checks compute the last evaluated image's loss again and find the lag.
    lag = ("        previous = getattr(closure, 'previous', None)\n"
           "        closure.previous = (total.detach(), c_loss.detach(), s_loss.detach(), t_loss.detach())\n"
           "        history.record(*(previous or closure.previous))\n")
    module = mutated_module("style", [{"replace": "        history.record(total, c_loss, s_loss, t_loss)\n",
                                       "with": lag}], "lagging history")
    verdict = check("style_transfer", module=module, quiet=True)
    assert not verdict.passed
    assert "the last history entry is not the loss of the last image evaluated" in verdict.line, verdict.line


def test_a_noise_start_drawn_another_way_is_told_the_contracts_draw():
    # The contract names the draw; uniform noise drawn as (N, H, W, 3) and permuted is other noise.
    draw = "        start = torch.rand(content.shape, generator=generator, device=content.device, dtype=content.dtype)\n"
    other = ("        n, c, h, w = content.shape\n        start = torch.rand((n, h, w, c), generator=generator, "
             "device=content.device, dtype=content.dtype).permute(0, 3, 1, 2)\n")
    module = mutated_module("style", [{"replace": draw, "with": other}], "noise drawn another way")
    verdict = check("style_transfer", module=module, quiet=True)
    assert not verdict.passed
    assert "with init='noise' the start is one torch.rand draw of shape (N, 3, H, W)" in verdict.line, verdict.line
