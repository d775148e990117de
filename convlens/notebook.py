"""The set-up every notebook runs first, as one line: ``from convlens_setup import *`` (notebooks/).

It makes the kit importable, loads autoreload (your helpers/ files are re-read when you save them), draws
plots inline, fixes the seeds, silences Captum's expected notes, picks the device and the number of threads,
lets a cell that needs an exercise not written yet say so in one line (convlens/unfinished.py), and exports
the names every notebook uses: ``torch``, ``F``, ``np``, ``plt``, ``device``.
"""
from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from convlens.runtime import apply_threads, choose_device, choose_threads

__all__ = ["torch", "F", "np", "plt", "device", "choose_device", "choose_threads"]


def _setup() -> torch.device:
    apply_threads()
    torch.manual_seed(0)
    np.random.seed(0)
    # Captum notes that it set hooks or made inputs require grad: expected, and noise to a student.
    warnings.filterwarnings("ignore", message=".*(backward hooks|required_grads|require gradients).*")
    warnings.filterwarnings("ignore", message=".*Setting forward, backward hooks.*")
    try:
        from IPython import get_ipython
    except ImportError:
        ipython = None
    else:
        ipython = get_ipython()
    if ipython is not None:
        ipython.run_line_magic("load_ext", "autoreload")
        ipython.run_line_magic("autoreload", "2")
        ipython.run_line_magic("matplotlib", "inline")
        from convlens.unfinished import install

        install(ipython)  # a cell that needs an exercise not written yet prints one line and Run All goes on
    return choose_device()


device = _setup()
