"""Build the student kit from the solution tree: ``python kit.py release [--out build/student]``.

One source, two builds. In ``helpers/*.py`` every exercise sits between markers::

    # TODO START saliency_map
    # Leading comment lines are guidance and stay in the student build.
    <solution code: replaced by a NotImplementedError in the student build>
    # TODO END saliency_map

In notebooks, cells tagged ``solution`` (written answers) are replaced by an empty answer cell, and every
output is cleared. Tests, benchmarks, the grader and maintainer tools are left out of the student build. The
README is one source too: text between ``<!-- full kit -->`` and ``<!-- end full kit -->`` is dropped, and
the text inside ``<!-- student kit ... -->`` comments is shown.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
START = re.compile(r"^(?P<indent>\s*)# TODO START (?P<label>\S+)\s*$")
END = re.compile(r"^\s*# TODO END (?P<label>\S+)\s*$")
SHIPPED = ["README.md", "LICENSE", "requirements.txt", "environment.yml", "kit.py", "helpers", "convlens", "checks",
           "datasets", "notebooks", "tools/download_paintings.py"]
# Inside the shipped folders: caches, and the maintainers' claims files (tools/claims.py) beside the notebooks.
NOT_SHIPPED = ("__pycache__", ".ipynb_checkpoints", "*.claims.toml")
# Hidden cases (grader/hidden/), the case and mistake tables and the reference builder (tools/) are the
# instructor's: none of them is in SHIPPED.
ANSWER_PLACEHOLDER = "**Your answer:** *write it here.*"
FULL_START, FULL_END, STUDENT_START, COMMENT_END = "<!-- full kit -->", "<!-- end full kit -->", "<!-- student kit", "-->"


class MarkerError(ValueError):
    """Unbalanced or mislabelled TODO markers."""


@dataclass(frozen=True)
class Block:
    """One exercise in a solution file: its label, marker line numbers (1-based) and solution lines."""

    label: str
    start: int
    end: int
    guidance: tuple[str, ...]
    solution: tuple[str, ...]


def find_blocks(text: str, filename: str = "<source>") -> list[Block]:
    """The TODO blocks of a solution source, checked for balance and matching labels."""
    blocks, open_at, lines = [], None, text.splitlines()
    for number, line in enumerate(lines, 1):
        start, end = START.match(line), END.match(line)
        if start:
            if open_at is not None:
                raise MarkerError(f"{filename}:{number}: TODO START inside the block opened at line {open_at[0]}")
            open_at = (number, start["label"])
        elif end:
            if open_at is None:
                raise MarkerError(f"{filename}:{number}: TODO END without a TODO START")
            if end["label"] != open_at[1]:
                raise MarkerError(f"{filename}:{number}: TODO END {end['label']} closes TODO START {open_at[1]}")
            body = lines[open_at[0]:number - 1]
            n_guide = 0
            while n_guide < len(body) and body[n_guide].strip().startswith("#"):
                n_guide += 1
            solution = tuple(body[n_guide:])
            if not any(s.strip() for s in solution):
                raise MarkerError(f"{filename}:{open_at[0]}: block {open_at[1]} has no solution code")
            blocks.append(Block(open_at[1], open_at[0], number, tuple(body[:n_guide]), solution))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at[0]}: TODO START {open_at[1]} is never closed")
    return blocks


def stub_source(text: str, filename: str = "<source>") -> str:
    """The student version of a solution source: each block's solution becomes a NotImplementedError."""
    lines = text.splitlines(keepends=True)
    out, cursor = [], 0
    for block in find_blocks(text, filename):
        out += lines[cursor:block.start]  # up to and including the START line
        indent = START.match(lines[block.start - 1])["indent"]
        out += [g + "\n" for g in block.guidance]
        out.append(f'{indent}raise NotImplementedError("{block.label}: write your code between '
                   f'TODO START and TODO END in {filename}")\n')
        cursor = block.end - 1  # keep the END line
    out += lines[cursor:]
    return "".join(out)


# How many hint tiers the student build keeps (cells tagged ``hints`` hold one <details> block per tier:
# 1 the idea, 2 which torch calls, 3 questions or pseudocode). Self-study keeps all: it uses this folder.
HINT_LEVELS = {"none": 0, "idea": 1, "calls": 2, "all": 3}
DEFAULT_HINTS = "calls"
HINT_BLOCK = re.compile(r"<details><summary><b>Hint (\d+):.*?</details>\s*", re.S)


def keep_hints(text: str, level: int) -> str:
    """A hints cell's text with only the tiers up to ``level``."""
    return HINT_BLOCK.sub(lambda m: m.group(0) if int(m.group(1)) <= level else "", text).rstrip() + "\n"


def student_notebook(nb: nbformat.NotebookNode, hints: str = DEFAULT_HINTS) -> nbformat.NotebookNode:
    """Clear outputs and execution counts; empty the cells tagged ``solution``; keep the hint tiers up to
    ``hints`` (none, idea, calls or all), dropping a hints cell left empty."""
    nb = nbformat.from_dict(nb)
    level = HINT_LEVELS[hints]
    kept = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "hints" in tags:
            cell.source = keep_hints(cell.source, level)
            if not cell.source.strip():
                continue
        kept.append(cell)
    nb.cells = kept
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "solution" in tags:
            cell.source = ANSWER_PLACEHOLDER if cell.cell_type == "markdown" else "# Your code here\n"
            cell.metadata["tags"] = [t for t in tags if t != "solution"]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    return nb


def student_readme(text: str) -> str:
    """The student kit's README: full-kit sections dropped, student-kit comments unwrapped."""
    out, state = [], None  # None, "full" or "student"
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        marker = line.strip()
        if marker in (FULL_START, STUDENT_START):
            if state is not None:
                raise MarkerError(f"README.md:{number}: {marker} inside an open {state}-kit section")
            state = "full" if marker == FULL_START else "student"
        elif marker == FULL_END:
            if state != "full":
                raise MarkerError(f"README.md:{number}: {marker} closes no section")
            state = None
        elif marker == COMMENT_END and state == "student":
            state = None
        elif state != "full":
            out.append(line)
    if state is not None:
        raise MarkerError(f"README.md: a {state}-kit section is never closed")
    return "".join(out)


def build(out: Path, root: Path = ROOT, hints: str = DEFAULT_HINTS) -> list[Path]:
    """Write the student kit to ``out`` (replaced if it exists), keeping the hint tiers up to ``hints``.
    Returns the files written."""
    if out.exists():
        shutil.rmtree(out)
    for name in SHIPPED:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
        elif src.is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out / name)
    readme = out / "README.md"
    readme.write_text(student_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
    for path in (out / "helpers").glob("*.py"):
        rel = path.relative_to(out).as_posix()
        path.write_text(stub_source(path.read_text(encoding="utf-8"), rel), encoding="utf-8")
    for path in (out / "notebooks").glob("*.ipynb"):
        nbformat.write(student_notebook(nbformat.read(path, as_version=4), hints), path)
    return sorted(p for p in out.rglob("*") if p.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Build the student kit (stubs, cleared notebooks).")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student")
    parser.add_argument("--hints", choices=list(HINT_LEVELS), default=DEFAULT_HINTS,
                        help="hint tiers the students get: none, idea (1), calls (1-2, the default) or all (1-3)")
    args = parser.parse_args(argv)
    files = build(args.out.resolve(), hints=args.hints)
    n_blocks = sum(len(find_blocks(p.read_text(encoding="utf-8"))) for p in (ROOT / "helpers").glob("*.py"))
    print(f"student kit: {len(files)} files, {n_blocks} exercises stubbed, hints: {args.hints} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
