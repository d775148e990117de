"""Shared set-up: checks run on CPU, the kit's root on sys.path, one pretrained model per test session, and
the global RNG seeded before every test."""
import os
import sys
from pathlib import Path

# The `model` fixture is on CPU, and the kit's device rule ($CONVLENS_DEVICE, else CUDA when present:
# convlens.notebook.choose_device, checks.compute.check_device) decides where checks put their inputs: pin it
# to CPU too, before anything reads it.
os.environ.setdefault("CONVLENS_DEVICE", "cpu")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def model():
    from convlens.model import load_model

    return load_model("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
