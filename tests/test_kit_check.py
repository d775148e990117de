"""``kit.py check``: each topic in its own process, so one broken file costs only its own checks, and the
summary line always prints."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checks.child.specs import checks_of

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def kit(tmp_path):
    for name in ("convlens", "checks", "helpers"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "kit.py", tmp_path / "kit.py")
    (tmp_path / "requirements.txt").write_text("")
    return tmp_path


def run_check(kit: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONVLENS_PYTHON": sys.executable, "CONVLENS_DEVICE": "cpu"}
    return subprocess.run([sys.executable, "kit.py", "check", *args], cwd=kit, env=env, capture_output=True,
                          text=True, timeout=timeout)


def verdicts(stdout: str) -> dict[str, str]:
    return {line.split()[1].rstrip(":"): line for line in stdout.splitlines() if line.startswith(("PASS ", "FAIL "))}


def test_a_syntax_error_costs_only_its_own_files_checks(kit):
    path = kit / "helpers" / "gradcam.py"
    path.write_text(path.read_text().replace("def grad_cam(", "def grad_cam(:", 1))
    result = run_check(kit, "gradcam", "style")
    lines = verdicts(result.stdout)
    for name in checks_of("gradcam"):
        assert lines[name].startswith(f"FAIL {name}: helpers/gradcam.py cannot be imported: SyntaxError: ")
        assert "(helpers/gradcam.py line " in lines[name]
    for name in checks_of("style"):
        assert lines[name].startswith(f"PASS {name}: ")
    passed, failed = len(checks_of("style")), len(checks_of("gradcam"))
    assert result.stdout.strip().splitlines()[-1] == f"{passed} passed, {failed} failed" and result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_an_endless_loop_costs_one_check_and_the_rest_still_run(kit):
    path = kit / "helpers" / "style.py"
    path.write_text(path.read_text().replace("    # TODO START gram_matrix\n", "    # TODO START gram_matrix\n"
                                             "    while True:\n        pass\n", 1))
    result = run_check(kit, "style", "--timeout", "8")
    lines = verdicts(result.stdout)
    assert lines["gram_matrix"] == ("FAIL gram_matrix: normalize=True: did not finish within 8 s of CPU time (an "
                                    "endless loop, or a step budget ignored?)")
    others = [name for name in checks_of("style") if name != "gram_matrix"]
    for name in others:  # style_loss gets a stand-in Gram
        assert lines[name].startswith(f"PASS {name}: ")
    assert result.stdout.strip().splitlines()[-1] == f"{len(others)} passed, 1 failed"


def test_a_crash_and_sys_exit_are_one_line_each(kit):
    path = kit / "helpers" / "saliency.py"
    text = path.read_text().replace("    # TODO START saliency_map\n", "    # TODO START saliency_map\n"
                                    "    import os; os._exit(3)\n", 1)
    path.write_text(text.replace("    # TODO START occlusion_map\n", "    # TODO START occlusion_map\n"
                                 "    raise SystemExit(1)\n", 1))
    result = run_check(kit, "saliency")
    lines = verdicts(result.stdout)
    assert lines["saliency_map"] == ("FAIL saliency_map: objective='score': the process running it died (exit code "
                                     "3): os._exit, a crash, or memory exhausted")
    assert lines["occlusion_map"].startswith("FAIL occlusion_map: called sys.exit(1)")
    assert lines["integrated_gradients"].startswith("PASS integrated_gradients")  # same file, untouched
    others = len(checks_of("saliency")) - 2  # the topic's other exercises, untouched
    assert result.stdout.strip().splitlines()[-1] == f"{others} passed, 2 failed"


def test_names_are_listed_and_unknown_ones_refused(kit):
    result = run_check(kit, "saliency_mapp")
    assert result.returncode == 2 and "unknown topic or function 'saliency_mapp'" in result.stdout
    for name in ("saliency", "occlusion_map", "guided_grad_cam", "class_visualization_step", "tv_loss"):
        assert name in result.stdout
    one = run_check(kit, "tv_loss")
    assert one.stdout.strip().splitlines() == ["PASS tv_loss: scalar and its gradient match the reference", "1 passed, 0 failed"]
