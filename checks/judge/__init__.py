"""Judge what a student's function computed: the side that knows the answers.

:func:`run_check` is the one loop from a check's cases to its verdict. It hands each case, without its
answers, to a ``compute`` function (in-process in the notebook; a child process's in ``kit.py check`` and in
the grader, which adds only its time limits) and judges each :class:`~checks.child.core.CaseResult` as it
arrives; the first failing case gives the FAIL line. Judging uses only stored tensors: no formula of an
exercise. When the values are wrong, the likely cause is the stored mistake (made by the instructor's build
from the solution plus one mutation each) whose outputs the student's outputs match; else a generated mutant
(tools/mutants.py) that gives the output to round-off; else the relation checks/judge/relations.py finds between the
output and the reference (a factor, a sign, swapped axes, a shift, a per-image normalization, an L2 ball);
else the nearest generated mutant. The verdict keeps these apart (checks/child/core.py's Verdict), for every report.
"""
from __future__ import annotations

from dataclasses import replace

from typing import Callable

import torch

from checks.child import outcomes, specs
from checks.judge import relations, sketch
from checks.child.core import (DEFAULT_TOL, FOLLOW_UP, FOLLOW_UP_TOL, GRADIENT, CaseResult, Kind, Verdict,
                               fmt_index, fmt_shape, relative_error)
from checks.judge.references import without_answers

# Problems that are the same in every case: their line needs no case label.
_SAME_IN_EVERY_CASE = (Kind.NOT_IMPLEMENTED, Kind.FORBIDDEN, Kind.MISSING, Kind.IMPORT_ERROR)


def run_check(spec: specs.Spec, cases: list[dict], compute: Callable[[dict], CaseResult]) -> Verdict:
    """One verdict for a check: ``compute(case without answers)`` on each case in turn, judged as it comes
    back; the first failing case's FAIL line (prefixed with the case's label), or PASS with ``spec.what``.

    When the first failure is a matter of values, the remaining cases run too, and the line names the cause
    that most failing cases agree on (:func:`_agreed_cause`): two mistakes can coincide on one case (a scale
    that normalization removes) and part ways on another."""
    for index, case in enumerate(cases):
        verdict = judge_case(spec, case, compute(without_answers(case)))
        if verdict.passed:
            continue
        if verdict.kind in _SAME_IN_EVERY_CASE:
            return verdict
        verdict = verdict.in_case(case.get("label", ""))
        if verdict.finding != "wrong values":
            return verdict
        return _agreed_cause(verdict, list(_other_failures(spec, cases[index + 1:], compute)))
    return Verdict(spec.name, True, spec.what)


# The process running the cases is gone or over its time: the remaining cases would each start it again.
_STOPS = (Kind.TIMEOUT, Kind.CRASHED, Kind.MALFORMED, Kind.KIT_ERROR)


def _other_failures(spec: specs.Spec, cases: list[dict], compute):
    """(label, verdict) of the cases after the first failing one that fail by their values; they stop at the
    first case whose process timed out or died."""
    for case in cases:
        verdict = judge_case(spec, case, compute(without_answers(case)))
        if verdict.kind in _STOPS:
            return
        if verdict.finding == "wrong values":
            yield case.get("label", ""), verdict


def _agreed_cause(first: Verdict, others: list[tuple[str, Verdict]]) -> Verdict:
    """``first`` with the cause (or relation) found in the most failing cases; on a tie, the first case's.
    A cause seen only in another case says in which."""
    votes: dict[tuple[str, str], list[str]] = {}
    for label, verdict in [("", first), *others]:
        if verdict.cause or verdict.relation:
            votes.setdefault((verdict.cause, verdict.relation), []).append(label)
    if not votes:
        return first
    mine = (first.cause, first.relation)
    best = max(votes, key=lambda k: (len(votes[k]), k == mine))
    if best == mine:
        return first
    where = f" (in the case {votes[best][0]!r})" if "" not in votes[best] else ""
    cause, relation = best
    return replace(first, cause=cause + where if cause else "", relation=relation + where if relation else "")


def judge_case(spec: specs.Spec, case: dict, result: CaseResult) -> Verdict:
    name = spec.name
    if not result.ok:
        return Verdict(name, False, str(result.problem), result.kind, finding=result.finding)
    outputs = result.outputs
    expected = case["output"]
    if case.get("model") == "raising":  # only what the call left behind is compared
        return _follow_up(spec, expected, outputs, Verdict(name, True, spec.what))
    if spec.measure is not None:
        return _judge_outcomes(spec, case, outputs)
    for part in spec.outputs:
        actual = outputs.get(part)
        problem, finding, hint = _structure(actual, expected[part], part if len(spec.outputs) > 1 else "")
        if problem:
            return _malformed(name, problem, finding, hint, _cause(spec, case, outputs))
    worst = None
    for part in spec.outputs:
        tol = spec.tol.get(part, DEFAULT_TOL)
        error = _error_beyond_kinks(outputs[part], expected[part], spec.kink_share)
        if error > tol:
            worst = worst or (part, error, tol)
    if worst is None:
        return _follow_up(spec, expected, outputs, _gradients(spec, case, expected, outputs))
    part, error, tol = worst
    # A stored mistake first, unless it lies only near and a generated mutant reproduces the output to
    # round-off; then a relation (which holds to round-off too); then the nearest mutant, which only lies near:
    # an exact statement beats an approximate one.
    (cause, near), relation = _stored_cause(spec, case, outputs), ""
    mutant, apart = ("", float("inf")) if cause and near <= relations.FIT else _mutant_cause(spec, case, outputs)
    if apart <= relations.FIT and not _same_mistake(spec, case, cause, mutant):
        cause = mutant
    if not cause and torch.is_floating_point(expected[part]):
        others = {p: expected[p] for p in spec.outputs if p != part}
        start = _step_start(case, expected[part])
        if start is not None:  # a step from an input: what it did is in the change, not in the whole image
            origin, before = start
            # the input itself becomes zero (the change's origin); the other inputs give their shapes only
            shapes = {k: torch.zeros_like(before) if k == origin else v.shape
                      for k, v in case.get("inputs", {}).items() if isinstance(v, torch.Tensor)}
            relation = relations.describe(outputs[part] - before, expected[part] - before, shapes, tol, (), others,
                                          _numbers(case), changes=True)
            relation = f"compared as changes from {origin}: {relation}" if relation else ""
        relation = relation or relations.describe(outputs[part], expected[part], case.get("inputs", {}), tol,
                                                  case.get("terms", ()), others, _numbers(case))
    if not cause and not relation:
        cause = mutant
    return Verdict(name, False, _difference(outputs[part], expected[part], error, tol,
                                            part if len(spec.outputs) > 1 else ""),
                   cause=cause, relation=relation, finding="wrong values")


def _numbers(case: dict) -> dict[str, float]:
    """{words naming it: value} for each number the case passes (a weight, a step size, a window), which a
    wrong output's factor may equal: a weight applied twice, or left out."""
    found = {}
    for value in case.get("args", ()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found.setdefault(f"the argument {value:g}", float(value))
    for key, value in case.get("kwargs", {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[f"`{key}` ({value:g})"] = float(value)
    return found


GRADIENT_TOL = 1e-3  # the same loss written another way: its gradient differs by round-off only


def _gradients(spec: specs.Spec, case: dict, expected: dict, outputs: dict) -> Verdict:
    """A FAIL when the loss's gradient with respect to an input the optimizer differentiates (``grad <label>``
    parts, checks/child/compute.py) differs from the reference's, else PASS."""
    for part in [p for p in expected if p.startswith(GRADIENT)]:
        label = part.removeprefix(GRADIENT)
        shown = next((label.replace(prefix, name, 1) for prefix, name in spec.differentiated.items()
                      if label == prefix or label.startswith(prefix + "[")), label)
        actual, wanted = outputs.get(part), expected[part]
        if actual is None or tuple(actual.shape) != tuple(wanted.shape):
            return Verdict(spec.name, False, f"the value is right, but it carries no gradient back to {shown}: the "
                                             "optimizer changes the image through it", finding="no gradient")
        if not bool(actual.abs().max() > 0) and bool(wanted.abs().max() > 0):
            return Verdict(spec.name, False, f"the value is right, but its gradient with respect to {shown} is zero "
                           f"({shown} detached, or used through .item() or NumPy?): the optimizer changes the image "
                           "through it", finding="no gradient")
        error = relative_error(actual, wanted)
        if error > GRADIENT_TOL:
            return Verdict(spec.name, False, f"the value is right, but its gradient with respect to {shown} is not "
                           f"(relative error {error:.2g}, allowed {GRADIENT_TOL:.0e}): part of the expression is "
                           "detached or computed outside torch", cause=_cause(spec, case, outputs),
                           finding="wrong gradient")
    return Verdict(spec.name, True, spec.what)


def _follow_up(spec: specs.Spec, expected: dict, outputs: dict, passed: Verdict) -> Verdict:
    """A FAIL when the clean pass after the call (checks/child/core.py's FOLLOW_UP) differs from the reference's,
    else ``passed``."""
    for part in FOLLOW_UP:
        if part not in expected:
            continue
        actual = outputs.get(part)
        if actual is None or tuple(actual.shape) != tuple(expected[part].shape) or not torch.isfinite(actual).all() \
                or relative_error(actual, expected[part]) > FOLLOW_UP_TOL[part]:
            what = "class scores" if part == "after_scores" else "input gradients"
            return Verdict(spec.name, False, f"after your function returned, a clean pass of the same model on the "
                           f"same images tensor gives other {what} than it should: something the call left "
                           "behind (a hook still on the model, the images changed in place, the model left in "
                           "another mode) changes what the next cell computes", finding="leaves something changed")
    return passed


def _judge_outcomes(spec: specs.Spec, case: dict, outputs: dict) -> Verdict:
    """A loop's verdict from its outcomes: each of ``spec.outcomes`` in turn, the student's run against the
    reference run; the first that fails gives the line, with the stored mistake whose outcomes these are."""
    first = spec.outputs[0]
    problem, finding, hint = _structure(outputs.get(first), case["output"][first], first)
    if problem:
        return _malformed(spec.name, problem, finding, hint, _cause(spec, case, outputs))
    inputs = case.get("inputs", {})
    mine, reference = spec.measure(inputs, outputs), spec.measure(inputs, case["output"])
    for outcome in spec.outcomes:
        gap = outcomes.gap(outcome, mine, reference)
        if gap > outcome.tol:
            # A stored run near the student's names the cause; else an exact relation (outcomes.relation);
            # else a stored run that only fails the same way (_outcome_cause's looser match).
            relation = outcomes.relation(outcome, mine, reference, _weights(case))
            cause = _outcome_cause(spec, case, mine, reference, same_way=not relation)
            relation = "" if cause else relation
            return Verdict(spec.name, False, outcomes.describe(outcome, mine, reference, case.get("kwargs"),
                                                               hint=not relation),
                           cause=cause, relation=relation, finding=f"outcome {outcome.name!r} off")
    return Verdict(spec.name, True, spec.what)


def _weights(case: dict) -> dict:
    """{name: value} of the numbers among a case's settings and keyword arguments (a list gives name[k])."""
    found = {}
    for source in (case.get("inputs", {}).get("settings", {}), case.get("kwargs", {})):
        if not isinstance(source, dict):
            continue
        for name, value in source.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for k, v in enumerate(values):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    found[f"{name}[{k}]" if len(values) > 1 else name] = float(v)
    return found


def _outcome_cause(spec: specs.Spec, case: dict, mine: dict, reference: dict, same_way: bool = True) -> str:
    """The words of the stored mistake whose run fails the same outcomes the same way (fewer
    evaluations, a loss too high...) and is nearest to the student's among those; else the nearest stored run
    within ``spec.mistake_tol``. A loop's trajectory depends on the machine's round-off (another CPU's kernels,
    oneDNN), the pattern of what fails much less. With ``same_way`` False, only a run within
    ``spec.mistake_tol`` counts."""
    inputs = case.get("inputs", {})
    pattern = outcomes.failures(spec.outcomes, mine, reference)

    def distance(theirs: dict) -> float:
        measured = spec.measure(inputs, theirs)
        near = outcomes.distance(spec.outcomes, mine, measured, reference)
        if same_way and outcomes.failures(spec.outcomes, measured, reference) == pattern:
            return min(near, PATTERN_MATCH) * spec.mistake_tol / PATTERN_MATCH
        return near

    return _nearest_cause(case, distance, spec.mistake_tol)[0]


# A stored loop mistake that fails the same outcomes in the same direction names the cause when its outcomes
# are within this (relative) distance of the student's: a tenth of the evaluations, a third of the loss.
PATTERN_MATCH = 0.5


def _malformed(name: str, problem: str, finding: str, hint: str, cause: str) -> Verdict:
    """The verdict on an output of the wrong form: the stored mistake it matches, else the shape's relation to
    the reference's (the dimensions in another order, a batch dimension missing) where there is one."""
    if cause and hint:
        return Verdict(name, False, f"{problem}; {hint}", cause=cause, finding=finding)
    return Verdict(name, False, problem, cause=cause, relation=hint, finding=finding)


def _structure(actual, expected: torch.Tensor, part: str) -> tuple[str, str, str]:
    """(what is wrong with the output's form (shape, dtype, NaNs), a few words for reports, how its shape relates
    to the reference's), or ('', '', '')."""
    where = f"{part}: " if part else ""
    if actual is None:
        return f"{where}missing from the result", "a part missing", ""
    if tuple(actual.shape) != tuple(expected.shape):
        return (f"{where}shape {fmt_shape(actual.shape)}, expected {fmt_shape(expected.shape)}", "wrong shape",
                shape_hint(actual.shape, expected.shape).removeprefix("; "))
    if actual.dtype != expected.dtype:
        wanted = str(expected.dtype).replace('torch.', '')
        hint = ""
        if actual.is_floating_point() and not expected.is_floating_point() and expected.dtype != torch.bool:
            hint = (f"whole numbers are {wanted}: make the tensor from Python ints (0, not 0.0) or "
                    f"with dtype=torch.{wanted}")
        elif expected.is_floating_point() and not actual.is_floating_point():
            hint = "the reference's values are fractions: integer arithmetic (// or an integer tensor) somewhere?"
        return (f"{where}dtype {str(actual.dtype).replace('torch.', '')}, expected {wanted}"), "wrong dtype", hint
    if torch.is_floating_point(actual):
        bad = ~torch.isfinite(actual)
        if bad.any() and not bool((bad == ~torch.isfinite(expected)).all()):
            index = tuple(bad.nonzero()[0].tolist())
            kind = "NaN" if torch.isnan(actual).any() else "inf"
            there = expected[bad & torch.isfinite(expected)]
            hint = ("the reference is 0 at each of them: a 0/0 there; keep the divisor above zero (clamp it) for "
                    "this input" if kind == "NaN" and there.numel() and bool((there == 0).all()) else "")
            return (f"{where}{int(bad.sum())} {kind} value(s), first at {fmt_index(index)}"
                    + ("" if hint else " (a division by zero?)"), f"{kind} values", hint)
    return "", "", ""


def _difference(actual: torch.Tensor, expected: torch.Tensor, error: float, tol: float, part: str) -> str:
    where = f"{part}: " if part else ""
    a, e = actual.to(torch.float64), expected.to(torch.float64)
    if not torch.is_floating_point(expected):
        bad = (a != e).nonzero()
        index = tuple(bad[0].tolist())
        if a.numel() <= 8:
            return f"{where}got {actual.tolist()}, expected {expected.tolist()}"
        return (f"{where}{len(bad)} of {a.numel()} values differ; first at {fmt_index(index)}: got {a[index].item():g}, "
                f"expected {e[index].item():g}")
    gap = torch.where(torch.isfinite(a) & torch.isfinite(e), (a - e).abs(), torch.zeros_like(a))
    index = tuple(int(i) for i in torch.unravel_index(gap.argmax(), a.shape)) if a.dim() else ()
    at = f"worst element {fmt_index(index)}: " if a.dim() else ""
    # Four digits: enough to read, and few enough that round-off (threads, devices) rarely shows.
    return (f"{where}{at}got {a[index].item():.4g}, expected {e[index].item():.4g} (error {error:.1e} of the "
            f"reference's scale; allowed {tol:.0e})")


def _cause(spec: specs.Spec, case: dict, outputs: dict) -> str:
    """The words of the stored mistake whose outputs these are nearest to, if near enough, else ''."""
    return _stored_cause(spec, case, outputs)[0]


# How near a single number (a loss) must be to a stored or generated mistake's: the same edit gives the same
# number up to round-off, and within spec.mistake_tol (2 %) another edit's number often lies by chance.
SCALAR_MATCH = 1e-3


def _match_tol(spec: specs.Spec, outputs: dict) -> float:
    single = all(outputs[part].numel() == 1 for part in spec.outputs if part in outputs)
    return min(spec.mistake_tol, SCALAR_MATCH) if single else spec.mistake_tol


STEP_SHARE = 0.5  # an output whose change from an input of its shape is under this share of its norm: a step


def _step_start(case: dict, expected: torch.Tensor):
    """(name, tensor) of the case's input that the reference output is a step from (same shape, and a change
    under STEP_SHARE of the output's norm: an image moved by one ascent step or an attack), else None. Mistakes in
    a step are told apart by the change they make: beside the whole image, any two steps lie close."""
    if not torch.is_floating_point(expected) or expected.dim() < 2:
        return None
    wanted = expected.detach().to(torch.float64)
    for name, value in case.get("inputs", {}).items():
        if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(expected.shape) \
                and value.is_floating_point():
            before = value.detach().to(torch.float64)
            change = (wanted - before).norm().item()
            if 0 < change <= STEP_SHARE * wanted.norm().item():
                return name, before
    return None


def _starts(spec: specs.Spec, case: dict) -> dict:
    """{part: the input that part's reference output is a step from (:func:`_step_start`)}."""
    return {part: start[1] for part in spec.outputs if (start := _step_start(case, case["output"][part])) is not None}


def _changes(starts: dict, tensors: dict) -> dict:
    """``tensors`` ({part: output}) with each step output made its change from the input in ``starts``."""
    changed = dict(tensors)
    for part, before in starts.items():
        if part in tensors and tuple(tensors[part].shape) == tuple(before.shape):
            changed[part] = tensors[part].detach().to(torch.float64) - before
    return changed


def _stored_cause(spec: specs.Spec, case: dict, outputs: dict) -> tuple[str, float]:
    """(the words of the stored mistake whose outputs these are nearest to, its distance) if near enough, else
    ('', inf). A step output is compared by its change from the input."""
    starts = _starts(spec, case)
    mine, wanted = _changes(starts, outputs), _changes(starts, case["output"])

    def apart(part: str, theirs: torch.Tensor) -> float:
        found = _distance(mine[part], theirs)
        if part not in outputs or mine[part] is outputs[part] or not torch.is_floating_point(theirs):
            return found
        # A mistake's change that is (nearly) nothing is measured against the reference's change, not with
        # scale 1: any small step would lie "near" a step never taken.
        own = float(theirs.abs().max())
        return found * (own or 1.0) / (max(own, float(wanted[part].abs().max())) or 1.0)

    def distance(theirs: dict) -> float:
        theirs = _changes(starts, {part: theirs[part] for part in spec.outputs if part in theirs})
        return max((apart(part, theirs[part]) if part in mine else float("inf")
                    for part in spec.outputs if part in theirs), default=float("inf"))

    deviation = max((relative_error(outputs[part], case["output"][part]) if part in outputs else float("inf")
                     for part in spec.outputs), default=float("inf"))
    return _nearest_cause(case, distance, _match_tol(spec, outputs), deviation)


def _mutant_cause(spec: specs.Spec, case: dict, outputs: dict) -> tuple[str, float]:
    """(the words of the generated mutant (tools/mutants.py) whose outputs' sketches are nearest to the
    student's, their distance relative to the output's scale) if near enough, else ('', inf)."""
    mutants = case.get("mutants", [])
    if not mutants:
        return "", float("inf")
    # A step output is compared by its change from the input: a sketch is linear, so the input's sketch is
    # taken off each one.
    starts = {part: sketch.sketch(before) for part, before in _starts(spec, case).items()}

    def change(part: str, s: torch.Tensor) -> torch.Tensor:
        return torch.cat([s[:-1] - starts[part][:-1], s[-1:]]) if part in starts else s

    mine = {part: change(part, sketch.sketch(outputs[part])) for part in spec.outputs if part in outputs}
    # As _distance leaves out the worst 0.1 % of the elements, a few buckets are left out: a gradient's sign
    # that another machine's round-off flips near 0 moves one value of a sign step by twice the step.
    spare = {part: sketch.left_out(outputs[part].numel()) for part in mine}

    def apart(theirs: dict) -> float:
        return max((sketch.distance(mine[part], change(part, s), spare[part]) if part in mine else float("inf")
                    for part, s in theirs.items()), default=float("inf"))

    reference = apart({part: sketch.sketch(case["output"][part]) for part in spec.outputs})
    best, best_distance = None, min(_match_tol(spec, outputs), 0.5 * reference)
    for mutant in mutants:
        found = apart(mutant["sketch"])
        if found <= best_distance:
            best, best_distance = mutant, found
    return (best["words"], best_distance) if best is not None else ("", float("inf"))


def _same_mistake(spec: specs.Spec, case: dict, cause: str, words: str) -> bool:
    """Whether the stored mistake ``cause`` and the generated mutant ``words`` give the same outputs on this
    case (one edit written twice): then the stored mistake's words, written for it, name it, even where
    another machine's round-off leaves the student's output only near the stored one."""
    stored = next((m["output"] for m in case.get("mistakes", []) if m["cause"] == cause), None)
    mutant = next((m["sketch"] for m in case.get("mutants", []) if m["words"] == words), None)
    if stored is None or mutant is None:
        return False
    return max((sketch.distance(sketch.sketch(stored[part]), s) if part in stored else float("inf")
                for part, s in mutant.items()), default=float("inf")) <= relations.FIT


def _nearest_cause(case: dict, distance: Callable[[dict], float], tol: float,
                   deviation: float | None = None) -> tuple[str, float]:
    """(the words of the stored mistake whose outputs are at the smallest ``distance`` (at most ``tol``), that
    distance), or ('', inf)."""
    # A mistake must also explain most of the deviation: nearer to the student's output than half its distance
    # from the reference, or a small deviation would be pinned on whichever mistake lies near the reference.
    deviation = distance(case["output"]) if deviation is None else deviation
    best, best_distance = None, min(tol, 0.5 * deviation)
    for mistake in case.get("mistakes", []):
        found = distance(mistake["output"])
        if found <= best_distance:
            best, best_distance = mistake, found
    return (best["cause"], best_distance) if best is not None else ("", float("inf"))


# A gradient through the network's ReLU6 and max steps jumps at a few pixels when another machine's round-off
# (its kernels, oneDNN, the threads, the layout) moves an activation across a kink. Measured: 22 of 20736
# integrated-gradients values and 34 of 55296 saliency values beyond 1e-3 of the scale under oneDNN off or
# the older kernels (tests/test_numerics.py). The gradient maps' records set ``kink_share``; an image's
# does not: a missing clamp to [0, 1] changes fewer than 0.5 % of its pixels.


def _error_beyond_kinks(actual: torch.Tensor, expected: torch.Tensor, share: float) -> float:
    """relative_error, leaving out the worst ``share`` of the elements of a map of 1000 or more; the form
    (shape, NaN where the reference has none) is judged before this."""
    error = relative_error(actual, expected)
    if not share or error == float("inf") or not torch.is_floating_point(expected) or expected.numel() < 1000:
        return error
    return _error_without_worst(actual, expected, int(expected.numel() * share))


def _error_without_worst(actual: torch.Tensor, reference: torch.Tensor, left_out: int) -> float:
    """The largest |actual - reference| once the ``left_out`` largest are set aside, relative to the
    reference's scale (its largest finite value); positions not finite in either count as 0."""
    a, v = actual.detach().to("cpu", torch.float64).flatten(), reference.to(torch.float64).flatten()
    finite = torch.isfinite(a) & torch.isfinite(v)
    gaps = torch.where(finite, (a - v).abs(), torch.zeros_like(a)).sort().values
    kept = gaps[: len(gaps) - left_out]
    scale = float(v[finite].abs().max()) if bool(finite.any()) else 1.0
    return float(kept[-1]) / (scale or 1.0)  # an all-zero reference: absolute, as relative_error


def _distance(actual: torch.Tensor, stored: torch.Tensor) -> float:
    """How far an output is from a stored mistake's, relative to its scale, leaving out the worst 0.1 % of the
    elements of a large output: round-off on another machine flips a few values at a kink or a clamp (a
    gradient's sign near 0), which says nothing about the mistake."""
    if tuple(actual.shape) != tuple(stored.shape):
        return float("inf")
    if not torch.is_floating_point(stored):
        return 0.0 if bool(torch.equal(actual.to(stored.dtype), stored)) else float("inf")
    if stored.numel() < 1000:
        return relative_error(actual, stored)
    if not bool((torch.isfinite(actual) == torch.isfinite(stored)).all()):  # NaN or inf where the mistake has none
        return float("inf")
    return _error_without_worst(actual, stored, max(1, stored.numel() // 1000))


def shape_hint(actual_shape, expected_shape) -> str:
    """A likely cause for a shape mismatch, or ''."""
    a, e = tuple(actual_shape), tuple(expected_shape)
    if not e:
        return "; a scalar (0-dim tensor) was expected: reduce with .sum(), or index [0]"
    if len(a) == len(e) + 1 and a[0] == e[0] and a[1] == 1 and a[2:] == e[1:]:
        return "; drop the channel dimension of size 1 (x[:, 0])"
    if len(a) == len(e) + 1 and a[0] == e[0] and 3 in a[1:2]:
        return "; the channel dimension was not reduced"
    if len(a) == len(e) + 1 and a[1:] == e:
        return "; there is an extra leading dimension"
    if len(a) + 1 == len(e) and a == e[1:]:
        return "; the batch dimension is missing"
    if sorted(a) == sorted(e):
        return "; the dimensions are in the wrong order"
    return ""
