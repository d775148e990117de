"""The Gradescope bundle (``kit.py gradescope``): unpacked into a fake /autograder layout (AUTOGRADER_ROOT)
and run on a submission the way Gradescope runs it, with this environment as the bundle's Python."""
from __future__ import annotations

import json
import shutil
import tempfile
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import pytest

from checks.child.specs import TOPICS
from grader import gradescope, sandbox
from grader.points import load_points

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return gradescope.build(tmp_path_factory.mktemp("bundle") / "autograder.zip")


def test_bundle_holds_the_kit_and_the_two_scripts_only(bundle):
    names = zipfile.ZipFile(bundle).namelist()
    assert {"setup.sh", "run_autograder", "kit.py", "requirements.txt", "grader/points.toml", "checks/child/worker.py",
            "grader/hidden/gradcam.pt", "checks/judge/__init__.py", "helpers/gradcam.py", "convlens/model.py"} <= set(names)
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
    try:
        sandbox.detect("auto")
    except sandbox.SandboxUnavailable:  # no sandbox with the guarantee: it refuses, and says so
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


@pytest.fixture(scope="module")
def guest_python():
    """An environment the dedicated user can run, as on Gradescope (Python in the system prefix), without
    Captum (setup.sh removes it): the system's Python with this environment's packages linked in, Captum
    left out. Skipped where the system's Python is another version."""
    system = Path("/usr/bin/python3")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if os.geteuid() != 0 or not system.exists() or subprocess.run(
            [str(system), "-c", f"import sys; assert '%d.%d' % sys.version_info[:2] == '{version}'"]).returncode:
        pytest.skip(f"needs root and a system Python {version}")
    place = Path(tempfile.mkdtemp(prefix="convlens-guest-"))
    place.chmod(0o755)
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(place / "env")], check=True)
    packages = place / "packages"
    packages.mkdir()
    ours = Path(next(p for p in sys.path if p.endswith("site-packages")))
    for entry in ours.iterdir():
        if not entry.name.lower().startswith("captum"):
            (packages / entry.name).symlink_to(entry)
    site = place / "env" / "lib" / f"python{version}" / "site-packages"
    (site / "kit.pth").write_text(f"{packages}\n")
    yield place / "env" / "bin" / "python"
    shutil.rmtree(place, ignore_errors=True)


@pytest.mark.slow  # a whole submission graded twice more (35 s each); the fast tier grades one with bubblewrap
@pytest.mark.parametrize("isolation", ["namespaces+user", "setuid-user"])
def test_run_autograder_grades_without_bubblewrap(bundle, tmp_path, guest_python, isolation):
    """A container without bubblewrap, or without namespaces at all: the child runs as the dedicated user,
    the kit readable by root alone and Captum absent, and an honest submission gets full marks."""
    if isolation not in {m.name for m in sandbox.detection._candidates(sandbox.SANDBOX_USER)}:
        pytest.skip(f"{isolation} is not available here")
    place = Path(tempfile.mkdtemp(prefix="convlens-layout-"))
    try:
        place.chmod(0o755)
        case = {"name": "honest", "zip": True, "edit": []}
        root = _layout(place, bundle, mutate.build(case, ROOT, tmp_path, list(TOPICS)))
        done = subprocess.run(["bash", str(root / "run_autograder")], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "AUTOGRADER_ROOT": str(root), "CONVLENS_PYTHON": str(guest_python),
                                   "CONVLENS_ISOLATION": isolation})
        results = json.loads((root / "results" / "results.json").read_text())
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        full = sum(q.points for q in load_points(ROOT / "grader" / "points.toml").questions)
        assert results["score"] == full, results.get("output", "")[-2000:]
        assert f"isolation: {isolation}" in done.stdout + results.get("output", "")
    finally:
        shutil.rmtree(place, ignore_errors=True)
