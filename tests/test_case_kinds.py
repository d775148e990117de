"""The public cases cover every kind of input the hidden cases use (hidden cases differ in values, not in
kinds), so a submission that passes every public case is not failed by a kind of input it never saw: a
non-square image, a batch of one, float64, a non-contiguous or channels-last layout. The hidden cases meet every
special outcome the public ones show (an image never fooled). And every stored mistake that fails a hidden case
also fails a public one."""
from collections import defaultdict

import os

import pytest
import torch

from checks.judge import references
from checks.child import specs
from tools.build_references import HIDDEN_DIR


def kinds(case: dict) -> set[tuple]:
    """(input, dtype, square or not, a batch of one or not, layout) of each floating-point input of 2-D or more."""
    found = set()

    def walk(value, name):
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and value.dim() >= 2:
                found.add((name, str(value.dtype).removeprefix("torch."),
                           "square" if value.shape[-1] == value.shape[-2] else "not square",
                           "batch of one" if value.dim() == 4 and value.shape[0] == 1 else "",
                           case.get("layout", "contiguous")))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, k if name == "" else name)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, name)

    walk(case["inputs"], "")
    return found


def _cases(topic: str) -> tuple[list, list]:
    return (references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"],
            references.load(HIDDEN_DIR / f"{topic}.pt")["cases"])


@pytest.mark.parametrize("check", list(specs.SPECS))
def test_every_kind_of_hidden_input_is_among_the_public_cases(check):
    public, hidden = _cases(specs.SPECS[check].topic)
    seen = set().union(*[kinds(c) for c in public if c["check"] == check])
    needed = set().union(*[kinds(c) for c in hidden if c["check"] == check])
    assert needed <= seen, f"hidden-only kinds of input: {sorted(needed - seen)}"


def kinds_of_outcome(case: dict) -> set[tuple]:
    """(output, value) for each count the contract gives a meaning of its own (-1: never reached, 0: at the
    start) that an integer output of the reference holds: an image never fooled is a kind of case too."""
    output = case["output"] if isinstance(case["output"], dict) else {"output": case["output"]}
    return {(name, value) for name, tensor in output.items()
            if isinstance(tensor, torch.Tensor) and not tensor.is_floating_point() and tensor.dtype != torch.bool
            for value in (-1, 0) if bool((tensor == value).any())}


@pytest.mark.parametrize("check", list(specs.SPECS))
def test_the_hidden_cases_meet_every_kind_of_outcome_the_public_ones_show(check):
    """The grader sees each special count a student's own checks show (an image never fooled, one fooled at
    the start), or a bug in that branch passes the grader."""
    public, hidden = _cases(specs.SPECS[check].topic)
    shown = set().union(*[kinds_of_outcome(c) for c in public if c["check"] == check])
    graded = set().union(*[kinds_of_outcome(c) for c in hidden if c["check"] == check])
    assert shown <= graded, f"public-only kinds of outcome: {sorted(shown - graded)}"


@pytest.mark.parametrize("check", ["content_loss", "gram_matrix", "style_loss", "tv_loss"])
def test_the_tensor_losses_meet_float64_and_non_contiguous_inputs(check):
    public, _ = _cases(specs.SPECS[check].topic)
    found = set().union(*[kinds(c) for c in public if c["check"] == check])
    assert any(k[1] == "float64" and k[4] == "transposed" for k in found), found
    assert any(k[2] == "not square" for k in found) or check in ("content_loss",), found


def _failing(topic: str) -> dict[tuple, tuple[list, list]]:
    """(check, stored mistake's cause) -> (labels of the public cases it fails, of the hidden ones)."""
    failed = defaultdict(lambda: ([], []))
    for i, cases in enumerate(_cases(topic)):
        for case in cases:
            for mistake in case["mistakes"]:
                failed[(case["check"], mistake["cause"])][i].append(case["label"])
    return failed


@pytest.mark.parametrize("topic", list(specs.TOPICS))
def test_a_stored_mistake_that_fails_a_hidden_case_fails_a_public_one(topic):
    only_hidden = {key: hidden for key, (public, hidden) in _failing(topic).items() if hidden and not public}
    assert not only_hidden, only_hidden


@pytest.mark.parametrize("topic", list(specs.TOPICS))
def test_a_stored_mistake_that_fails_a_public_case_fails_a_hidden_one(topic):
    """The grader counts hidden cases only: it must see every mistake a student's own checks show."""
    only_public = {key: public for key, (public, hidden) in _failing(topic).items() if public and not hidden}
    assert not only_public, only_public


@pytest.mark.parametrize("check, old, new", [
    ("fooling_step", "norms = grad.flatten(1).norm(dim=1)", "norms = grad.view(len(grad), -1).norm(dim=1)"),
    ("class_visualization_step", "norms = grad.flatten(1).norm(dim=1)", "norms = grad.view(len(grad), -1).norm(dim=1)"),
])
def test_a_view_that_needs_contiguous_images_fails_on_the_channels_last_cases(check, old, new):
    """A real bug the contiguous cases let pass: ``.view`` needs contiguous strides, and a channels-last image
    (a valid (N, 3, H, W) tensor) gives a channels-last gradient. It fails on a public and on a hidden case,
    and only on the channels-last ones."""
    from checks.child.compute import compute_case
    from checks.judge import run_check
    from tools.build_references import mutated_module

    spec = specs.SPECS[check]
    module = mutated_module(spec.topic, [{"replace": old, "with": new}], check, check)
    for cases in _cases(spec.topic):
        mine = [c for c in cases if c["check"] == check]
        verdict = run_check(spec, mine, lambda case: compute_case(spec, module, case))
        if os.environ.get("CONVLENS_CHANNELS_LAST") == "1":  # the network channels-last (tests/numeric_settings.py)
            # makes every gradient channels-last: the view fails on every case, and the line still says why
            assert not verdict.passed and "use .reshape(...)" in verdict.line, verdict.line
            continue
        assert not verdict.passed and "channels-last" in verdict.line, verdict.line
        others = [c for c in mine if c.get("layout") != "channels_last"]
        assert run_check(spec, others, lambda case: compute_case(spec, module, case)).passed
