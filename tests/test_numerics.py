"""The same verdicts and the same likely causes under other numerics, as another machine has them: older CPU
kernels (ATEN_CPU_CAPABILITY=default, as a CPU without AVX-512 or AVX2 runs), oneDNN off, two threads, the
network stored channels-last (tests/numeric_settings.py). Every
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
    "older CPU kernels": {"ATEN_CPU_CAPABILITY": "default"},
    "AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2"},
    "oneDNN off, two threads": {"CONVLENS_ONEDNN": "0", "OMP_NUM_THREADS": "2"},
    "the network channels-last": {"CONVLENS_CHANNELS_LAST": "1"},
}


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_mistakes_and_variants_are_judged_the_same_under_other_numerics(setting):
    env = {**os.environ, **SETTINGS[setting]}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-W", "ignore",
                           "tests/test_checks.py", "-k", "known_mistake or correct_variant or one_bug"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:]
