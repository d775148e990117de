"""Grading with nbval: ``pytest --nbval-lax`` compares exactly the check verdicts of a notebook.

The kit is prepared the way the README tells instructors to (``python -m grader SUBMISSION --prepare DIR``,
then ``pytest --nbval-lax DIR/notebooks``): once with the reference helpers, where every cell passes, and once
with one helper function broken (it returns a rescaled map: right shape, wrong values), where exactly the
check cells that depend on it fail and no other cell errors. One notebook only: whole notebooks are slow on
two cores, so this module is marked ``slow`` (deselect with ``-m "not slow"``).
"""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import nbformat
import pytest

from tools.run_notebooks import CHECK_MARKER

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "2_gradcam.ipynb"
TOPIC = "gradcam"
BROKEN_FUNCTION = "grad_cam"
# One function, one check: guided_grad_cam's check puts a stand-in in place of grad_cam.
DEPENDENT_CHECKS = ('check("grad_cam")',)


def _code_cells(path: Path) -> list[str]:
    """Sources of the notebook's code cells, in order: nbval's 'Cell N' is the N-th of them."""
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _start_nbval(kit: Path, report: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
               "-q", "--rootdir", str(kit), "-o", "addopts=", f"--junitxml={report}",
               str(kit / "notebooks" / NOTEBOOK)]
    return subprocess.Popen(command, cwd=kit, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _failed_cells(report: Path) -> set[int]:
    failed = set()
    for case in ET.parse(report).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(int(case.get("name").split()[-1]))
    return failed


def _prepare(submission: Path, dest: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "grader", str(submission), "--prepare", str(dest)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def nbval_runs(tmp_path_factory):
    """{"reference": failed cells, "broken": failed cells}, the two nbval runs made side by side."""
    if not (ROOT / "notebooks" / NOTEBOOK).is_file():
        pytest.skip(f"notebooks/{NOTEBOOK} is not written yet")
    from checks.child.specs import TOPICS

    tmp = tmp_path_factory.mktemp("nbval")
    case = {"name": "broken", "edit": [{"file": TOPIC, "wrap": BROKEN_FUNCTION,
                                       "code": "return original(*args, **kwargs) * 0.5"}]}
    broken_sub = mutate.build(case, ROOT, tmp / "subs", list(TOPICS))
    runs = {}
    for name, submission in (("reference", ROOT), ("broken", broken_sub)):
        _prepare(submission, tmp / name)
        runs[name] = (_start_nbval(tmp / name, tmp / f"{name}.xml"), tmp / f"{name}.xml")
    results = {}
    for name, (proc, report) in runs.items():
        log, _ = proc.communicate(timeout=1500)
        assert report.is_file(), log[-3000:]
        results[name] = (_failed_cells(report), log)
    return results


def test_reference_helpers_pass_every_cell(nbval_runs):
    failed, log = nbval_runs["reference"]
    assert not failed, log[-3000:]


def test_one_broken_function_fails_exactly_the_check_cells_that_depend_on_it(nbval_runs):
    cells = _code_cells(ROOT / "notebooks" / NOTEBOOK)
    check_cells = {i for i, src in enumerate(cells) if src.lstrip().startswith(CHECK_MARKER)}
    dependent = {i for i in check_cells if any(call in cells[i] for call in DEPENDENT_CHECKS)}
    assert dependent and check_cells - dependent, "the notebook should also have checks that do not depend on it"
    failed, log = nbval_runs["broken"]
    assert failed & check_cells == dependent, log[-3000:]
    # Cells that are not checks are not compared; they may only fail by calling the broken function.
    for i in failed - check_cells:
        assert f"{BROKEN_FUNCTION}(" in cells[i], f"cell {i} failed without calling {BROKEN_FUNCTION}:\n{cells[i]}"
