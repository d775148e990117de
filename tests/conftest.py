"""Shared set-up: checks run on CPU, one pretrained model per test session, and
the global RNG seeded before every test."""
import os
import sys
from pathlib import Path

# The `model` fixture is on CPU, and the kit's device rule ($CONVLENS_DEVICE, else CUDA when present:
# convlens.notebook.choose_device, checks.child.compute.check_device) decides where checks put their inputs: pin it
# to CPU too, before anything reads it.
os.environ.setdefault("CONVLENS_DEVICE", "cpu")
# `kit.py test` runs one pytest worker per core: one PyTorch thread each (and in the processes they start), or
# on 2 cores four threads share two cores and each waits on the others (a test ran 15 times slower so).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("CONVLENS_THREADS", "1")

import numeric_settings  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Other numerics, as another machine has them (tests/test_numerics.py runs the checks' own tests so).
numeric_settings.apply()

ROOT = Path(__file__).resolve().parents[1]  # on sys.path through pytest.ini


@pytest.fixture(scope="session")
def model():
    from convlens.model import load_model

    return load_model("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pin_differences() -> dict:
    """{package: (pinned, installed)} for every requirement whose installed version is not its pin."""
    import re
    from importlib.metadata import PackageNotFoundError, version

    wrong = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if not match:
            continue
        try:
            installed = version(match[1])
        except PackageNotFoundError:
            installed = "missing"
        if installed.split("+")[0] != match[2]:
            wrong[match[1]] = (match[2], installed)
    return wrong


def outside_pinned_environment() -> str | None:
    """Why this is not the kit's own pinned environment (.venv/ built by kit.py), or None when it is."""
    if os.environ.get("CONVLENS_PYTHON"):
        return f"CONVLENS_PYTHON is set ({os.environ['CONVLENS_PYTHON']}): not the kit's pinned .venv/"
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        return f"running in {sys.prefix}, not the kit's pinned .venv/"
    return None
