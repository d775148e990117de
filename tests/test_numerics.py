"""The fast tier's numerical tests pass under other numerics, as another machine has them: older CPU kernels
(ATEN_CPU_CAPABILITY=default, as a CPU without AVX-512 or AVX2 runs), oneDNN off, one thread and two, the
network stored channels-last (tests/numeric_settings.py). So every stored mistake still fails and names its
cause, every correct variant passes, and every test against Captum or a formula holds, on any of them. Each
setting runs them in a fresh process (torch reads these settings when it starts), one test after
another, with its own temporary folder; the three run at once."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit import FULL_TIER_ONLY

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "older CPU kernels, one thread": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
    "oneDNN off, two threads": {"CONVLENS_ONEDNN": "0", "OMP_NUM_THREADS": "2"},
    "the network channels-last, one thread": {"CONVLENS_CHANNELS_LAST": "1", "OMP_NUM_THREADS": "1"},
}
# The fast tier's tests whose results depend on the numerics: every check's cases, mistakes and variants, the
# case kinds, the relations, and the solutions against Captum and formulas. (The whole fast tier under each
# setting, run once by hand, takes 26 min here with oneDNN off: too long for every run.)
FILES = ["tests/test_checks.py", "tests/test_case_kinds.py", "tests/test_relations.py", "tests/test_saliency.py",
         "tests/test_gradcam.py", "tests/test_fooling.py", "tests/test_style_transfer.py"]
TESTS = ["-m", "pytest", "-q", "-W", "ignore", "-p", "no:xdist", "-m", " and ".join(f"not {m}" for m in FULL_TIER_ONLY)]
# oneDNN off runs the network's plain kernels, several times slower: there the checks only, on every case.
CHOSEN = {"oneDNN off, two threads": ["tests/test_checks.py", "-k",
                                      "known_mistake or correct_variant or one_bug or solution_passes"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{setting: (exit status, the end of its output)}: every setting's run started at once, each in a fresh
    process (the machine's cores share them)."""
    started = {}
    for setting, extra in SETTINGS.items():
        base = tmp_path_factory.mktemp("numerics")  # pytest would otherwise clean up the others' folders
        started[setting] = subprocess.Popen([sys.executable, *TESTS, *CHOSEN.get(setting, FILES), "--basetemp",
                                             str(base)], cwd=ROOT,
                                            env={**os.environ, **extra}, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)
    done = {}
    for setting, process in started.items():
        try:
            output, _ = process.communicate(timeout=1800)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        done[setting] = (process.returncode, output[-4000:])
    return done


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_the_numerical_tests_pass_under_other_numerics(runs, setting):
    status, output = runs[setting]
    assert status == 0, output
