"""One record per exercise: ``tools/exercises/<function>.toml`` is the one place that describes an exercise
beyond its code. Instructor-only: the student kit has none of these files.

A record holds four kinds of table, and optionally a fifth:

``[check]``, the exercise's check (the fields of ``checks.child.specs.Spec``)
    topic          the notebook's topic (``checks.child.specs.TOPICS``); the function lives in helpers/<topic>.py
    what           the PASS line's text
    inputs         the function of tools/inputs.py that makes a case's inputs from its parameters
    points         what a PASS earns, unless grader/points.toml says otherwise
    outputs, collect  the compared parts of the result and how to take them out of it: "single" (the default,
                   one tensor), "pair" (a tuple of the two outputs), "image_and_history" (the style loop's)
    tol            the largest allowed error of each output, relative to the reference's scale
    mistake_tol    how close an output must be to a stored mistake's for its cause to be named
    kink_share     the share of a map's elements its verdict may leave out: a gradient through the network
                   jumps at a few pixels where another machine's round-off crosses a ReLU6 kink (0: none)
    stand_ins      the other exercises the function calls, replaced during the check by the fixed stand-ins of
                   checks/child/fixtures.py (one function, one check)
    forbidden      library implementations of the same method; calling one fails the check
    attached_ok, differentiable, differentiated  a loss: its output may stay attached to the graph, must carry
                   a gradient back to its tensor inputs, and the gradient with respect to these inputs is
                   compared ({argument or its prefix: the name a FAIL line uses})
    measure        a loop whose method leaves choices: judged by these outcomes (checks/child/outcomes.py)
    terms          a sum over parallel lists: the positions of those arguments (each term is stored alone)

``[[case]]``, every case, public or hidden
    hidden         true: graded by the grader only (grader/hidden/<topic>.pt), never shipped to students
    label          put before a FAIL line, to say which case failed ("" for none)
    grad           false: a differentiable check's case whose output does not depend on its inputs
    follow_up      true: after the call, one clean pass of the same model on the same images tensor is
                   compared too (checks/child/core.py's FOLLOW_UP)
    dtype, layout  every floating-point input (and the model) in that dtype; the inputs handed over as
                   channels-last or as a non-contiguous view (checks/child/compute.py: laid_out)
    the rest       the case's parameters, read by the record's ``inputs`` function: photos (names in
                   datasets/photos.csv) and their size, labels or targets, and the function's arguments

``[[mistake]]``, known mistakes, each an edit of the solution
    cause          what the FAIL line says when a student's outputs match this mistake's (short; say what to do)
    edit           [{replace = ..., with = ...}]: ``replace`` occurs exactly once in the function
    expect         (optional) text the line must hold instead, where another cause is the truer name

``[[variant]]``, correct solutions written differently (an edit, as a mistake's): each must pass its check,
    and a loop's outcome tolerances are set from their spread (bench/bench_outcomes.py)

``[[claim]]`` (and ``[[fact]]``, ``[[setting]]``), what the prose of the exercise's section in its notebook says
    about the outputs, bound to them as in notebooks/<name>.claims.toml (tools/claims.py), which keeps the
    claims that no one exercise owns

``python3 kit.py references`` writes checks/child/specs.json (the ``[check]`` tables, which the child, the judge,
the grader and the student kit read), the README's list of each notebook's exercises, and the reference files
built from the cases and mistakes.
"""
from __future__ import annotations

import ast
import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path

RECORDS = Path(__file__).resolve().parent
ROOT = RECORDS.parents[1]
SPECS_FILE = ROOT / "checks" / "child" / "specs.json"
README = ROOT / "README.md"


def _position(topic: str, name: str) -> int:
    """Where the function is defined in its exercise file: the records' order is the notebook's."""
    tree = ast.parse((ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8"))
    lines = {node.name: node.lineno for node in tree.body if isinstance(node, ast.FunctionDef)}
    if name not in lines:
        raise ValueError(f"tools/exercises/{name}.toml: helpers/{topic}.py defines no function {name}")
    return lines[name]


@lru_cache(maxsize=1)
def records() -> dict[str, dict]:
    """{function name: its record}, in notebook order, then in the order of the exercise file."""
    from checks.child.specs import TOPICS

    found = {}
    for path in RECORDS.glob("*.toml"):
        record = tomllib.loads(path.read_text(encoding="utf-8"))
        topic = record["check"]["topic"]
        if topic not in TOPICS:
            raise ValueError(f"{path.name}: topic {topic!r} is not one of {list(TOPICS)}")
        found[path.stem] = record
    order = list(TOPICS)
    return {name: found[name] for name in sorted(
        found, key=lambda n: (order.index(found[n]["check"]["topic"]), _position(found[n]["check"]["topic"], n)))}


def _rows(key: str) -> list[dict]:
    return [{"check": name, **row} for name, record in records().items() for row in record.get(key, [])]


def cases() -> list[dict]:
    """Every case of every exercise, each with its ``check``."""
    return _rows("case")


def mistakes() -> list[dict]:
    """Every known mistake, each with its ``check``."""
    return _rows("mistake")


def variants() -> list[dict]:
    """Every correct variant, each with its ``check``."""
    return _rows("variant")


def spec_table() -> dict:
    """What checks/child/specs.json holds: every record's ``[check]``, in order."""
    return {name: record["check"] for name, record in records().items()}


def write_specs() -> bool:
    """Write checks/child/specs.json from the records; True if it changed."""
    text = json.dumps(spec_table(), indent=1) + "\n"
    if SPECS_FILE.exists() and SPECS_FILE.read_text(encoding="utf-8") == text:
        return False
    SPECS_FILE.write_text(text, encoding="utf-8")
    return True


def write_readme_rows() -> bool:
    """Write the exercises of each notebook's row of the README's table ("| `1_...` | `saliency.py`: `a`, `b` |")
    from the records; True if it changed."""
    from checks.child.specs import TOPICS

    if not README.is_file():  # a copy of the kit without its README (a grader's working copy)
        return False
    text = README.read_text(encoding="utf-8")
    new = text
    for topic, notebook in TOPICS.items():
        names = ", ".join(f"`{name}`" for name, record in records().items() if record["check"]["topic"] == topic)
        row = re.compile(rf"^(\| `{re.escape(Path(notebook).stem)}` \| `{topic}\.py`: )[^|]*(\|)", re.M)
        new, found = row.subn(lambda m: f"{m.group(1)}{names} {m.group(2)}", new)
        if found != 1:
            raise ValueError(f"README.md: no table row for {notebook} and helpers/{topic}.py")
    if new == text:
        return False
    README.write_text(new, encoding="utf-8")
    return True
