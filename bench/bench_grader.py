"""Grader speed and memory: ``python bench/bench_grader.py [--count 6] [--jobs 2]``. Prints one figure per line.

Grades a class folder of ``--count`` copies of the reference solutions with the whole command
(``python -m grader``, a cold start: it also measures the reference solution's CPU times first), while a
thread samples the command's process tree (the grader and every sandboxed child) every 0.1 s:

* wall time, per submission. Target: at most 10 s per submission in a class folder on 2 cores;
* CPU time of the whole tree (each process's last sampled user + system time), per submission;
* peak memory of the whole tree: the sum of RSS (shared library pages counted once per process) and of PSS
  (shared pages split between the processes that map them: what the tree really holds). Target: 1.5 GB.

The load average is printed beside the timings: wall times from a busy machine are pessimistic (CPU times
much less so).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT

_CLOCK = os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (by parent pid; sandboxed children are in other pid namespaces, but
    this namespace sees them with their parents)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


class TreeSampler:
    """Peak RSS and PSS sums and the CPU time of a process tree, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self.cpu: dict[int, float] = {}  # pid -> last sampled CPU seconds
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            rss = pss = 0
            for pid in _tree(self.pid):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except (OSError, IndexError):
                    continue
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK
                values = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if ":" in line}
                rss += values.get("Rss", 0) * 1024
                pss += values.get("Pss", 0) * 1024
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            time.sleep(self.interval)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()


def grade_class(count: int, jobs: int) -> tuple[float, TreeSampler, str]:
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):
            shutil.copytree(ROOT / "helpers", Path(tmp) / "class" / f"student{i:02d}" / "helpers")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "grader", str(Path(tmp) / "class"), "--out",
                                 str(Path(tmp) / "out"), "--jobs", str(jobs)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        sampler = TreeSampler(proc.pid)
        output, _ = proc.communicate()
        wall = time.perf_counter() - start
        sampler.stop()
        if proc.returncode != 0 or f"{count} submission(s) graded" not in output:
            raise SystemExit(output[-3000:])
        return wall, sampler, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6, help="submissions in the class folder (default 6)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from _common import machine_line

    print(machine_line(), flush=True)
    load_before = os.getloadavg()
    wall, sampler, output = grade_class(args.count, args.jobs)
    load_after = os.getloadavg()
    cpu = sum(sampler.cpu.values())
    isolation = next((line for line in output.splitlines() if line.startswith("isolation:")), "isolation: ?")
    print(isolation.split(" -- ")[0])
    print(f"class folder of {args.count} submissions, --jobs {args.jobs}, whole command: wall {wall:.1f} s "
          f"({wall / args.count:.1f} s per submission; target <= 10 s), load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after")
    print(f"CPU time of the process tree: {cpu:.1f} s ({cpu / args.count:.1f} s per submission, the reference "
          f"solution's run included), of which the grader's own process {sampler.cpu.get(sampler.pid, 0):.1f} s; "
          f"{len(sampler.cpu)} processes seen")
    print(f"peak memory of the process tree: PSS {sampler.peak_pss / 2**30:.2f} GB (target <= 1.5 GB), "
          f"RSS {sampler.peak_rss / 2**30:.2f} GB (shared pages counted once per process)")
    print(f"load average now: {os.getloadavg()[0]:.1f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
