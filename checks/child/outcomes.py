"""Outcomes of a loop, measured by the judge: where a method leaves choices (the optimizer's memory, where
the clamp goes, how the learning rate decays), a loop's check compares what the run achieved, not the
path it took.

An outcome is a number (or a few) computed from a case's inputs and a run's outputs, the same way for the
student's run, the reference run and the stored mistakes' runs. :func:`style_run` measures a
style-transfer run on the case's small feature network with the stand-in losses the run used
(checks/child/fixtures.py): nothing here is an exercise.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from checks.child import fixtures


@dataclass(frozen=True)
class Outcome:
    """How one outcome is judged. ``rule``: "equal" (the same numbers), "within" (|got - expected| <= tol,
    after dividing by the reference's ``scale`` outcome when one is named) or "at_most" (got <= tol, a
    property the contract promises, whatever the reference did)."""

    name: str
    rule: str
    tol: float = 0.0
    scale: str = ""  # another outcome whose value (of the reference run) sets this one's unit
    says: str = ""  # what the outcome is, in the FAIL line
    hint: str = ""  # what to do when a property ("at_most") fails and no stored mistake explains it
    parts: tuple = ()  # names of the outcome's numbers, so that a FAIL line says which of them differ
    # (argument, value, what to do): a hint for the cases called with that argument (a start from noise)
    when: tuple = ()


def _loss_of(inputs: dict, images: torch.Tensor) -> torch.Tensor:
    """The case's total loss (stand-in losses) of ``images``, as the run defined it."""
    from convlens.style import StyleSettings, compute_style_targets, content_and_style_features
    from convlens.model import extract_features

    settings = StyleSettings(**inputs["settings"])
    net = fixtures.feature_network(inputs["network"])
    with torch.no_grad():
        content_target = extract_features(net, inputs["content"], [settings.content_layer])[settings.content_layer]
        targets = compute_style_targets(net, inputs["style"], settings, fixtures.stand_in_gram_matrix)
        current, style_feats = content_and_style_features(net, images.to(torch.float32), settings)
        return (fixtures.stand_in_content_loss(settings.content_weight, current, content_target)
                + fixtures.stand_in_style_loss(style_feats, settings.style_layers, targets, settings.style_weights)
                + fixtures.stand_in_tv_loss(images.to(torch.float32), settings.tv_weight)).to(torch.float64)


STYLE_RUN = (
    Outcome("evaluations", "equal", says="loss evaluations recorded in the history (one per evaluation, `steps` "
                                         "in all)"),
    Outcome("evaluated_outside", "at_most", 1e-6, says="the loss was evaluated at an image outside [0, 1]",
            hint="keep the image in [0, 1] at every evaluation"),
    Outcome("returned_outside", "at_most", 1e-6, says="the returned image leaves [0, 1]"),
    Outcome("unevaluated", "at_most", 0.5, says="the history holds more entries than the loss was evaluated "
                                                "(forward passes of the image with gradients on)",
            hint="record each evaluation's losses once, where the closure computes them"),
    Outcome("unsummed", "at_most", 1e-4, says="a recorded total is not content + style + tv",
            hint="record the four losses of the same evaluation"),
    Outcome("start", "within", 1e-3, scale="start_scale", says="the first evaluation's losses (total, content, "
                                                                "style, tv)", parts=("total", "content", "style", "tv"),
            when=("init", "noise", "with init='noise' the start is one torch.rand draw of shape (N, 3, H, W) from "
                                   "`generator` (made from `seed`)")),
    Outcome("recorded", "at_most", 1e-4, says="the last history entry is not the loss of the last image evaluated "
                                               "(recomputed by the checks, relative to the start's loss)",
            hint="record each evaluation's own losses, computed from the image that evaluation saw"),
    # Adam's path is fixed by the contract (torch.optim.Adam at rate lr, times lr_decay after each step), up to
    # round-off: a gradient never zeroed or an optimizer made anew each step moves it by 3e-4 to 1e-2 of the
    # start's loss in the stored cases, a correct variant by 0 (bench/bench_outcomes.py). L-BFGS leaves
    # choices (its memory, its calls), so its path is not compared.
    Outcome("path", "within", 1e-4, scale="start_scale", says="the losses along the way"),
    Outcome("reached", "within", 0.15, scale="progress", says="the returned image's loss"),
)


def style_run(inputs: dict, outputs: dict) -> dict:
    """Outcomes of one style-transfer run: its number of evaluations, how far it left [0, 1], whether its
    history adds up, its first evaluation, and the loss of the image it returned."""
    history, image = outputs["history"].to(torch.float64), outputs["image"]
    evaluated = outputs["evaluated"].to(torch.float64)  # (passes, lowest pixel, highest pixel, evaluations)
    def beyond(lowest: float, highest: float) -> torch.Tensor:
        return torch.tensor(max(0.0, -lowest, highest - 1.0), dtype=torch.float64)

    totals, parts = history[:, 0], history[:, 1:].sum(dim=1)
    start = history[0] if len(history) else torch.full((4,), float("nan"), dtype=torch.float64)
    reached = _loss_of(inputs, image.clamp(0, 1) if image.is_floating_point() else image.float())
    last = outputs["last_evaluated"]
    recorded = (torch.tensor(float("inf"), dtype=torch.float64) if not len(history) or last.shape != image.shape
                else (history[-1, 0] - _loss_of(inputs, last.float())).abs() / start[0].abs().clamp_min(1e-12))
    first_total = start[0]
    path = totals if inputs.get("optimizer") == "adam" else torch.zeros(1, dtype=torch.float64)
    return {
        "evaluations": torch.tensor(float(len(history)), dtype=torch.float64),
        "evaluated_outside": beyond(float(evaluated[1]), float(evaluated[2])),
        "returned_outside": beyond(float(image.min()), float(image.max())),
        "recorded": recorded,
        "unevaluated": torch.tensor(max(0.0, len(history) - float(evaluated[3])), dtype=torch.float64),
        "unsummed": ((totals - parts).abs() / totals.abs().clamp_min(1e-12)).max() if len(history)
        else torch.tensor(0.0, dtype=torch.float64),
        "total_terms": _total_terms(history),
        "start": start,
        "start_scale": start.abs().max(),
        "path": path,
        "reached": reached,
        "progress": (first_total - reached).abs(),
    }


# How many times a recorded total may hold each part (content, style, tv), nearest to once each first.
_TERM_COUNTS = sorted(((a, b, c) for a in range(3) for b in range(3) for c in range(3)),
                      key=lambda t: sum(abs(x - 1) for x in t))


def _total_terms(history: torch.Tensor) -> torch.Tensor:
    """How many times each part (content, style, tv) the recorded totals hold, when every total is the same
    such sum of its own evaluation's parts (each part 0, 1 or 2 times); empty when none fits."""
    if not len(history) or history.shape[1] != 4:
        return torch.empty(0, dtype=torch.float64)
    totals, parts = history[:, 0], history[:, 1:]
    for counts in _TERM_COUNTS:
        summed = parts @ torch.tensor(counts, dtype=torch.float64)
        if bool(((totals - summed).abs() <= 1e-5 * totals.abs().clamp_min(1e-12)).all()):
            return torch.tensor(counts, dtype=torch.float64)
    return torch.empty(0, dtype=torch.float64)


def relation(outcome: Outcome, mine: dict, reference: dict, weights: dict) -> str:
    """What a failing outcome's numbers have to do with the reference's, in words ('' when nothing exact):
    a loss part off by one of the case's weights; a recorded total that leaves a part out or counts it twice;
    a run with the reference's number of evaluations that got much less (or more) far, so its steps differ."""
    if outcome.name == "unsummed":
        counts = [int(c) for c in mine.get("total_terms", torch.empty(0)).tolist()]
        if len(counts) != 3 or counts == [1, 1, 1]:
            return ""
        names = ("content", "style", "tv")
        said = [f"leaves {n} out" if c == 0 else f"counts {n} twice" for n, c in zip(names, counts) if c != 1]
        return f"each recorded total {' and '.join(said)}"
    if outcome.name == "reached" and "evaluations" in mine and bool(
            (mine["evaluations"] == reference["evaluations"]).all()) and mine["start"].numel():
        share = (float(mine["start"][0]) - float(mine["reached"])) / max(float(reference["progress"]), 1e-12)
        if 0 <= share < 0.5:
            return ("with as many evaluations as the reference, the run made much less progress: its steps are "
                    "shorter (the optimizer's step size: the contract's, not another's?)")
        if share > 1.5:
            return ("with as many evaluations as the reference, the run went much further: its steps are longer "
                    "(the optimizer's step size: the contract's, not another's?)")
        return ""
    return swap_relation(outcome, mine, reference) or weight_relation(outcome, mine, reference, weights)


def swap_relation(outcome: Outcome, mine: dict, reference: dict) -> str:
    """For an outcome of named parts: parts that hold each other's reference values (content where style
    should be, and the reverse), so the numbers are right and their order is not. '' otherwise."""
    got, expected = mine.get(outcome.name), reference.get(outcome.name)
    if not outcome.parts or got is None or expected is None or got.shape != expected.shape:
        return ""
    a, e = got.flatten().tolist(), expected.flatten().tolist()
    def same(x: float, y: float) -> bool:
        return abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1e-12)
    off = [k for k in range(len(a)) if not same(a[k], e[k])]
    if len(off) < 2 or any(not any(same(a[k], e[j]) for j in off if j != k) for k in off):
        return ""
    names = [outcome.parts[k] for k in off]
    return (f"{' and '.join(names)} hold each other's values: the parts in another order than the contract's "
            f"({', '.join(outcome.parts)})")


def gap(outcome: Outcome, mine: dict, reference: dict) -> float:
    """How far the student's outcome is from passing ``outcome``'s rule (0 when equal; compare with tol)."""
    got, expected = mine[outcome.name].to(torch.float64), reference[outcome.name].to(torch.float64)
    if outcome.rule == "at_most":
        return float(got.max())
    if got.shape != expected.shape or not bool(torch.isfinite(got).all()):
        return float("inf")
    difference = float((got - expected).abs().max())
    if outcome.rule == "equal":
        return 0.0 if difference == 0 else float("inf")
    scale = float(reference[outcome.scale]) if outcome.scale else 1.0
    return difference / max(scale, 1e-12)


def failures(rules: tuple, mine: dict, reference: dict) -> tuple:
    """Which outcomes a run fails and which way: (name, -1 for below the reference / +1 above / 0 a property
    broken) per failing outcome, per part for outcomes of several numbers."""
    found = []
    for outcome in rules:
        if gap(outcome, mine, reference) <= outcome.tol:
            continue
        if outcome.rule == "at_most":
            found.append((outcome.name, 0))
            continue
        got, expected = mine[outcome.name].to(torch.float64), reference[outcome.name].to(torch.float64)
        if got.shape != expected.shape:
            found.append((outcome.name, 0))
            continue
        signs = torch.sign(got - expected).flatten().tolist()
        found.append((outcome.name, *[int(x) for x in signs]))
    return tuple(found)


def distance(rules: tuple, mine: dict, theirs: dict, reference: dict) -> float:
    """How far two runs' outcomes are apart: the largest gap over ``rules``, each in its own unit."""
    worst = 0.0
    for outcome in rules:
        got, other = mine[outcome.name].to(torch.float64), theirs[outcome.name].to(torch.float64)
        if got.shape != other.shape:
            return float("inf")
        scale = float(reference[outcome.scale]) if outcome.scale else max(float(other.abs().max()), 1e-6)
        worst = max(worst, float((got - other).abs().max()) / max(scale, 1e-12))
    return worst


def _numbers(value: torch.Tensor) -> str:
    return ", ".join(f"{v:.4g}" for v in value.flatten().tolist()) if value.dim() else f"{float(value):.4g}"


def describe(outcome: Outcome, mine: dict, reference: dict, kwargs: dict | None = None, hint: bool = True) -> str:
    """The FAIL line's account of one outcome: what it measures, the student's value and the reference's,
    its hint (``hint`` False: a relation says more) and its hint for a case called with ``kwargs`` (``when``)."""
    text = _account(outcome, mine, reference, hint)
    if outcome.when and (kwargs or {}).get(outcome.when[0]) == outcome.when[1]:
        text += f": {outcome.when[2]}"
    return text


def _account(outcome: Outcome, mine: dict, reference: dict, hint: bool) -> str:
    got, expected = mine[outcome.name], reference[outcome.name]
    if outcome.rule == "at_most":
        return f"{outcome.says} (off by {_numbers(got)}; allowed {outcome.tol:.0e})" + (
            f": {outcome.hint}" if outcome.hint and hint else "")
    if outcome.rule == "equal":
        relation = ("" if got.dim() or expected.dim() else
                    ": the run stopped early" if float(got) < float(expected) else ": more than the budget")
        return f"{outcome.says}: got {_numbers(got)}, expected {_numbers(expected)}{relation}"
    text = f"{outcome.says}: got {_numbers(got)}, expected {_numbers(expected)}"
    if outcome.scale == "progress":
        start = float(mine["start"][0]) if mine["start"].numel() else float("nan")
        share = (start - float(got)) / max(float(reference["progress"]), 1e-12)
        return (f"{text}: from the start's loss {start:.4g} the run went {share:.0%} of the way the reference run "
                f"went (allowed {1 - outcome.tol:.0%} to {1 + outcome.tol:.0%})")
    if outcome.name == "path" and got.shape == expected.shape:
        scale = float(reference[outcome.scale])
        k = next(i for i, (a, e) in enumerate(zip(got.tolist(), expected.tolist())) if abs(a - e) > outcome.tol * scale)
        return (f"{outcome.says}: evaluation {k + 1} of {got.numel()} gives a loss of {float(got[k]):.6g}, the "
                f"reference run {float(expected[k]):.6g} (allowed {outcome.tol:.0e} of the start's loss): the contract "
                "fixes Adam's path (torch.optim.Adam at rate lr, times lr_decay after each step)")
    if outcome.parts and got.shape == expected.shape:
        scale = float(reference[outcome.scale]) if outcome.scale else 1.0
        off = [name for name, a, e in zip(outcome.parts, got.tolist(), expected.tolist())
               if abs(a - e) > outcome.tol * scale]
        same = [name for name in outcome.parts if name not in off]
        if off and same:
            text += f"; {', '.join(off)} differ{'s' if len(off) == 1 else ''}, {', '.join(same)} match"
    return f"{text} (allowed {outcome.tol:.0e} of the reference's scale)"


def weight_relation(outcome: Outcome, mine: dict, reference: dict, weights: dict) -> str:
    """For an outcome of named parts (the losses of one evaluation): a part that differs from the reference's
    by exactly one of the case's weights ({name: value}), or by its inverse: that weight applied twice, or left
    out. '' when no part does."""
    got, expected = mine.get(outcome.name), reference.get(outcome.name)
    if not outcome.parts or got is None or expected is None or got.shape != expected.shape:
        return ""
    found = []
    for part, a, e in zip(outcome.parts, got.tolist(), expected.tolist()):
        if e == 0 or abs(a - e) <= 1e-6 * abs(e):
            continue
        own = {n: w for n, w in weights.items() if n.startswith(part)}  # content_weight for content, if any
        for name, weight in (own or weights).items():
            if weight in (0, 1):
                continue
            if abs(a / e - weight) <= 1e-4 * abs(weight):
                found.append(f"{part} is {weight:g} times the reference's: the weight {name} ({weight:g}) applied twice")
            elif abs(a / e - 1 / weight) <= 1e-4 / abs(weight):
                found.append(f"{part} is 1/{weight:g} times the reference's: the weight {name} ({weight:g}) left out")
    return "; ".join(found)


# A record's ``measure`` -> (what is measured of a run, how each measure is judged).
MEASURES = {"style_run": (style_run, STYLE_RUN)}
