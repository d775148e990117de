"""The attribution explorer's update times: ``python bench/bench_explorer.py [--threads N] [--repeats 5]``.

Prints the machine line (cores, torch threads, load average), then per change, at 224 px, the wall and CPU
seconds of one update with nothing cached (best and median of ``--repeats``): a new photo (load, forward
pass, top 5, map, deletion curve), a new class, and each method. "map" is when the picture is sent; the
deletion curve follows; for Integrated Gradients and SmoothGrad "picture" is their first look (a few passes)
and "full map" the final one. Target: <= 0.5 s per update for the gradient methods on a quiet 2-core CPU with
the notebooks' thread rule (convlens.runtime.choose_threads): the whole update for a single-pass method, the
first picture for a multi-pass one. On a busy machine wall time is pessimistic; CPU time of this process is
the better guide there (a quiet core runs about that fast).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import machine_line

TARGET_S = 0.5
SINGLE_PASS = ("Saliency (your saliency_map)", "Grad-CAM (your grad_cam)", "Saliency (Captum)",
               "Input × Gradient (Captum)", "Guided Backprop (Captum)", "Grad-CAM (Captum LayerGradCam)")


def measure(ex, prepare, act, repeats: int) -> tuple[list[float], ...]:
    """(wall, CPU, wall until the first picture, wall until the final picture) seconds of ``act()`` after
    ``prepare()`` emptied the caches."""
    walls, cpus, maps, finals = [], [], [], []
    for _ in range(repeats):
        prepare()
        start, cpu = time.perf_counter(), time.process_time()
        act()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        maps.append(walls[-1] - (ex.timing["total"] - ex.timing["map"]))
        finals.append(walls[-1] - (ex.timing["total"] - ex.timing["final map"]))
    return walls, cpus, maps, finals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="torch threads (default: the notebooks' rule)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from convlens.explorer import explorer
    from convlens.model import load_model
    from convlens.runtime import choose_threads
    from helpers import gradcam, saliency

    torch.set_num_threads(args.threads or choose_threads())
    print(machine_line())
    model = load_model("cpu")
    start = time.perf_counter()
    ex = explorer(model, saliency=saliency.saliency_map, grad_cam=gradcam.grad_cam)
    print(f"first display (fast copy, photo, top 5, first map and curve): {time.perf_counter() - start:.2f} s")

    def forget_results():
        ex.results.clear()

    def forget_photo(key):
        def prepare():
            ex.results.clear()
            ex.images.pop(key, None)
            ex.probs.pop(key, None)
            ex.select(photo="chelsea")
        return prepare

    rows = [("new photo (coffee)", forget_photo("coffee"), lambda: ex.select(photo="coffee")),
            ("new class (2nd of the top 5)", lambda: (ex.select(photo="chelsea", method=SINGLE_PASS[0],
                                                                klass=ex.klass.options[0][1]), forget_results()),
             lambda: ex.select(klass=ex.klass.options[1][1])),
            ("Grad-CAM at block10", lambda: (ex.select(method="Grad-CAM (your grad_cam)", layer="head"),
                                             forget_results()), lambda: ex.select(layer="block10"))]
    rows += [(f"method: {name}", lambda: (ex.select(method=SINGLE_PASS[0]), forget_results()),
              lambda name=name: ex.select(method=name)) for name in ex.method.options]
    rows.append(("chosen again (cached)", lambda: ex.select(method=SINGLE_PASS[1]),
                 lambda: ex.select(method=SINGLE_PASS[0])))
    print(f"{'change':<46}{'wall best':>10}{'median':>8}{'CPU best':>10}{'median':>8}{'picture':>9}"
          f"{'full map':>9}  target")
    for label, prepare, act in rows:
        walls, cpus, maps, finals = measure(ex, prepare, act, args.repeats)
        single = label.startswith("new") or any(name in label for name in SINGLE_PASS) or "block10" in label
        # single-pass: the whole update (CPU); multi-pass: until the first picture (wall, as CPU is not split)
        timed = statistics.median(cpus) if single else statistics.median(maps)
        verdict = ("ok" if timed <= TARGET_S else "OVER") if "cached" not in label else "-"
        print(f"{label:<46}{min(walls):>10.3f}{statistics.median(walls):>8.3f}{min(cpus):>10.3f}"
              f"{statistics.median(cpus):>8.3f}{min(maps):>9.3f}{min(finals):>9.3f}  {verdict}")
    load1, load5, _ = os.getloadavg()
    print(f"load average at the end: {load1:.1f} (1 min), {load5:.1f} (5 min); target {TARGET_S} s applies to "
          "the single-pass methods and new photo/class (CPU seconds here, wall on a quiet machine), and to the first "
          "picture of the multi-pass ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
