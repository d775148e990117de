"""The kit's one device rule and one thread rule, shared by the notebooks, the checks and kit.py."""
from __future__ import annotations

import os

import torch


def choose_device() -> torch.device:
    """$CONVLENS_DEVICE if set, else CUDA when available, else the CPU."""
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


def apply_threads() -> int:
    """Set PyTorch's intra-op threads by :func:`choose_threads`; returns the number."""
    threads = choose_threads()
    torch.set_num_threads(threads)
    return threads
