"""Set-up and test-tier figures: ``python bench/bench_setup.py [--skip-setup] [--tier fast|all|both]``.

Prints, one per line:
- set-up time from nothing: a new virtual environment plus ``pip install -r requirements.txt``
  (packages come from pip's cache or local wheel folders when they are there, as on a second install);
- each test tier's wall and CPU time (``kit.py test``: the fast tier; ``kit.py test --all``: everything),
  with the load average before and after it (a tier on a busy machine takes longer: compare CPU time);
- peak resident memory of each run (largest process: pytest or one of its own child processes, from
  ``os.wait4``, so the pip processes of the set-up are not counted).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from _common import ROOT, peak_rss_bytes


def time_setup() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        venv.EnvBuilder(with_pip=True).create(tmp)
        subprocess.run([f"{tmp}/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(ROOT / "requirements.txt")], check=True, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def time_tier(tier: str, log: Path | None = None) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak MiB, exit code) of ``kit.py test`` (fast) or ``kit.py test --all``, in this
    Python's environment; pytest's output goes to ``log`` when given."""
    env = {**os.environ, "CONVLENS_PYTHON": sys.executable}
    start = time.perf_counter()
    sink = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "kit.py", "test", "-q", *(["--all"] if tier == "all" else [])], cwd=ROOT,
                            env=env, stdout=sink, stderr=subprocess.STDOUT)
    # wait4: the usage of the run and the children it waited for, not of this process's earlier children (pip).
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    if log:
        sink.close()
    return seconds, usage.ru_utime + usage.ru_stime, peak_rss_bytes(usage) / 2**20, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-setup", action="store_true")
    parser.add_argument("--tier", choices=("fast", "all", "both"), default="both")
    parser.add_argument("--log", type=Path, help="a folder for each tier's pytest output (test-fast.log, test-all.log)")
    args = parser.parse_args()
    if not args.skip_setup:
        print(f"set-up from nothing (venv + pip install): {time_setup():.0f} s", flush=True)
    venv = ROOT / ".venv"
    if venv.is_dir():  # the README's "size on disk"
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        print(f".venv/ on disk: {size / 1e9:.1f} GB", flush=True)
    for tier in (("fast", "all") if args.tier == "both" else (args.tier,)):
        before = os.getloadavg()[0]
        if args.log:
            args.log.mkdir(parents=True, exist_ok=True)
        seconds, cpu, peak_mib, code = time_tier(tier, args.log / f"test-{tier}.log" if args.log else None)
        command = "kit.py test" + (" --all" if tier == "all" else "")
        print(f"{command}: {seconds:.0f} s wall ({seconds / 60:.1f} min), {cpu:.0f} s CPU, peak {peak_mib:.0f} MiB, "
              f"exit code {code}; load average {before:.1f} before, {os.getloadavg()[0]:.1f} after", flush=True)


if __name__ == "__main__":
    main()
