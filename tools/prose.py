"""The notebooks' prose read as a fresh reader reads it: every number accounted for, every description of a
figure or table measured or asked, and the length of each notebook's main path (what a student reads: no
optional section, no folded hint, no written answer).

``python -m tools.prose`` prints, per notebook, the words on the main path and every number or description
that nothing accounts for (exit 1 if there is one). ``tests/test_prose.py`` asserts the same.

A number in a markdown cell is accounted for when it is
- a **setting**: the same value is a literal in the code cells of its section (from its ``##`` heading to
  the next), or a ``[[setting]]`` of the claims file names the library default that holds it;
- a **claim**: it lies inside a group of a registered ``[[claim]]`` (tools/claims.py), bound to the output;
- a **fact**: it lies inside the ``text`` of a ``[[fact]]`` whose ``source`` cites a paper or writes out the
  formula;
- **structure or citation**: "Exercise 2", "notebook 3", "Hint 1", "(Adebayo et al., 2018)", a heading's
  number, or anything inside ``$math$``, a code span or a link.

A sentence that describes what a figure or table shows (one of DESCRIBING's words) is accounted for when it is
a question, lies in a hint or a question cell, or overlaps the prose of a claim (which then says what the
output must show). Sections whose heading says "optional" are off the main path; hints (folded
``<details>``) do not count as words of it.
"""
from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from tools import claims  # noqa: E402

WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
         "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
         "hundred": 100, "thousand": 1000, "dozen": 12}
# Literals that only lay out a figure: they account for no number in the prose.
LAYOUT = re.compile(r"\b(?:fontsize|figsize|alpha|lw|linewidth|ms|markersize|markerscale|fraction|dpi|rotation|"
                    r"ncols|s)\s*=\s*(?:\([^)]*\)|[\w.*+-]+)")
NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:[.,]\d+)*)(?![\w])|\b(" + "|".join(WORDS) + r")\b", re.I)
# Words that say what a figure or table shows: each such sentence is measured (a claim) or asked.
DESCRIBING = re.compile(
    r"\b(sharp(er|est)?|clean(er|est)|blurr(y|ier)|nois(y|ier)|separates?|most of|jumps? around|"
    r"lowest|highest|wins?|beats?|ahead of|faint(er)?|brighter|darker|saturated|washed|pastel|speckled|"
    r"stays? near|falls? only|barely|almost all|hardly|no better than|much better|far more|far less)\b", re.I)
# Spans that hold numbers without stating a measurement: math, code, links, citations, references to parts
# of the kit.
NOT_PROSE = [
    re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.S),
    re.compile(r"`[^`]*`"),
    re.compile(r"\]\([^)]*\)|https?://\S+|<[^>]+>"),
    re.compile(r"\b(?:[A-Z][a-z]+(?:\s+and\s+[A-Z][a-z]+)?(?:\s+et\s+al\.?)?,?\s+\(?(?:19|20)\d\d[a-z]?\)?)"),
    re.compile(r"\((?:[A-Z]+ )?(?:19|20)\d\d\)"),
    re.compile(r"\b(?:[Nn]otebooks?|[Ee]xercises?|[Qq]uestions?|[Hh]ints?|[Tt]iers?)\s+\d+"
               r"(?:(?:,|\s+and|\s+or|\s+to|-|–)\s*\d+)*"),
    re.compile(r"^#+\s*\d+\s*[.·]", re.M),
    re.compile(r"\((?=[^)]*[A-Z])(?:[A-Z\d]+,\s*)+[A-Z\d]+\)"),  # a shape: (N, 3, H, W)
    re.compile(r"[\[(]\s*-?\d+(?:\.\d+)?\s*,\s*-?\d+(?:\.\d+)?\s*[\])]"),  # an interval: [0, 1]
    re.compile(r"\bdim \d\b|\b0 (?:or|and) 1\b"),  # an axis; the ends of a probability or a pixel value
]
OPTIONAL = re.compile(r"optional", re.I)
ANSWER_TAG = "solution"


@dataclass(frozen=True)
class Finding:
    notebook: str
    cell: int
    kind: str  # "number" or "description"
    text: str
    context: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell}: {self.kind} {self.text!r} in: {self.context}"


def _blank(text: str, pattern: re.Pattern) -> str:
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def prose_only(text: str) -> str:
    """The text with math, code, links, citations and references to parts of the kit blanked out (the same
    length, so positions still match the original)."""
    for pattern in NOT_PROSE:
        text = _blank(text, pattern)
    return text


def _value(token: str) -> float:
    word = WORDS.get(token.lower())
    return float(word) if word is not None else float(token.replace(",", ""))


def _code_numbers(source: str) -> set[float]:
    source = LAYOUT.sub(" ", source)
    return {float(n) for n in re.findall(r"(?<![\w.])(\d+(?:\.\d+)?(?:e-?\d+)?)(?![\w])", source)}


def _library_value(where: str):
    """'module:Object.attribute' or 'module:function:parameter' (its default) -> the value."""
    module, _, path = where.partition(":")
    obj = importlib.import_module(module)
    parts = path.split(":")
    for name in parts[0].split("."):
        obj = getattr(obj, name)
    if len(parts) == 2:
        import inspect

        return inspect.signature(obj).parameters[parts[1]].default
    return obj


def _sections(cells) -> list[tuple[int, int, bool]]:
    """(first cell, end cell, optional) of each '##' section; the text before the first is a section too."""
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and re.match(r"##\s", c.source)]
    bounds = [0] + starts + [len(cells)]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        if a < b:
            out.append((a, b, bool(OPTIONAL.search(cells[a].source.splitlines()[0])) if a in starts else False))
    return out


def is_hint(source: str) -> bool:
    return source.lstrip().startswith("<details>")


def is_question(source: str) -> bool:
    return source.lstrip().startswith("**Question")


def _registered_spans(registry: dict, cell_source: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the spans in one cell that a claim or a fact accounts for."""
    spans = []
    for claim in registry.get("claim", []):
        if claim["cell"] in cell_source:
            match = re.search(claim["prose"], cell_source, re.S)
            if match:
                spans.append((match.start(), match.end(), "claim"))
    for fact in registry.get("fact", []):
        if fact["cell"] in cell_source and fact.get("source", "").strip():
            at = cell_source.find(fact["text"])
            if at >= 0:
                spans.append((at, at + len(fact["text"]), "fact"))
    return spans


def _settings(registry: dict, cell_source: str) -> set[float]:
    values = set()
    for setting in registry.get("setting", []):
        if setting["cell"] in cell_source:
            value = _library_value(setting["where"])
            if float(value) != float(setting["value"]):
                raise ValueError(f"setting {setting['where']} is {value}, the claims file says {setting['value']}")
            values.add(float(value))
    return values


def _sentence(text: str, at: int) -> tuple[int, int]:
    start = max(text.rfind(". ", 0, at), text.rfind("\n\n", 0, at), text.rfind("? ", 0, at), -1) + 1
    ends = [e for e in (text.find(". ", at), text.find("? ", at), text.find("\n\n", at)) if e >= 0]
    return start, (min(ends) + 1 if ends else len(text))


def read(path: Path, registry: dict | None = None) -> tuple[list[Finding], int]:
    """(every number and description nothing accounts for, words on the main path) of one notebook."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    registry = claims.registry(path) if registry is None else registry
    findings, words = [], 0
    for first, end, optional in _sections(nb.cells):
        code = "\n".join(c.source for c in nb.cells[first:end] if c.cell_type == "code")
        in_code = _code_numbers(code)
        for index in range(first, end):
            cell = nb.cells[index]
            if cell.cell_type != "markdown":
                continue
            source = cell.source
            if not optional and not is_hint(source) and ANSWER_TAG not in cell.metadata.get("tags", []):
                words += len(re.sub(r"\$\$.*?\$\$", " ", source, flags=re.S).split())
            spans = _registered_spans(registry, source)
            settings = in_code | _settings(registry, source)
            prose = prose_only(source)
            for match in NUMBER.finditer(prose):
                token = match.group(0)
                if any(a <= match.start() and match.end() <= b for a, b, _ in spans):
                    continue
                if _value(token) in settings:
                    continue
                a, b = _sentence(source, match.start())
                findings.append(Finding(path.name, index, "number", token, " ".join(source[a:b].split())[:160]))
            if is_hint(source) or is_question(source):
                continue
            for match in DESCRIBING.finditer(prose):
                a, b = _sentence(source, match.start())
                if source[a:b].rstrip().endswith("?"):
                    continue
                if any(s < b and a < e for s, e, kind in spans if kind == "claim"):
                    continue
                findings.append(Finding(path.name, index, "description", match.group(0),
                                        " ".join(source[a:b].split())[:160]))
    return findings, words


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def main() -> int:
    total = 0
    for path in notebooks():
        findings, words = read(path)
        total += len(findings)
        print(f"{path.name}: {words} words on the main path, {len(findings)} unaccounted")
        for finding in findings:
            print("   ", finding)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
