"""The same verdicts and the same likely causes under other numerics, as another machine has them: older CPU
kernels (ATEN_CPU_CAPABILITY=default, as a CPU without AVX-512 or AVX2 runs), oneDNN off, one thread and two,
the network stored channels-last (tests/numeric_settings.py). Every
stored mistake must still fail and name its cause, and every correct variant must still pass. Each setting
runs tests/test_checks.py's mistake and variant tests in a fresh process (torch reads these settings when it
starts)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "older CPU kernels, one thread": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
    "oneDNN off, two threads": {"CONVLENS_ONEDNN": "0", "OMP_NUM_THREADS": "2"},
    "the network channels-last, one thread": {"CONVLENS_CHANNELS_LAST": "1", "OMP_NUM_THREADS": "1"},
}
TESTS = ["-m", "pytest", "-q", "-W", "ignore", "tests/test_checks.py", "-k", "known_mistake or correct_variant or one_bug"]


@pytest.fixture(scope="module")
def runs() -> dict:
    """{setting: (exit status, the end of its output)}: every setting's run started at once, each in a fresh
    process (the machine's cores share them; the fast tier itself runs with torch's default threads)."""
    started = {setting: subprocess.Popen([sys.executable, *TESTS], cwd=ROOT, env={**os.environ, **extra},
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for setting, extra in SETTINGS.items()}
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
def test_mistakes_and_variants_are_judged_the_same_under_other_numerics(runs, setting):
    status, output = runs[setting]
    assert status == 0, output
