"""Time per single check: ``python bench/bench_check.py [--repeats 3] [NAME ...]`` (default: every check).

For each check, the wall time of ``python3 kit.py check NAME`` as a student runs it (best of ``--repeats``),
beside two floors measured in the same run: starting Python and importing torch, and the same plus loading
the pretrained model. The ratio to the first floor is what the process layer and the check's own cases
cost beyond the one torch import a check cannot avoid. Prints the load average at the start and the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _common import ROOT, machine_line


def wall(argv: list[str], repeats: int) -> float:
    """Best wall seconds of ``repeats`` runs of ``argv`` from the kit's root (its exit code is ignored: a
    failing check costs time as well)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    from checks.child.specs import SPECS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="checks (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    python = sys.executable
    torch_floor = wall([python, "-c", "import torch"], args.repeats)
    model_floor = wall([python, "-c", "from convlens.model import load_model; load_model('cpu')"], args.repeats)
    print(f"floor: python + import torch {torch_floor:.2f} s; + load the model {model_floor:.2f} s")
    print(f"{'check':<26}{'wall s':>8}{'/ torch floor':>15}")
    for name in args.names or list(SPECS):
        seconds = wall([python, "kit.py", "check", name], args.repeats)
        print(f"{name:<26}{seconds:>8.2f}{seconds / torch_floor:>15.1f}")
    load1, load5, _ = os.getloadavg()
    print(f"load average at the end: {load1:.1f} (1 min), {load5:.1f} (5 min)")


if __name__ == "__main__":
    main()
