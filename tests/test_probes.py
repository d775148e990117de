"""Every probe (checks/child/probes.py) that can find something is shown finding it, once, with its own line; a
probe added without a case here fails the first test. Findings come in the probes' order: what the call left
behind before its own exception."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from checks import check
from checks.child.probes import PROBES, Probe

ROOT = Path(__file__).resolve().parents[1]


def with_function(topic: str, code: str) -> types.ModuleType:
    """The solution module with ``code`` appended (a replacement of one function)."""
    module = types.ModuleType(f"helpers.{topic}")
    module.__file__ = str(ROOT / "helpers" / f"{topic}.py")
    text = (ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8") + "\n\n" + code
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module

KEEP = "    return images.abs().amax(1)\n"
HEAD = 'def saliency_map(model, images, labels, objective="score"):\n'

# probe -> (check, code that trips it and nothing before it, the start of what the line says after the label)
TRIPS = {
    "Forbidden": ("saliency_map", HEAD + "    from captum.attr import Saliency\n"
                  "    return Saliency(model).attribute(images, target=labels, abs=True).amax(1)\n",
                  "calls captum"),
    "Hooks": ("saliency_map", HEAD + "    model._fc.register_forward_hook(lambda m, i, o: None)\n" + KEEP,
              "hooks stay registered on the model"),
    "Modes": ("saliency_map", HEAD + "    model.train()\n" + KEEP, "the model was left in another mode"),
    "Weights": ("saliency_map", HEAD + "    with torch.no_grad():\n        model._fc.bias.add_(1.0)\n" + KEEP,
                "the model's weights were changed in place"),
    "InplaceFlag": ("saliency_map", HEAD + "    for m in model.modules():\n        if hasattr(m, 'inplace'):\n"
                    "            m.inplace = not m.inplace\n" + KEEP, "the model's inplace flag was changed"),
    "Budget": ("make_fooling_image", "def make_fooling_image(model, images, targets, step_size=1.0, max_steps=100,\n"
               "                       extra_steps=2):\n"
               "    while True:\n        model(images)\n", "the loop did not stop"),
    "Raised": ("saliency_map", HEAD + "    raise ValueError('no')\n", "raised ValueError"),
    "Flags": ("saliency_map", HEAD + "    next(model.parameters()).requires_grad_(True)\n" + KEEP,
              "the model's requires_grad flags were changed"),
    "RandomState": ("saliency_map", HEAD + "    torch.rand(1)\n" + KEEP, "torch's global random state was changed"),
    "Gradients": ("saliency_map", HEAD + "    p = model._fc.bias\n    p.requires_grad_(True)\n"
                  "    model(images).sum().backward()\n    p.requires_grad_(False)\n" + KEEP,
                  "gradients leaked into the model's parameters"),
    "Inputs": ("saliency_map", HEAD + "    images.mul_(2.0)\n" + KEEP, "images was modified in place"),
}


def test_every_probe_that_finds_something_is_tripped_here():
    finders = {probe.__name__ for probe in PROBES if probe.message or probe.finding is not Probe.finding}
    assert finders == set(TRIPS)


@pytest.mark.parametrize("probe", list(TRIPS))
def test_a_probe_names_what_it_found(probe):
    name, code, words = TRIPS[probe]
    topic = "saliency" if name == "saliency_map" else "fooling"
    verdict = check(name, module=with_function(topic, code), quiet=True)
    assert not verdict.passed
    assert words in verdict.line, verdict.line


def test_what_was_left_behind_comes_before_the_calls_own_exception():
    code = HEAD + "    model.train()\n    raise ValueError('no')\n"
    verdict = check("saliency_map", module=with_function("saliency", code), quiet=True)
    assert "the model was left in another mode" in verdict.line, verdict.line


def test_the_next_case_starts_from_the_state_before_the_call():
    # every probe undoes what it saw changed: the solution passes right after each trip
    for probe, (name, code, _) in TRIPS.items():
        topic = "saliency" if name == "saliency_map" else "fooling"
        check(name, module=with_function(topic, code), quiet=True)
        assert check(name, quiet=True).passed, probe


def test_every_probe_undoes_its_change_even_when_an_earlier_finding_is_reported():
    # a hook left (reported first) and weights changed: the weights are restored all the same
    code = (HEAD + "    model._fc.register_forward_hook(lambda m, i, o: None)\n"
            "    with torch.no_grad():\n        model._fc.bias.add_(1.0)\n" + KEEP)
    verdict = check("saliency_map", module=with_function("saliency", code), quiet=True)
    assert "hooks stay registered" in verdict.line, verdict.line
    assert check("saliency_map", quiet=True).passed
