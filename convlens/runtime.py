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


def interactive() -> bool:
    """False when a notebook runs without anyone watching (``kit.py run``, nbval: they set $CONVLENS_BATCH),
    where a widget would be saved as its first frame: a progress bar at 0 %, an explorer as ``VBox(...)``."""
    return not os.environ.get("CONVLENS_BATCH")


class _FinalLine:
    """A progress bar for a run nobody watches: no frames, one line when it closes."""

    def __init__(self, iterable=None, total=None, desc: str = ""):
        self.iterable, self.desc, self.n = iterable, desc, 0
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
        self.close()

    def update(self, count: int = 1) -> None:
        self.n += count

    def close(self) -> None:
        if self.desc is not None:
            print(f"{self.desc}: {self.n}/{self.total if self.total is not None else self.n} done")
            self.desc = None


def progress(iterable=None, total=None, desc: str = "", enabled: bool = True):
    """tqdm's notebook bar (``tqdm.auto``, cleared when done) where someone watches; else one final line.
    ``enabled=False``: the iterable unchanged. The object has ``update(n)`` and ``close()`` like tqdm's."""
    if not enabled:
        return iterable
    if interactive():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False)
    return _FinalLine(iterable, total, desc)
