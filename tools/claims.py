"""Registered claims: numbers a notebook's prose cites, each bound to the printed output that backs it.

Beside each notebook, ``notebooks/<name>.claims.toml`` lists them; a claim about one exercise's section sits
in that exercise's record instead (``tools/exercises/<function>.toml``, same tables), so that adding an
exercise adds no line here::

    [[claim]]
    cell = "**Question 4.**"             # text that finds the one markdown cell making the claim
    prose = 'within (?P<gap>[\\d.]+) %'  # a regex on that cell; each named group is a cited number
    output = 'error (?P<err>[\\d.]+)%'   # a regex on the notebook's printed output, matched on every line
    values = { gap = "max(err)" }        # per cited number: an expression over the output's lists of numbers
    tolerance = 0.5                      # largest |cited - computed| (absolute; add relative = true for a fraction)
    holds = "max(err) < 5"               # optional: what a described comparison or ranking needs to be true

A claim with neither ``values`` nor ``holds`` says only that the output has a line matching ``output`` (a
neighbour named in a printed list, say). The ``prose`` match is the sentence the claim stands behind:
tools/prose.py counts every number and every description inside it as accounted for.

``check(claim, cells, printed)`` returns '' when the prose says what the output shows, else why not. A number
written in prose without a claim, or a sentence the output does not back, is what the reviewers find: keep
prose that states numbers either printed by the code (an f-string under the figure) or registered here.
"""
from __future__ import annotations

import re
import statistics
import tomllib
from pathlib import Path

FUNCTIONS = {"min": min, "max": max, "all": all, "any": any, "sorted": sorted, "zip": zip, "mean": statistics.fmean, "median": statistics.median, "len": len,
             "first": lambda xs: xs[0], "last": lambda xs: xs[-1], "abs": abs, "round": round}


KINDS = ("claim", "fact", "setting")


def registry(notebook: Path) -> dict[str, list[dict]]:
    """{"claim": [...], "fact": [...], "setting": [...]} for one notebook: its claims file, then the tables of
    the records of the exercises it teaches."""
    from checks.child.specs import TOPICS
    from tools.exercises import records

    path = notebook.with_name(notebook.stem + ".claims.toml")
    tables = [tomllib.loads(path.read_text(encoding="utf-8"))] if path.is_file() else []
    tables += [record for record in records().values() if Path(TOPICS[record["check"]["topic"]]).name == notebook.name]
    return {kind: [row for table in tables for row in table.get(kind, [])] for kind in KINDS}


def load(notebook: Path) -> list[dict]:
    return registry(notebook)["claim"]


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
    if not columns and not re.search(claim["output"], printed, re.M):
        return f"{claim['cell']!r}: nothing printed matches {claim['output']!r}"
    problems = []
    scope = {**FUNCTIONS, **columns}
    if "holds" in claim:
        try:
            holds = eval(claim["holds"], {"__builtins__": {}, **scope})  # noqa: S307 - our own file
        except (NameError, ValueError, IndexError, ZeroDivisionError) as err:
            holds, claim_error = False, f" ({type(err).__name__}: {err})"
        else:
            claim_error = ""
        if not holds:
            problems.append(f"the output does not show it: {claim['holds']} is false{claim_error}")
    for name, expression in claim.get("values", {}).items():
        computed = eval(expression, {"__builtins__": {}, **scope})  # noqa: S307 - our own file
        said = float(cited.group(name))
        allowed = claim["tolerance"] * (abs(computed) if claim.get("relative") else 1)
        if abs(said - computed) > allowed:
            problems.append(f"cites {name} = {said:g}, the output gives {expression} = {computed:g} "
                            f"(allowed ±{allowed:g})")
    return f"{claim['cell']!r}: " + "; ".join(problems) if problems else ""
