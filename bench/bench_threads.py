"""Notebook run times on a busy laptop: ``python bench/bench_threads.py [--notebooks 1_network_visualization ...]``.

For each notebook, four headless runs: quiet and next to one competing busy process (a second Python process
spinning on one core), each with PyTorch's default threads (one per core) and with the kit's setting
(convlens.runtime.choose_threads: one fewer than the cores). Prints wall and CPU seconds, the ratio
"with competitor / quiet" (goal: at most 1.5 with the kit's setting), the load average, and the README's
stated time beside the quiet one.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys

from _common import ROOT, machine_line, time_notebook

NOTEBOOKS = ["1_network_visualization", "2_gradcam", "3_fooling_and_class_images", "4_style_transfer"]


def _spin() -> None:
    while True:
        pass


def readme_times() -> dict[str, str]:
    """{notebook name: the run time stated in the README's table}."""
    rows = re.findall(r"^\| `(\d_\w+)` \|[^|]*\| ([^|]+) \|$", (ROOT / "README.md").read_text(), re.M)
    return {name: text.strip() for name, text in rows}


def run(name: str, threads: str | None, competitor: bool) -> tuple[float, float, float]:
    """(wall s, CPU s, 1-min load average at the end) of one headless run."""
    if threads is None:
        os.environ.pop("CONVLENS_THREADS", None)
    else:
        os.environ["CONVLENS_THREADS"] = threads
    spinner = multiprocessing.Process(target=_spin, daemon=True) if competitor else None
    if spinner:
        spinner.start()
    try:
        result = time_notebook(f"{name}.ipynb")
    finally:
        if spinner:
            spinner.terminate()
            spinner.join()
    if not result.ok:
        print(f"  {name}: the notebook raised", file=sys.stderr)
    return result.seconds, result.kernel_cpu_seconds, os.getloadavg()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", nargs="*", default=NOTEBOOKS)
    parser.add_argument("--threads", choices=["both", "kit"], default="both",
                        help="'kit': only the kit's setting (default threads next to a competitor can take 40x "
                             "the quiet time, over ten minutes for notebook 4)")
    args = parser.parse_args(argv)
    print(machine_line())
    stated = readme_times()
    cores = str(len(os.sched_getaffinity(0)))
    for name in args.notebooks:
        print(f"{name} (README: {stated.get(name, '?')})")
        settings = [(f"default threads ({cores})", cores), ("kit's setting", None)]
        for label, threads in settings[1:] if args.threads == "kit" else settings:
            quiet = run(name, threads, competitor=False)
            busy = run(name, threads, competitor=True)
            print(f"  {label:<22} quiet {quiet[0]:6.1f} s wall {quiet[1]:6.1f} s CPU (load {quiet[2]:.1f}) | "
                  f"with competitor {busy[0]:6.1f} s wall (load {busy[2]:.1f}) | ratio {busy[0] / quiet[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
