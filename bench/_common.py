"""What the bench scripts share: the kit's root on ``sys.path``, a header line about the machine, timers, a
headless notebook run and peak memory. Imported as ``_common`` by the scripts in this folder (run them from
the kit's root: ``python bench/bench_<name>.py``)."""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine_line() -> str:
    """Cores, torch threads and load average: figures from a busy machine are pessimistic.

    Imports torch, so set ``OMP_NUM_THREADS`` before calling it if you want to choose the thread count."""
    import torch

    load1, load5, _ = os.getloadavg()
    return (f"machine: {os.cpu_count()} CPU(s), torch threads {torch.get_num_threads()}, load average "
            f"{load1:.1f} (1 min), {load5:.1f} (5 min); figures are only comparable on a quiet machine")


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(what ``fn()`` returned, wall seconds, CPU seconds of this process) of one call."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - cpu_start


def best_of(fn: Callable[[], Any], repeats: int, warmup: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeats`` calls (by wall time), after one untimed call if
    ``warmup``."""
    if warmup:
        fn()
    return min(timed(fn)[1:] for _ in range(repeats))


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class NotebookRun(NamedTuple):
    ok: bool  # ran without an error
    seconds: float  # wall time
    figures: int  # pictures saved
    kernel_cpu_seconds: float  # CPU time of the kernel and its helpers (finished child processes)


def time_notebook(name: str) -> NotebookRun:
    """Execute ``notebooks/<name>`` headless in a temporary folder (tools/run_notebooks.execute)."""
    from tools.run_notebooks import execute

    cpu_before = _children_cpu_seconds()
    with tempfile.TemporaryDirectory() as out:
        ok, seconds, figures = execute(ROOT / "notebooks" / name, Path(out))
    return NotebookRun(ok, seconds, figures, _children_cpu_seconds() - cpu_before)


def peak_rss_bytes(usage: resource.struct_rusage | None = None) -> float:
    """Peak resident set size from ``usage`` (default: this process so far), in bytes. ``ru_maxrss`` is in
    KiB on Linux and in bytes on macOS."""
    peak = (usage or resource.getrusage(resource.RUSAGE_SELF)).ru_maxrss
    return float(peak) if sys.platform == "darwin" else peak * 1024.0


def peak_rss_mb(usage: resource.struct_rusage | None = None) -> float:
    """:func:`peak_rss_bytes` in MB (10^6 bytes)."""
    return peak_rss_bytes(usage) / 1e6
