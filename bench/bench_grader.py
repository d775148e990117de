"""Grader speed: ``python bench/bench_grader.py [--jobs 2]``. Prints one figure per line.

* the whole command (``python -m grader``, cold start) on one full submission: the reference solutions,
  every check of every topic. Target: at most 180 s on a 2-core CPU.
* the same grading in-process with a warm forkserver, with 1 and with ``--jobs`` workers at once, and a
  class folder of 6 copies (batch mode);
* the slowest check, and what one worker costs to start: forked from the warm forkserver versus a fresh
  interpreter that imports torch and captum and loads the model (why workers are forked).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

from grader.grade import grade
from grader.process import Limits, Worker
from grader.workspace import Workspace, topics_of


def time_cli(jobs: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader", str(ROOT), "--out", out, "--jobs", str(jobs)],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def time_batch(count: int, jobs: int) -> float:
    """Seconds to grade ``count`` copies of the reference helpers as one class folder."""
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            shutil.copytree(ROOT / "helpers", Path(tmp) / f"student{i:02d}" / "helpers")
        start = time.perf_counter()
        graded = grade([Path(tmp)], jobs=jobs)
        assert len(graded) == count
        return time.perf_counter() - start


def time_fresh_interpreter() -> float:
    code = "import torch, captum.attr; from convlens.model import load_model; load_model('cpu')"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return time.perf_counter() - start


def time_forked_worker() -> float:
    files = {t: ROOT / "helpers" / f"{t}.py" for t in topics_of(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(ROOT, Path(tmp), files)
        Worker(ws.kit, ws.scratch, "gradcam", Limits()).close()  # warms the forkserver
        start = time.perf_counter()
        Worker(ws.kit, ws.scratch, "gradcam", Limits()).close()
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cli = time_cli(args.jobs)
    print(f"grade one full submission, whole command, {args.jobs} jobs: {cli:.1f} s (target <= 180 s)", flush=True)
    forked = time_forked_worker()  # also starts this process's forkserver, so the figures below are warm
    for jobs in sorted({1, args.jobs}):
        (graded,) = grade([ROOT], jobs=jobs)
        print(f"grade one full submission in-process, warm, {jobs} job(s): {graded.seconds:.1f} s, "
              f"score {graded.score:g}/{graded.max_score:g}", flush=True)
    batch = time_batch(6, args.jobs)
    print(f"grade a class folder of 6 submissions, {args.jobs} jobs: {batch:.1f} s ({batch / 6:.1f} s per submission)")
    slowest = max(zip(graded.questions, graded.results), key=lambda qr: qr[1].seconds)
    print(f"slowest check: {slowest[0].name} {slowest[1].seconds:.1f} s")
    print(f"worker start, forked from the warm forkserver (model loaded): {forked:.2f} s")
    print(f"worker start, fresh interpreter (import torch + captum, load model): {time_fresh_interpreter():.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
