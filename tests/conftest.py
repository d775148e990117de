"""Shared fixtures: the kit's root on sys.path, one pretrained model per test session."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def model():
    from helpers.model import load_model

    return load_model("cpu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
