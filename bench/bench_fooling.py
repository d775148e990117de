"""Speed figures for notebook 3 (fooling images and class visualization), one per line.

    python bench/bench_fooling.py [--skip-notebook]

Prints the headless wall time of notebooks/3_fooling_and_class_images.ipynb (target: 150 s on a quiet
2-core CPU), fooling steps per second (one 224 px photo, and a batch of eight 160 px photos), and class
visualization seconds per class (160 px, 60 steps, three classes in one batch).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from _common import machine_line, time_notebook, timed

from helpers import fooling
from convlens.images import load_photos
from convlens.model import load_model
from convlens.visualize import create_class_visualization

NOTEBOOK = "3_fooling_and_class_images.ipynb"


def steps_per_second(model, images: torch.Tensor, targets: torch.Tensor, repeats: int = 3) -> float:
    """Fooling steps per second for one batch (each image counts as one step)."""
    fooling.fooling_step(model, images, targets, 1.0)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        images = fooling.fooling_step(model, images, targets, 1.0)
    return repeats * len(images) / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebook", action="store_true", help="only the per-function timings")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(machine_line())
    if not args.skip_notebook:
        run = time_notebook(NOTEBOOK)
        print(f"notebook 3 headless: {run.seconds:.1f} s ({'ok' if run.ok else 'FAILED'}, {run.figures} figures; "
              "target 150 s)")

    model = load_model("cpu")
    photo, _, _ = load_photos(["chelsea"], size=224)
    print(f"fooling_step, 1 photo at 224 px: {steps_per_second(model, photo, torch.tensor([6])):.2f} steps/s")
    photos, _, _ = load_photos(size=160)
    targets = torch.randint(0, 1000, (len(photos),), generator=torch.Generator().manual_seed(0))
    print(f"fooling_step, batch of {len(photos)} at 160 px: "
          f"{steps_per_second(model, photos, targets, repeats=2):.2f} image-steps/s")

    (_, steps), seconds, _ = timed(lambda: fooling.make_fooling_image(model, photo, torch.tensor([6]), step_size=1.0))
    print(f"make_fooling_image, chelsea -> stingray at 224 px: {seconds:.1f} s ({steps.item()} steps + 2 extra)")

    classes = [130, 945, 980]
    _, seconds, _ = timed(lambda: create_class_visualization(model, fooling.class_visualization_step, classes, size=160,
                                                             steps=60, progress=False))
    print(f"class visualization, 160 px, 60 steps: {seconds / len(classes):.1f} s per class")
    return 0


if __name__ == "__main__":
    sys.exit(main())
