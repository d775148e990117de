"""The Gradescope bundle (``kit.py gradescope``): unpacked into a fake /autograder layout (AUTOGRADER_ROOT)
and run on a submission the way Gradescope runs it, with this environment as the bundle's Python."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import pytest

from checks.specs import TOPICS
from grader import gradescope, sandbox
from grader.points import load_points

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return gradescope.build(tmp_path_factory.mktemp("bundle") / "autograder.zip")


def test_bundle_holds_the_kit_and_the_two_scripts_only(bundle):
    names = zipfile.ZipFile(bundle).namelist()
    assert {"setup.sh", "run_autograder", "kit.py", "requirements.txt", "grader/points.toml", "checks/worker.py",
            "grader/hidden/gradcam.pt", "checks/judge.py", "helpers/gradcam.py", "convlens/model.py"} <= set(names)
    assert not any(n.startswith(("tests/", "notebooks/", "tools/", "bench/", ".venv/")) or "__pycache__" in n
                   for n in names)
    info = zipfile.ZipFile(bundle).getinfo("run_autograder")
    assert (info.external_attr >> 16) & stat.S_IXUSR


def _layout(base: Path, bundle: Path, submission_zip: Path) -> Path:
    """What Gradescope makes: the bundle in source/, run_autograder copied beside it, the submission."""
    root = base / "autograder"
    zipfile.ZipFile(bundle).extractall(root / "source")
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "submission").mkdir()
    zipfile.ZipFile(submission_zip).extractall(root / "submission")
    return root


def test_run_autograder_grades_a_submission_in_the_fake_layout(bundle, tmp_path):
    case = {"name": "student", "zip": True, "edit": [{"file": "style", "wrap": "tv_loss",
                                                      "code": "return original(*args, **kwargs) * 2"}]}
    root = _layout(tmp_path, bundle, mutate.build(case, ROOT, tmp_path, list(TOPICS)))
    done = subprocess.run(["bash", str(root / "run_autograder")], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "AUTOGRADER_ROOT": str(root), "CONVLENS_PYTHON": sys.executable})
    results = json.loads((root / "results" / "results.json").read_text())
    if not sandbox.detect("auto").isolated:  # --isolation required: it refuses, and says so
        assert done.returncode == 2 and "could not grade" in results["output"]
        return
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    questions = load_points(ROOT / "grader" / "points.toml").questions
    full = sum(q.points for q in questions)
    assert results["score"] == full - next(q.points for q in questions if q.check == "tv_loss")  # all but tv_loss
    tests = {t["name"]: t for t in results["tests"]}
    assert tests["style/tv_loss"]["score"] == 0 and tests["style/tv_loss"]["status"] == "failed"
    assert tests["style/tv_loss"]["output"].startswith("FAIL tv_loss: ")
    assert {t["visibility"] for t in results["tests"]} == {"after_due_date"}
    assert results["stdout_visibility"] == "hidden" and "isolation: none" not in results["output"]
    assert stat.S_IMODE((root / "source").stat().st_mode) & 0o077 == 0  # root alone reads the kit
    assert (root / "results" / "grades" / "submission" / "report.json").is_file()
