"""Registered claims: numbers a notebook's prose cites, each bound to the printed output that backs it.

Beside each notebook, ``notebooks/<name>.claims.toml`` lists them::

    [[claim]]
    cell = "**Question 4.**"             # text that finds the one markdown cell making the claim
    prose = 'within (?P<gap>[\\d.]+) %'  # a regex on that cell; each named group is a cited number
    output = 'error (?P<err>[\\d.]+)%'   # a regex on the notebook's printed output, matched on every line
    values = { gap = "max(err)" }        # per cited number: an expression over the output's lists of numbers
    tolerance = 0.5                      # largest |cited - computed| (absolute; add relative = true for a fraction)

``check(claim, cells, printed)`` returns '' when the prose says what the output shows, else why not. A number
written in prose without a claim, or a sentence the output does not back, is what the reviewers find: keep
prose that states numbers either printed by the code (an f-string under the figure) or registered here.
"""
from __future__ import annotations

import re
import statistics
import tomllib
from pathlib import Path

FUNCTIONS = {"min": min, "max": max, "mean": statistics.fmean, "median": statistics.median, "len": len,
             "first": lambda xs: xs[0], "last": lambda xs: xs[-1], "abs": abs, "round": round}


def load(notebook: Path) -> list[dict]:
    path = notebook.with_name(notebook.stem + ".claims.toml")
    return tomllib.loads(path.read_text(encoding="utf-8")).get("claim", []) if path.is_file() else []


def check(claim: dict, cells: list[str], printed: str) -> str:
    """'' if the claim holds; else one line saying what the prose cites and what the output shows."""
    found = [text for text in cells if claim["cell"] in text]
    if len(found) != 1:
        return f"{claim['cell']!r}: {len(found)} markdown cells contain it (need exactly one)"
    cited = re.search(claim["prose"], found[0], re.S)
    if cited is None:
        return f"{claim['cell']!r}: the prose no longer says {claim['prose']!r}"
    columns: dict[str, list[float]] = {}
    for match in re.finditer(claim["output"], printed, re.M):
        for name, value in match.groupdict().items():
            if value is not None:
                columns.setdefault(name, []).append(float(value))
    if not columns:
        return f"{claim['cell']!r}: nothing printed matches {claim['output']!r}"
    problems = []
    for name, expression in claim["values"].items():
        computed = eval(expression, {"__builtins__": {}}, {**FUNCTIONS, **columns})  # noqa: S307 - our own file
        said = float(cited.group(name))
        allowed = claim["tolerance"] * (abs(computed) if claim.get("relative") else 1)
        if abs(said - computed) > allowed:
            problems.append(f"cites {name} = {said:g}, the output gives {expression} = {computed:g} "
                            f"(allowed ±{allowed:g})")
    return f"{claim['cell']!r}: " + "; ".join(problems) if problems else ""
