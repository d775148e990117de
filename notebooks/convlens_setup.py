"""Notebook set-up, one line in each notebook: ``from convlens_setup import *``.

Puts the kit's root on the import path, then runs convlens.notebook (device, threads, plots, autoreload).
"""
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from convlens.notebook import *  # noqa: E402,F401,F403
