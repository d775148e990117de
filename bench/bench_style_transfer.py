"""Speed and memory of notebook 4 (style transfer): ``python bench/bench_style_transfer.py [--skip-notebook]``.

Prints one figure per line:
  * one style transfer at 256 px with 200 L-BFGS function evaluations (chelsea + mosaic, default settings),
    with the fast feature network (folded BatchNorm, channels-last, forward stopped at block 8, cached
    targets) and, for comparison, with the plain model (target: at most 12 s on a quiet 2-core CPU);
  * the process's peak resident memory after that run (target: at most 2 GB);
  * the headless execution time of notebooks/4_style_transfer.ipynb (target: at most 150 s).
"""
from __future__ import annotations

import argparse
import sys

from _common import machine_line, peak_rss_mb, time_notebook, timed

from helpers import style as st
from convlens.images import load_photos, load_style
from convlens.model import fast_copy, load_model

SIZE = 256
EVALUATIONS = 200


def one_transfer(net, content, style) -> tuple[float, float, st.LossHistory]:
    """(wall seconds, CPU seconds of this process, history) of one style transfer."""
    (_, history), seconds, cpu = timed(lambda: st.style_transfer(net, content, style, steps=EVALUATIONS))
    return seconds, cpu, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebook", action="store_true", help="only the 256 px transfer")
    parser.add_argument("--skip-plain", action="store_true", help="do not time the plain-model baseline")
    args = parser.parse_args(argv)

    print(machine_line())
    model = load_model("cpu")
    content = load_photos(["chelsea"], size=SIZE)[0]
    style = load_style("mosaic", SIZE)[None]
    fast = fast_copy(model)
    st.style_transfer(fast, content[..., :64, :64], style, steps=5)  # warm-up (allocator, kernels)

    seconds, cpu, history = one_transfer(fast, content, style)
    print(f"style transfer {SIZE} px, {len(history)} L-BFGS evaluations, fast feature net: {seconds:.2f} s "
          f"({1000 * seconds / len(history):.0f} ms per evaluation, {cpu:.1f} CPU-s; target <= 12 s)")
    print(f"  style loss {history.style[0]:.4g} -> {history.style[-1]:.4g}, total {history.total[0]:.4g} -> "
          f"{history.total[-1]:.4g}")
    print(f"peak memory (RSS) after the {SIZE} px run: {peak_rss_mb():.0f} MB (target <= 2000 MB)")
    if not args.skip_plain:
        seconds, cpu, history = one_transfer(model, content, style)
        print(f"style transfer {SIZE} px, {len(history)} L-BFGS evaluations, plain model: {seconds:.2f} s "
              f"({1000 * seconds / len(history):.0f} ms per evaluation, {cpu:.1f} CPU-s)")

    if not args.skip_notebook:
        run = time_notebook("4_style_transfer.ipynb")
        print(f"notebook 4 headless: {run.seconds:.1f} s, {run.figures} figures, {'ok' if run.ok else 'FAILED'} "
              "(target <= 150 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
