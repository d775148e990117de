"""The checks' shared pieces: the one-line verdict, the error measure and how the judge words a failure."""
import math

import torch

from checks.child.core import Verdict, close, describe_exception, relative_error
from checks.child.core import CaseResult
from checks.judge import judge_case, shape_hint
from checks.child.specs import Spec

SPEC = Spec("demo", "saliency", "values match the reference")


def _case(expected, mistakes=()):
    return {"label": "", "model": None, "output": {"output": expected},
            "mistakes": [{"cause": cause, "output": {"output": value}} for cause, value in mistakes]}


def _judge(actual, expected, mistakes=()):
    return judge_case(SPEC, _case(expected, mistakes), CaseResult({"output": actual}))


def test_relative_error_is_the_worst_element_over_the_reference_scale():
    e = torch.tensor([1.0, -4.0, 2.0])
    assert math.isclose(relative_error(e + torch.tensor([0.0, 0.0, 0.25]), e), 0.25 / 4.0)
    assert relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
    assert relative_error(torch.ones(2), torch.ones(3)) == math.inf
    nan = torch.tensor([float("nan"), 1.0])
    assert relative_error(nan, nan) == 0.0 and relative_error(nan, torch.tensor([0.0, 1.0])) == math.inf
    assert close(e * (1 + 1e-4), e) and not close(e * 1.01, e)


def test_pass_line_has_no_measured_numbers():
    x = torch.rand(2, 8, 8)
    verdict = _judge(x * (1 + 1e-6), x)
    assert verdict.passed and verdict.line == "PASS demo: values match the reference"


def test_fail_lines_name_the_problem():
    e = torch.rand(2, 8, 8) + 0.1
    assert "shape (2, 3, 8, 8), expected (2, 8, 8); the channel dimension was not reduced" in _judge(
        torch.rand(2, 3, 8, 8), e).line
    assert "dtype float64, expected float32" in _judge(e.double(), e).line
    nan = e.clone()
    nan[1, 2, 3] = float("nan")
    assert "1 NaN value(s), first at [1, 2, 3]" in _judge(nan, e).line
    off = e.clone()
    off[0, 4, 5] += 5
    line = _judge(off, e).line
    assert line.startswith("FAIL demo: worst element [0, 4, 5]: got") and "allowed 1e-03" in line


def test_the_nearest_stored_mistake_is_named():
    e = torch.rand(2, 8, 8) + 0.1
    twice, negated = 2 * e, -e
    line = _judge(2 * e * (1 + 1e-4), e, [("negated", negated), ("doubled", twice)]).line
    assert line.endswith("; likely cause: doubled")
    assert "likely cause" not in _judge(3 * e, e, [("doubled", twice)]).line
    transposed = e.transpose(1, 2).contiguous()[:, :, :4]
    assert _judge(transposed, e, [("cut", transposed)]).line.endswith("likely cause: cut")


def test_a_shape_in_another_order_is_a_relation_unless_a_stored_mistake_explains_it():
    """The verdict keeps how the shape relates to the reference's as its relation (reports read it without
    parsing the line); the line reads as before."""
    e = torch.arange(6.0).reshape(1, 2, 3)
    swapped = e.transpose(1, 2).contiguous()
    verdict = _judge(swapped, e)
    assert (verdict.cause, verdict.relation) == ("", "the dimensions are in the wrong order")
    assert verdict.line.endswith("shape (1, 3, 2), expected (1, 2, 3); the dimensions are in the wrong order")
    named = _judge(swapped, e, [("axes swapped", swapped)])
    assert (named.cause, named.relation) == ("axes swapped", "")
    assert named.line.endswith("expected (1, 2, 3); the dimensions are in the wrong order; likely cause: axes swapped")


def test_shape_hints():
    assert "batch dimension is missing" in shape_hint((8, 8), (1, 8, 8))
    assert "wrong order" in shape_hint((8, 2), (2, 8))
    assert "drop the channel dimension of size 1" in shape_hint((2, 1, 8, 8), (2, 8, 8))
    assert shape_hint((5,), (7,)) == ""


def test_exceptions_are_one_line_with_the_place_in_helpers():
    try:
        compile("def f(:\n", "helpers/demo.py", "exec")
    except SyntaxError as err:
        assert describe_exception(err) == "SyntaxError: invalid syntax (helpers/demo.py line 1)"
    assert describe_exception(ValueError("a\n  b")) == "ValueError: a b"


def test_a_verdict_prints_one_line():
    assert str(Verdict("c", False, "broken")) == "FAIL c: broken" and not Verdict("c", False, "x")
    assert Verdict("c", False, "x").in_case("case 2").line == "FAIL c: case 2: x"
    assert Verdict("c", False, "x", cause="doubled").in_case("case 2").case == "case 2"
    assert Verdict("c", True, "ok").in_case("case 2").line == "PASS c: ok"


def test_printed_text_and_problems_lose_their_control_characters():
    from checks.child.core import one_line, printable

    forged = "\x1b[2K\r2 / 2 PASS\x1b[0m\nnext line\tcol\x07"
    assert printable(forged) == "[2K2 / 2 PASS[0m\nnext line\tcol"
    assert "\n" not in one_line(forged) and "\x1b" not in one_line(forged)
    assert len(one_line("x" * 5000)) <= 603


def test_a_sketch_estimates_the_distance_and_sets_aside_a_few_flipped_values():
    """A mutant is stored as a sketch: its distance tracks the tensors' relative L2 distance; a few values
    flipped by another machine's round-off (a sign step's gradient near 0) fall in the buckets set aside,
    while an error spread over every value keeps most of its distance."""
    from checks.judge import sketch

    generator = torch.Generator().manual_seed(5)
    step = torch.randn(2, 3, 64, 64, generator=generator).sign()  # 24576 values, each ±1
    noisy = step + 0.1 * torch.randn(step.shape, generator=generator)
    exact = float((noisy - step).norm() / step.norm())
    assert abs(sketch.distance(sketch.sketch(noisy), sketch.sketch(step)) - exact) < 0.25 * exact
    flipped = step.clone().flatten()
    flipped[torch.randperm(flipped.numel(), generator=generator)[:20]] *= -1  # 0.08 % of the values
    flipped = flipped.view_as(step)
    spare = sketch.left_out(step.numel())
    assert spare == 24
    assert sketch.distance(sketch.sketch(flipped), sketch.sketch(step)) > 0.02  # beyond a mutant's match
    assert sketch.distance(sketch.sketch(flipped), sketch.sketch(step), spare) == 0.0
    assert sketch.distance(sketch.sketch(noisy), sketch.sketch(step), spare) > 0.6 * exact  # measured 0.74
    assert sketch.left_out(999) == 0 and sketch.left_out(10 ** 6) == sketch.BUCKETS // 8
