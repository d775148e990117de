"""The student's surface: exercise files hold only exercises, and no solution logic is anywhere else in the
student build (library, checks, notebooks).

The no-leak test fingerprints the solution code: every expression or statement of a solution with at least
MIN_NODES syntax nodes, with the names of variables blanked out (attribute names, keywords and constants
kept, so ``grad.abs().amax(dim=1)`` and ``g.abs().amax(dim=1)`` are the same fingerprint). No fingerprint may
occur in any Python file or notebook code cell of the student build outside the exercise stubs.
"""
from __future__ import annotations

import ast
import copy
import json
import re
import textwrap
from pathlib import Path

import pytest

from tools.release import build, find_blocks

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_FILES = sorted(p for p in (ROOT / "helpers").glob("*.py") if p.name != "__init__.py")
MIN_NODES = 8
# Idioms that any classifier code shares; they say nothing about how an exercise is solved: a copy that
# requires grad, picking each row's entry of its class, labels moved to a device as a column, class
# probabilities, an optimizer over one tensor.
COMMON = {"_.detach().clone().requires_grad_(True)", "torch.autograd.grad(_, _)", "_.gather(1, _.view(-1, 1))",
          "_.to(_.device).view(-1, 1)", "F.softmax(_(_), dim=1)", "torch.optim.Adam([_], lr=_)"}


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    out = tmp_path_factory.mktemp("surface") / "student"
    build(out)
    return out


def test_helpers_holds_only_the_exercise_files():
    assert sorted(p.name for p in (ROOT / "helpers").iterdir() if p.suffix == ".py") == [
        "__init__.py", "fooling.py", "gradcam.py", "saliency.py", "style.py"]


@pytest.mark.parametrize("path", EXERCISE_FILES, ids=lambda p: p.name)
def test_exercise_files_are_short_and_start_with_an_exercise(path, student):
    for text in (path.read_text(encoding="utf-8"), (student / "helpers" / path.name).read_text(encoding="utf-8")):
        lines = text.splitlines()
        assert len(lines) <= 200
        first_todo = next(i for i, line in enumerate(lines, 1) if "# TODO START" in line)
        assert first_todo <= 40
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    labels = [b.label for b in find_blocks(path.read_text(encoding="utf-8"))]
    assert functions == labels, "every top-level definition is an exercise"


def _blank(node: ast.AST) -> ast.AST:
    class Blank(ast.NodeTransformer):
        def visit_Name(self, n):
            return ast.copy_location(ast.Name(id="torch" if n.id == "torch" else
                                              ("F" if n.id == "F" else "_"), ctx=ast.Load()), n)

        def visit_arg(self, n):
            return ast.copy_location(ast.arg(arg="_"), n)

    return Blank().visit(copy.deepcopy(node))


def _size(node: ast.AST) -> int:
    return sum(1 for n in ast.walk(node) if not isinstance(n, ast.expr_context))


def fingerprints(source: str) -> set[str]:
    """Normalized text of every expression with at least MIN_NODES syntax nodes."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return set()
    found = set()
    for node in ast.walk(tree):
        # Arithmetic of bare names (a + b * c / d) names no method: only expressions with a call, an
        # attribute or a subscript can carry an exercise's logic.
        if isinstance(node, ast.expr) and _size(node) >= MIN_NODES and any(
                isinstance(n, (ast.Call, ast.Attribute, ast.Subscript)) for n in ast.walk(node)):
            text = ast.unparse(_blank(node))
            if text not in COMMON:
                found.add(text)
    return found


def solution_fingerprints() -> dict[str, set[str]]:
    result = {}
    for path in EXERCISE_FILES:
        for block in find_blocks(path.read_text(encoding="utf-8")):
            result[block.label] = fingerprints("".join(line + "\n" for line in block.solution))
    return result


def build_sources(root: Path) -> dict[str, str]:
    """Every piece of code in a build outside the exercise files: Python files and notebook code cells."""
    sources = {}
    for path in root.rglob("*.py"):
        if path.parent.name != "helpers":
            sources[str(path.relative_to(root))] = path.read_text(encoding="utf-8")
    for path in root.rglob("*.ipynb"):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = ["\n".join(l for l in "".join(c["source"]).splitlines() if not l.lstrip().startswith(("%", "!")))
                for c in cells if c["cell_type"] == "code"]
        sources[str(path.relative_to(root))] = "\n\n".join(code)
    return sources


def leaks(root: Path) -> list[tuple[str, str, str]]:
    wanted = solution_fingerprints()
    found = []
    for name, source in build_sources(root).items():
        prints = fingerprints(source)
        for label, solution in wanted.items():
            for shared in sorted(prints & solution):
                found.append((label, name, shared))
    return found


def test_no_solution_logic_anywhere_in_the_student_build(student):
    assert leaks(student) == []


def guidance_texts(root: Path) -> dict[str, str]:
    """What a student reads about an exercise: the exercise files as shipped (docstrings and TODO comments
    around the stubs) and every notebook's markdown (the hints the build kept)."""
    texts = {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in (root / "helpers").glob("*.py")}
    for path in root.rglob("*.ipynb"):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[str(path.relative_to(root))] = "\n\n".join("".join(c["source"]) for c in cells
                                                        if c["cell_type"] == "markdown")
    return texts


def code_fragments(text: str) -> list[str]:
    """Code quoted in prose: `inline`, ``docstring`` spans and the lines of fenced blocks."""
    fragments = re.findall(r"``([^`]+)``", text) + re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        fragments += block.splitlines()
    return [f.strip() for f in fragments if f.strip()]


def _docstrings_and_comments(source: str) -> str:
    tree = ast.parse(source)
    docs = [ast.get_docstring(n) or "" for n in [tree, *ast.walk(tree)]
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))]
    comments = [line.split("#", 1)[1] for line in source.splitlines() if line.lstrip().startswith("#")]
    return "\n".join(docs + comments)


def guidance_leaks(root: Path) -> list[tuple[str, str, str]]:
    """Solution code a student could copy from the guidance: a quoted fragment with a solution's fingerprint,
    or a whole solution line (of some length) quoted anywhere in the text."""
    wanted = solution_fingerprints()
    lines = {label: {line.strip() for line in block.solution if len(line.strip()) >= 24}
             for path in EXERCISE_FILES for block in find_blocks(path.read_text(encoding="utf-8"))
             for label in [block.label]}
    found = []
    for name, text in guidance_texts(root).items():
        prose = text if name.endswith(".ipynb") else _docstrings_and_comments(text)
        prints = set().union(*(fingerprints(f) for f in code_fragments(prose))) if prose else set()
        for label, solution in wanted.items():
            found += [(label, name, shared) for shared in sorted(prints & solution)]
            found += [(label, name, line) for line in sorted(lines[label]) if line in prose]
    return found


@pytest.mark.parametrize("hints", ["calls", "all"])
def test_no_solution_line_in_docstrings_comments_or_hints(hints, tmp_path):
    """Guidance says where to start and asks questions; it never holds a line to copy (any hint tier)."""
    out = tmp_path / "student"
    build(out, hints=hints)
    assert guidance_leaks(out) == []


def test_the_guidance_leak_detector_finds_a_quoted_solution(student):
    path = student / "helpers" / "style.py"
    text = path.read_text(encoding="utf-8")
    try:
        path.write_text(text.replace('"""Content loss', '"""Content loss: ``return content_weight * '
                                     '(current - target).pow(2).sum()``', 1), encoding="utf-8")
        assert any(label == "content_loss" for label, _, _ in guidance_leaks(student))
    finally:
        path.write_text(text, encoding="utf-8")


def test_the_leak_detector_finds_the_old_leaks(student, tmp_path):
    """The shapes of leaks the student kit once had, planted in a copy, are found."""
    planted = {
        "checks/old_saliency.py": "def _input_gradient(model, images, labels):\n"
                                  "    x = images.detach().clone().requires_grad_(True)\n"
                                  "    logits = model(x)\n"
                                  "    value = logits.gather(1, labels.view(-1, 1)).sum()\n"
                                  "    return torch.autograd.grad(value, x)[0].detach()\n",
        "checks/old_style.py": "def _gram64(features, divide_by=1.0):\n    f = features.double().flatten(2)\n"
                               "    return f @ f.transpose(1, 2) / divide_by\n",
        "convlens/old_fooling.py": "def step(images, jitter):\n    ox, oy = jitter\n"
                                   "    shifted = torch.roll(images.detach(), shifts=(oy, ox), dims=(2, 3)).requires_grad_(True)\n",
    }
    for name, text in planted.items():
        (student / name).write_text(text)
    try:
        found = {label for label, _, _ in leaks(student)}
    finally:
        for name in planted:
            (student / name).unlink()
    assert {"saliency_map", "class_visualization_step"} <= found
    assert "gram_matrix" in found or "style_loss" in found


def test_no_widget_state_is_committed():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert "widgets" not in nb["metadata"], path.name
        for cell in nb["cells"]:
            assert "widgets" not in cell.get("metadata", {})
            for output in cell.get("outputs", []):
                assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), path.name


def test_every_notebook_starts_with_the_one_setup_line():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        assert "".join(cells[0]["source"]).startswith("from convlens_setup import *"), path.name
