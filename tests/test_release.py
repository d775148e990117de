"""One source, two builds: the student kit has stubs where the solutions were, nothing of the solutions
leaks, the rest of each file is identical, and every check on the stubs says "not implemented"."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools.release import ANSWER_PLACEHOLDER, MarkerError, build, find_blocks, student_readme, stub_source

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_FILES = sorted(p for p in (ROOT / "helpers").glob("*.py") if find_blocks(p.read_text()))


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "student"
    build(out)
    return out


def _outside_blocks(text: str) -> list[str]:
    lines, keep, inside = text.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# TODO START"):
            inside = True
            keep.append(line)
        elif stripped.startswith("# TODO END"):
            inside = False
            keep.append(line)
        elif not inside:
            keep.append(line)
    return keep


def test_markers_are_validated():
    ok = "def f():\n    # TODO START f\n    # guidance\n    return 1\n    # TODO END f\n"
    assert [b.label for b in find_blocks(ok)] == ["f"]
    for bad, message in [
        ("    # TODO START f\n    x = 1\n", "never closed"),
        ("    # TODO END f\n", "without a TODO START"),
        ("    # TODO START f\n    x = 1\n    # TODO END g\n", "closes TODO START f"),
        ("    # TODO START f\n    # only guidance\n    # TODO END f\n", "no solution code"),
        ("    # TODO START f\n    # TODO START g\n", "inside the block"),
    ]:
        with pytest.raises(MarkerError, match=message):
            find_blocks(bad)


def test_stub_keeps_guidance_and_raises():
    src = "def f(x):\n    # TODO START f\n    # Double it.\n    y = 2 * x\n    return y\n    # TODO END f\n"
    stub = stub_source(src, "helpers/demo.py")
    assert "# Double it." in stub and "2 * x" not in stub
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError, match="f: write your code between TODO START and TODO END"):
        namespace["f"](1)


def test_there_are_exercises_to_release():
    assert {p.stem for p in SOLUTION_FILES} >= {"saliency", "gradcam", "fooling", "style"}


def test_gradcam_blocks_are_its_three_exercises():
    source = (ROOT / "helpers" / "gradcam.py").read_text(encoding="utf-8")
    assert [b.label for b in find_blocks(source)] == ["guided_backprop", "grad_cam", "guided_grad_cam"]


@pytest.mark.parametrize("solution", SOLUTION_FILES, ids=lambda p: p.name)
def test_student_file_is_the_solution_minus_solutions(student, solution):
    source = solution.read_text()
    stub = (student / "helpers" / solution.name).read_text()
    ast.parse(stub)
    blocks = find_blocks(source)
    assert stub.count("raise NotImplementedError(") >= len(blocks)
    # In step: outside the TODO blocks both builds are the same, line for line.
    assert _outside_blocks(stub) == _outside_blocks(source)
    # No leak: no solution line reaches the student build unless it also stands outside the blocks.
    outside = {line.strip() for line in _outside_blocks(source)}
    stub_lines = {line.strip() for line in stub.splitlines()}
    for block in blocks:
        leaked = [s for s in block.solution if s.strip() and s.strip() not in outside and s.strip() in stub_lines]
        assert not leaked, f"{solution.name} block {block.label} leaks {leaked[:3]}"


def test_student_build_leaves_out_maintainer_files(student):
    assert not (student / "tests").exists() and not (student / "bench").exists()
    assert not (student / "tools" / "release.py").exists() and not (student / "grader").exists()
    for instructor_only in ("tools/build_references.py", "tools/exercises", "grader/hidden"):
        assert not (student / instructor_only).exists(), instructor_only
    assert (student / "checks" / "references").is_dir() and (student / "datasets" / "photos.csv").is_file()


# What the student build ships, and nothing else: the student's exercise files, the kit library and its checks
# with their public reference tensors, the data, the notebooks and their set-up, and the commands to run them.
SHIPPED_FILES = [r"README\.md", r"LICENSE", r"requirements\.txt", r"environment\.yml", r"kit\.py",
                 r"tools/download_paintings\.py", r"helpers/\w+\.py", r"convlens/(\w+/)?\w+\.py",
                 r"checks/(\w+/)?\w+\.py", r"checks/child/specs\.json", r"checks/references/\w+\.pt",
                 r"datasets/(\w+/)?[\w.-]+\.(jpg|png|csv|md)",
                 r"notebooks/\d_\w+\.ipynb", r"notebooks/convlens_setup\.py",
                 r"notebooks/\.lab-settings/[\w.-]+\.json"]


def test_the_student_build_ships_only_what_a_student_uses(student):
    import re

    shipped = sorted(p.relative_to(student).as_posix() for p in student.rglob("*") if p.is_file())
    strays = [p for p in shipped if not any(re.fullmatch(pattern, p) for pattern in SHIPPED_FILES)]
    assert not strays, strays  # a claims file, a test, a bench or a maintainer's tool would land here
    for pattern in SHIPPED_FILES:
        assert any(re.fullmatch(pattern, p) for p in shipped), f"nothing ships for {pattern}"


def test_hidden_cases_are_not_shipped(student):
    """No shipped file holds a hidden case: the student kit's reference files are exactly the public ones."""
    import torch

    for path in (student / "checks" / "references").glob("*.pt"):
        data = torch.load(path, weights_only=True)
        assert not data["meta"].get("hidden")
        hidden = torch.load(ROOT / "grader" / "hidden" / path.name, weights_only=True)["cases"]
        inputs = [c["inputs"] for c in data["cases"]]
        for case in hidden:
            assert not any(_same_inputs(case["inputs"], seen) for seen in inputs), (path.name, case["label"])
    assert not list(student.rglob("hidden"))


def _same_inputs(a, b) -> bool:
    """Equal nested inputs: the same structure and equal tensors."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_inputs(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_inputs(x, y) for x, y in zip(a, b))
    return a == b


def test_readme_markers_are_validated():
    text = "a\n<!-- full kit -->\nb\n<!-- end full kit -->\n<!-- student kit\nc\n-->\nd\n"
    assert student_readme(text) == "a\nc\nd\n"
    for bad in ["<!-- full kit -->\nb\n", "<!-- end full kit -->\n", "<!-- student kit\n<!-- full kit -->\n"]:
        with pytest.raises(MarkerError):
            student_readme(bad)


def test_student_readme_and_kit_py_offer_only_what_the_student_kit_has(student):
    readme = (student / "README.md").read_text()
    assert "<!--" not in readme and "-->" not in readme
    assert "## Students" in readme and "python3 kit.py lab" in readme
    for instructor_only in ("Instructors", "kit.py grade", "kit.py release", "kit.py references", "kit.py test",
                            "kit.py run", "nbval", "tests/"):
        assert instructor_only not in readme, instructor_only
    full = (ROOT / "README.md").read_text()
    assert "kit.py grade" in full and "python3 kit.py test" in full  # the full kit keeps them
    env = {**os.environ, "CONVLENS_PYTHON": sys.executable}
    help_text = subprocess.run([sys.executable, "kit.py"], cwd=student, env=env, capture_output=True,
                               text=True).stdout
    offered = {line.split()[0] for line in help_text.splitlines() if line.startswith("    ")}
    assert offered == {"lab", "check", "setup"}
    refused = subprocess.run([sys.executable, "kit.py", "grade", "x"], cwd=student, env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "not part of this copy of the kit" in refused.stdout


def test_student_notebooks_are_cleared(student):
    notebooks = sorted((student / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        source_nb = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
        for cell, original in zip(nb.cells, source_nb.cells):
            if "solution" in original.metadata.get("tags", []):
                assert cell.source == ANSWER_PLACEHOLDER and original.source != ANSWER_PLACEHOLDER


def test_every_check_on_the_student_build_says_not_implemented(student):
    env = {**os.environ, "CONVLENS_PYTHON": sys.executable, "CONVLENS_DEVICE": "cpu"}
    result = subprocess.run([sys.executable, "kit.py", "check"], cwd=student, env=env,
                            capture_output=True, text=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    verdicts, summary = lines[:-1], lines[-1]
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert verdicts and summary == f"0 passed, {len(verdicts)} failed"
    for line in verdicts:
        assert line.startswith("FAIL ") and "not implemented yet: fill in the TODO in helpers/" in line, line


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_run_all_on_the_student_build_names_what_is_missing_and_goes_on(student, notebook):
    """Run All on the student build, as a student who has written nothing yet: no cell raises, no traceback;
    each exercise of the notebook is named by its check cell, and the cells that need it say so in one line."""
    import nbformat
    from nbclient import NotebookClient

    from checks.child.specs import SPECS, TOPICS

    nb = nbformat.read(student / "notebooks" / notebook, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(student / "notebooks")}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert not [o for o in outputs if o.output_type == "error"]
    assert "Traceback" not in text and "Error" not in text.replace("FAIL", "")
    topic = next(t for t, path in TOPICS.items() if path.endswith(notebook))
    for name, spec in SPECS.items():
        if spec.topic == topic:
            assert f"FAIL {name}: not implemented yet" in text
    needs = [line for line in text.splitlines() if line.startswith(("needs ", "skipped: "))]
    assert needs and all("(not written yet)" in line for line in needs)


@pytest.mark.parametrize("hints, kept", [("none", []), ("idea", [1]), ("calls", [1, 2]), ("all", [1, 2, 3])])
def test_the_instructor_chooses_the_hint_tiers(hints, kept):
    from tools.release import student_notebook

    nb = nbformat.read(ROOT / "notebooks" / "2_gradcam.ipynb", as_version=4)
    built = student_notebook(nb, hints)
    text = "".join(c.source for c in built.cells)
    for tier in (1, 2, 3):
        assert (f"<b>Hint {tier}:" in text) == (tier in kept), (hints, tier)
    hint_cells = [c for c in built.cells if "hints" in c.metadata.get("tags", [])]
    assert (len(hint_cells) == 0) == (not kept)
    assert len(built.cells) == len(nb.cells) - (0 if kept else sum("hints" in c.metadata.get("tags", [])
                                                                   for c in nb.cells))
