"""Readability of generated images, measured without people (issue 14): ``python bench/bench_feature_vis.py``.

Prints one figure per line, with wall and CPU seconds, after the machine's load average:
  * class visualizations of notebook 3's classes (flamingo, bell pepper, volcano) by the pixel-space exercise
    and by the better priors (convlens.priors): p(target) on the image, and robustness: p(target)
    averaged over 32 random transforms (zoom 0.8-1.2, rotation +-15 degrees, shift +-16 px);
  * their colour: mean saturation and RMS contrast, beside those of the eight shipped photos;
  * texture synthesis from noise (notebook 4's three styles, 128 px, 120 L-BFGS evaluations): the
    colour-histogram distance to the style image, before (block outputs only) and with the stem layer added,
    each then histogram matched (12 or 100 iterations, blurred first or not), beside the distance between the
    two halves of the style image.

  * candidate recipes for class images (convlens.priors.CANDIDATES) on 16 classes drawn with DRAW_SEED from
    tools/blind_test.py's pool, two seeds each: one row per candidate with the screen's mean share (the share
    of 16 random views at 260 px in which EfficientNet-Lite2, a network the images were not made for, puts
    the class in its top 5), its spread between the seeds, Lite0's probability at the size shown, the time,
    and saturation and RMS contrast beside the photos'.

``--pixel-224`` adds the pixel-space images at notebook 3's former settings (224 px, 150 steps; slow).
``--only candidates --candidates today,logprob`` runs some rows only.
"""
from __future__ import annotations

import argparse
import random
import sys

import torch
import torch.nn.functional as F
from _common import machine_line, timed

from helpers import fooling
from helpers import style as st
from convlens import priors
from convlens.colour import crop_distance, histogram_distance, match_histograms, rms_contrast, saturation
from convlens.images import load_photos, load_style
from convlens.model import fast_copy, imagenet_classes, load_model
from convlens.runtime import choose_threads
from convlens.style import DEFAULT_SETTINGS, compute_style_targets, with_stem
from convlens.visualize import create_class_visualization

CLASSES = [130, 945, 980]  # notebook 3: flamingo, bell pepper, volcano
DRAW_SEED = 20261206  # draws the candidate table's 16 classes from tools/blind_test.POOL; recorded before any run
DRAWN_CLASSES = 16
CANDIDATE_SEEDS = (0, 1)
STYLES = ["mosaic", "swirls", "stained_glass"]  # notebook 4's texture synthesis


def _row(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def class_figures(model, photos) -> None:
    names = ", ".join(imagenet_classes()[c] for c in CLASSES)
    print(f"shipped photos: saturation {saturation(photos).mean():.2f}, RMS contrast {rms_contrast(photos).mean():.2f}")
    runs = {
        "pixel space, 128 px, 100 steps": lambda: create_class_visualization(
            model, fooling.class_visualization_step, CLASSES, size=128, steps=100, l2_reg=3e-3, blur_every=5,
            blur_sigma=1.0, progress=False),
        "better priors, 128 px, 96 steps": lambda: priors.class_images(model, CLASSES, size=128, steps=96,
                                                                   transparent=True, progress=False)[0],
    }
    if ARGS.pixel_224:
        runs["pixel space, 224 px, 150 steps"] = lambda: create_class_visualization(
            model, fooling.class_visualization_step, CLASSES, size=224, steps=150, l2_reg=3e-3, blur_every=5,
            blur_sigma=1.0, progress=False)
    print(f"class visualization ({names}); per image:")
    for name, run in runs.items():
        images, seconds, cpu = timed(run)
        with torch.no_grad():
            p = model(images).softmax(dim=1)[torch.arange(len(CLASSES)), CLASSES]
        robust = priors.robustness(model, images, CLASSES, transforms=32)
        print(f"  {name}: {seconds:.1f} s ({cpu:.1f} CPU-s); p(target) {_row(p)}; robustness {_row(robust)} "
              f"(mean {robust.mean():.2f}); saturation {_row(saturation(images))}; "
              f"RMS contrast {_row(rms_contrast(images))}")


def candidate_table(model, photos, names=None) -> None:
    from tools.blind_test import POOL

    drawn = random.Random(DRAW_SEED).sample(POOL, DRAWN_CLASSES)
    classes = [index for index, _, _ in drawn]
    judge = fast_copy(load_model("cpu", arch="efficientnet_lite2"))
    print(f"candidates on {len(classes)} classes drawn with seed {DRAW_SEED} from tools/blind_test.POOL "
          f"({', '.join(name for _, name, _ in drawn)}); seeds {', '.join(map(str, CANDIDATE_SEEDS))}")
    print(f"  screen: share of 16 views (zoom 0.8-1.2, +-15 deg, +-16 px, 260 px) with the class in Lite2's top 5; "
          f"the photos: saturation {saturation(photos).mean():.2f}, RMS contrast {rms_contrast(photos).mean():.2f}")
    print(f"  {'candidate':<14}{'screen':>8}{'seed 0':>8}{'seed 1':>8}{'spread':>8}{'p Lite0':>9}{'s/class':>9}"
          f"{'sat.':>7}{'contr.':>8}  settings")
    for name in names or priors.CANDIDATES:
        options = priors.CANDIDATES[name]
        shares, probs, seconds, sats, contrasts = [], [], 0.0, [], []
        for seed in CANDIDATE_SEEDS:
            images, wall, _ = timed(lambda: priors.class_images(model, classes, seed=seed, progress=False,
                                                                 **options)[0])
            seconds += wall
            shares.append(priors.screen(images, classes, judge).mean().item())
            with torch.no_grad():
                probs.append(model(images).softmax(dim=1)[torch.arange(len(classes)), classes].mean().item())
            sats.append(saturation(images).mean().item())
            contrasts.append(rms_contrast(images).mean().item())
        mean = sum(shares) / len(shares)
        per_class = seconds / len(CANDIDATE_SEEDS) / len(classes)
        settings = ", ".join(f"{k}={v}" for k, v in options.items())
        print(f"  {name:<14}{mean:8.2f}{shares[0]:8.2f}{shares[1]:8.2f}{abs(shares[0] - shares[1]):8.2f}"
              f"{sum(probs) / len(probs):9.2f}{per_class:9.2f}{sum(sats) / len(sats):7.2f}"
              f"{sum(contrasts) / len(contrasts):8.2f}  {settings}", flush=True)


def texture_figures(model) -> None:
    small = [F.interpolate(load_style(n, 256)[None], size=128, mode="bilinear", antialias=True) for n in STYLES]
    print(f"texture synthesis ({', '.join(STYLES)}): Hellinger distance of 8x8x8 colour histograms to the style")
    print(f"  reference, left vs right half of the style image: {_row(crop_distance(s) for s in small)}")
    before = DEFAULT_SETTINGS.scaled(content=0.0)
    for name, settings in (("before: blocks 1, 3, 5, 8", before), ("+ stem layer", with_stem(before))):
        def run():
            targets = [torch.cat(layer) for layer in zip(*[compute_style_targets(model, s, settings, st.gram_matrix)
                                                           for s in small])]
            out, _ = st.style_transfer(model, torch.zeros(len(small), 3, 128, 128), targets, settings, steps=120,
                                       init="noise")
            return out

        textures, seconds, cpu = timed(run)
        styles = torch.cat(small)
        for label, matched in ((name, textures),
                               ("    histogram matched, 12 iterations", match_histograms(textures, styles, 12)),
                               ("    histogram matched, 100 iterations", match_histograms(textures, styles)),
                               ("    blurred 0.7 px, histogram matched", match_histograms(textures, styles, blur=0.7))):
            distance = histogram_distance(matched, styles).tolist()
            print(f"  {label}: {_row(distance)}; saturation {_row(saturation(matched))} vs style "
                  f"{_row(saturation(styles))}" + (f" ({seconds:.1f} s, {cpu:.1f} CPU-s)" if label == name else ""))


def main(argv=None) -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixel-224", action="store_true", help="also the former 224 px pixel-space images")
    parser.add_argument("--only", choices=["classes", "textures", "candidates"], help="one part only")
    parser.add_argument("--candidates", help="comma-separated rows of the candidate table (default: all)")
    ARGS = parser.parse_args(argv)
    torch.set_num_threads(choose_threads())  # the notebooks' thread rule, so CPU-s compare with theirs
    print(machine_line())
    model = fast_copy(load_model("cpu"))
    if ARGS.only in (None, "classes"):
        class_figures(model, load_photos(size=224)[0])
    if ARGS.only in (None, "textures"):
        texture_figures(model)
    if ARGS.only in (None, "candidates"):
        candidate_table(model, load_photos(size=224)[0], ARGS.candidates and ARGS.candidates.split(","))
    print(machine_line())
    return 0


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
