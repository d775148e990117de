"""Notebook 2 figures: ``python bench/bench_gradcam.py [--skip-notebook] [--threads N] [--repeats 3]``.

Prints, one per line:
- the machine: cores, torch threads and load average (timings on a busy machine are pessimistic);
- headless execution of notebooks/2_gradcam.ipynb (tools/run_notebooks.execute): wall seconds, target <= 60 s
  on a quiet 2-core CPU, and the CPU seconds its kernel used. On a busy machine both are pessimistic (idle
  OpenMP threads spin and count as CPU time); with ``--threads 1`` the kernel computes on one thread, and its
  CPU time is then close to what one quiet core needs, an upper bound for a quiet 2-core machine;
- per-function times on three photos at 224 px (best of ``--repeats``): the hand-written functions next to
  their Captum counterparts, and the three checks.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import warnings

from _common import best_of, machine_line, time_notebook

NOTEBOOK_TARGET_S = 60.0


def time_functions(repeats: int) -> list[tuple[str, float]]:
    import torch
    from captum.attr import GuidedBackprop, GuidedGradCam, LayerAttribution, LayerGradCam

    from checks import gradcam as checks
    from helpers import gradcam
    from convlens.images import load_photos
    from convlens.model import get_layer, load_model

    warnings.filterwarnings("ignore", message=".*(backward hooks|require gradients).*")
    model = load_model("cpu")
    images, labels, _ = load_photos(["chelsea", "coffee", "rocket"])
    head = get_layer(model, "head")

    def captum_grad_cam():
        small = LayerGradCam(model, head).attribute(images, target=labels, relu_attributions=True)
        return LayerAttribution.interpolate(small, tuple(images.shape[-2:]), "bilinear")

    with torch.no_grad():
        model(images)  # warm-up
    rows = [
        ("guided_backprop (yours)", lambda: gradcam.guided_backprop(model, images, labels)),
        ("GuidedBackprop (Captum)", lambda: GuidedBackprop(model).attribute(images.clone(), target=labels)),
        ("grad_cam (yours)", lambda: gradcam.grad_cam(model, images, labels)),
        ("LayerGradCam + interpolate (Captum)", captum_grad_cam),
        ("guided_grad_cam (yours)", lambda: gradcam.guided_grad_cam(model, images, labels)),
        ("GuidedGradCam bilinear (Captum)",
         lambda: GuidedGradCam(model, head).attribute(images, target=labels, interpolate_mode="bilinear")),
    ]
    results = [(f"{name}, 3 photos at 224 px", best_of(fn, repeats)[0]) for name, fn in rows]
    with open(os.devnull, "w") as devnull:
        for name, check in checks.CHECKS.items():
            with contextlib.redirect_stdout(devnull):  # the check prints its verdict line
                seconds = best_of(lambda: check(model=model), 1)[0]
            results.append((f"check_{name}", seconds))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebook", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="computing threads for the notebook's kernel and the timings (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        # Read by the notebook's kernel when it starts (it inherits this environment) and by torch below.
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    print(machine_line(), flush=True)
    if not args.skip_notebook:
        run = time_notebook("2_gradcam.ipynb")
        verdict = "within" if run.seconds <= NOTEBOOK_TARGET_S else "OVER"
        print(f"notebook 2_gradcam headless: {run.seconds:.1f} s wall ({verdict} the {NOTEBOOK_TARGET_S:.0f} s "
              f"target){'' if run.ok else ', FAILED'}", flush=True)
        threads = f"{args.threads} thread(s)" if args.threads else "default threads"
        print(f"notebook 2_gradcam kernel CPU time ({threads}): {run.kernel_cpu_seconds:.1f} s", flush=True)
    for name, seconds in time_functions(args.repeats):
        print(f"{name}: {seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main()
