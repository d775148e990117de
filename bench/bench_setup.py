"""Set-up and test-suite figures: ``python bench/bench_setup.py [--skip-setup] [--pytest-args ...]``.

Prints, one per line:
- set-up time from nothing: a new virtual environment plus ``pip install -r requirements.txt``
  (packages come from pip's cache or local wheel folders when they are there, as on a second install);
- test-suite wall time (``python -m pytest``, the README's test command without the set-up step);
- peak resident memory of the test run (largest process: pytest or one of its own child processes, from
  ``os.wait4`` on pytest, so the pip processes of the set-up are not counted).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv

from _common import ROOT, peak_rss_bytes


def time_setup() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        venv.EnvBuilder(with_pip=True).create(tmp)
        subprocess.run([f"{tmp}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(ROOT / "requirements.txt")], check=True, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def time_tests(pytest_args: list[str]) -> tuple[float, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", *pytest_args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait4: the usage of pytest and the children it waited for, not of this process's earlier children (pip).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    return seconds, peak_rss_bytes(usage) / 2**20, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-setup", action="store_true")
    parser.add_argument("--pytest-args", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()
    if not args.skip_setup:
        print(f"set-up from nothing (venv + pip install): {time_setup():.0f} s", flush=True)
    seconds, peak_mib, code = time_tests(args.pytest_args)
    print(f"test suite: {seconds:.0f} s (pytest exit code {code})")
    print(f"test run peak memory (largest process RSS): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
