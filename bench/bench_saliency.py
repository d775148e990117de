"""Speed figures for notebook 1 (the kit's fast attribution, convlens/attribution.py). Prints one figure per line:

* the notebook's headless wall time with the solutions (target: at most 90 s on a quiet 2-core CPU);
* Captum ``Occlusion`` with default arguments (16 px window, stride 8, one 224 px image, one perturbation
  per forward pass) against ``occlusion_attribution``: seconds, speed-up (target: >= 3x), max |difference|;
* Integrated Gradients with 50 steps: seconds per 224 px image (target: at most 2 s);
* the classifier's forward + backward in ms per image at batch 16: plain, channels_last, and the kit's
  ``fast_copy`` (channels_last + BatchNorm folded).

Run from the kit's root: ``python bench/bench_saliency.py [--skip-notebook]``. The figures depend on what
else the machine is doing; the load average is printed first, and CPU time (``time.process_time``) is
printed beside wall time, since on a shared machine the wall time mostly measures the other processes (with
more than one thread, CPU time adds up the threads).
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch
from _common import best_of, machine_line, time_notebook, timed

from convlens.attribution import fast_integrated_gradients, occlusion_attribution
from convlens.images import load_photos
from convlens.model import fast_copy, load_model


def forward_backward_ms(model, images) -> str:
    def step():
        x = images.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
        model(x).max(dim=1).values.sum().backward()
    wall, cpu = best_of(step, repeats=2, warmup=True)
    return f"{wall / len(images) * 1000:.0f} ms/image wall, {cpu / len(images) * 1000:.0f} ms/image CPU"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-notebook", action="store_true", help="do not time the notebook")
    args = parser.parse_args(argv)
    print(machine_line())

    if not args.skip_notebook:
        run = time_notebook("1_network_visualization.ipynb")
        print(f"notebook 1 headless: {run.seconds:.1f} s ({'ok' if run.ok else 'FAILED'}; target <= 90 s)")

    from captum.attr import Occlusion

    model = load_model("cpu")
    image, label, _ = load_photos(["chelsea"], size=224)
    plain, plain_s, plain_cpu = timed(lambda: Occlusion(model).attribute(image, sliding_window_shapes=(3, 16, 16),
                                                                         strides=8, target=label))
    # occlusion_attribution's time includes making the model's fast copy.
    fast, fast_s, fast_cpu = timed(lambda: occlusion_attribution(model, image, label, window=16, stride=8))
    # CPU time is also printed: on a shared machine the wall time mostly measures the other processes.
    print(f"occlusion, Captum defaults (729 windows, 224 px): {plain_s:.2f} s wall, {plain_cpu:.2f} s CPU")
    print(f"occlusion, occlusion_attribution: {fast_s:.2f} s wall, {fast_cpu:.2f} s CPU")
    print(f"occlusion speed-up: {plain_s / fast_s:.1f}x wall, {plain_cpu / fast_cpu:.1f}x CPU (target >= 3x)")
    print(f"occlusion max |difference|: {(fast - plain).abs().max().item():.2e} "
          f"(attribution scale {plain.abs().max().item():.2f})")

    fast_model = fast_copy(model)
    ig_s, ig_cpu = best_of(lambda: fast_integrated_gradients(fast_model, image, label, steps=50), 1, warmup=True)
    print(f"integrated gradients, 50 steps: {ig_s:.2f} s wall, {ig_cpu:.2f} s CPU per 224 px image (target <= 2 s)")

    batch, _, _ = load_photos(None, size=224)
    batch = torch.cat([batch, batch.flip(-1)])  # 16 images
    channels_last_only = copy.deepcopy(model).to(memory_format=torch.channels_last)
    as_nhwc = batch.contiguous(memory_format=torch.channels_last)
    print(f"forward+backward, batch 16, plain: {forward_backward_ms(model, batch)}")
    print(f"forward+backward, batch 16, channels_last: {forward_backward_ms(channels_last_only, as_nhwc)}")
    print(f"forward+backward, batch 16, fast_copy (BN folded): {forward_backward_ms(fast_model, as_nhwc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
