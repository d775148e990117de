"""The set-up every notebook runs first, as one line: ``from convlens_setup import *`` (notebooks/).

It makes the kit importable, loads autoreload (your helpers/ files are re-read when you save them), draws
plots inline, fixes the seeds, silences Captum's expected notes, picks the device and the number of threads,
and exports the names every notebook uses: ``torch``, ``F``, ``np``, ``plt``, ``device``.
"""
from __future__ import annotations

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["torch", "F", "np", "plt", "device", "choose_device", "choose_threads"]


def choose_device() -> torch.device:
    """The one device rule of the kit (notebooks and checks): $CONVLENS_DEVICE if set, else CUDA when
    available, else the CPU."""
    name = os.environ.get("CONVLENS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def choose_threads() -> int:
    """CPU threads for PyTorch: $CONVLENS_THREADS if set, else one fewer than the cores this process may use
    (at least one). A laptop always has something else running; when PyTorch asks for every core, its
    threads wait on each other behind that other program and a notebook runs several times slower
    (bench/bench_threads.py measures it)."""
    if os.environ.get("CONVLENS_THREADS"):
        return max(1, int(os.environ["CONVLENS_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def _setup() -> torch.device:
    torch.set_num_threads(choose_threads())
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
    return choose_device()


device = _setup()
