"""Blind readability test of class visualizations on classes nobody picked:
``python -m tools.blind_test --seed N [--candidates A,B] [--out out/blind]``.

The protocol, in order: (1) eight classes are drawn with the seed from POOL (everyday ImageNet classes, none of
them used in the notebooks' examples) and eight more as distractors, and the draw is written to draw.json
before any image is made; (2) one image per class with each of two methods: ``pixel`` (the pixel-space ascent
of notebook 3's exercise) or a candidate recipe of convlens.priors.CANDIDATES (default: ``pixel,today``),
made in a child process with portable numerics (PORTABLE_ENV: one thread, PyTorch's plain CPU kernels,
oneDNN off, MKL's reproducible mode), so the seed gives the same images on any x86-64 machine with the same
torch. With each machine's fastest kernels the images differ between machines (AVX512 against AVX2: 0.09 mean
pixel difference on a short run; AVX512 against the plain kernels: 0.16 on a sheet). ``--native`` skips the
child process (faster; the key records which numerics made the images); (3) per method, a shuffled contact sheet of numbered, untitled tiles at the resolution each image was
optimized at (sheet_A.png, sheet_B.png: the letters do not say which method is which), the forced-choice list
of 16 names (the 8 drawn and the 8 distractors, shuffled) and, for the scorer only, the answer key with the
network's probability for each image at the size it was optimized and shown at, and tensors.pt, the images
shown, with the seed, the thread count and the torch version. The viewer gets INSTRUCTIONS.txt and the sheets,
and names.txt only after the free naming. Use a fresh viewer per method, one who has not seen the images.

Scoring: free naming counts a tile when the answer names the class or its obvious kind (the key lists the
answers that count); forced choice counts exact matches among the 16 names.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]

# Everyday classes, fixed before any image was looked at; none is an example in the notebooks (flamingo,
# bell pepper, volcano, stingray, tabby, espresso, ...). Each entry: ImageNet index, the name the viewer sees
# in the forced choice, answers that count in free naming.
POOL = [
    (340, "zebra", ["zebra"]), (301, "ladybug", ["ladybug", "ladybird", "beetle"]),
    (953, "pineapple", ["pineapple"]), (937, "broccoli", ["broccoli"]),
    (309, "bee", ["bee", "bumblebee", "honeybee", "wasp"]), (985, "daisy", ["daisy", "flower", "chamomile"]),
    (949, "strawberry", ["strawberry"]), (1, "goldfish", ["goldfish", "fish"]),
    (145, "king penguin", ["penguin"]), (327, "starfish", ["starfish", "sea star"]),
    (31, "tree frog", ["frog", "tree frog", "toad"]), (954, "banana", ["banana"]), (951, "lemon", ["lemon"]),
    (950, "orange", ["orange"]), (963, "pizza", ["pizza"]), (933, "cheeseburger", ["burger", "hamburger"]),
    (574, "golf ball", ["golf ball", "ball"]), (805, "soccer ball", ["soccer ball", "football", "ball"]),
    (850, "teddy bear", ["teddy", "teddy bear", "bear"]), (879, "umbrella", ["umbrella", "parasol"]),
    (932, "pretzel", ["pretzel"]), (947, "mushroom", ["mushroom", "toadstool"]),
    (94, "hummingbird", ["hummingbird", "bird"]), (107, "jellyfish", ["jellyfish"]), (113, "snail", ["snail"]),
    (9, "ostrich", ["ostrich", "bird"]), (105, "koala", ["koala", "bear"]), (291, "lion", ["lion", "cat"]),
    (84, "peacock", ["peacock", "bird"]), (779, "school bus", ["bus", "school bus"]),
    (555, "fire engine", ["fire engine", "fire truck", "truck"]), (402, "acoustic guitar", ["guitar"]),
    (957, "pomegranate", ["pomegranate", "fruit"]), (938, "cauliflower", ["cauliflower"]),
    (948, "green apple", ["apple"]), (928, "ice cream", ["ice cream"]),
]
DRAWN, DISTRACTORS = 8, 8


def draw_classes(seed: int) -> tuple[list[tuple], list[tuple]]:
    """(the drawn classes, the distractors): disjoint random samples of POOL."""
    picked = random.Random(seed).sample(POOL, DRAWN + DISTRACTORS)
    return picked[:DRAWN], picked[DRAWN:]


SHEET_THREADS = 1  # class images change with the thread count (and with the CPU kernels: PORTABLE_ENV)
PIXEL = "pixel"
# Set before torch starts: PyTorch's plain (non-vectorized) kernels and MKL's conditional numerical
# reproducibility make the arithmetic the same on every x86-64 CPU; oneDNN, which picks its code by CPU, is
# turned off in make_images().
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def portable() -> bool:
    """Whether this process was started with PORTABLE_ENV in effect."""
    return (torch.backends.cpu.get_cpu_capability() == "DEFAULT"
            and os.environ.get("MKL_CBWR") == PORTABLE_ENV["MKL_CBWR"])


def numerics() -> str:
    """The numerical settings images are made with here, in words (recorded in the key and tensors.pt)."""
    if portable():
        return f"portable: {SHEET_THREADS} thread, plain CPU kernels, oneDNN off, MKL_CBWR=COMPATIBLE"
    return f"native: {SHEET_THREADS} thread, {torch.backends.cpu.get_cpu_capability()} kernels"


def make_images(classes, seed: int, methods=(PIXEL, "today")) -> dict:
    """{method: (N, 3, size, size) images, at the size each method optimizes} for the classes, on CPU with
    SHEET_THREADS threads. ``pixel`` is notebook 3's exercise at its clearest (224 px, 150 steps); any other
    method is a recipe of convlens.priors.CANDIDATES, shown at the size it was optimized at."""
    from convlens.priors import CANDIDATES, class_images
    from convlens.model import fast_copy, load_model
    from convlens.visualize import create_class_visualization
    from helpers import fooling

    torch.set_num_threads(SHEET_THREADS)
    if portable():
        torch.backends.mkldnn.enabled = False
    model = fast_copy(load_model("cpu"))
    images = {}
    for method in methods:
        if method == PIXEL:
            images[method] = create_class_visualization(
                model, fooling.class_visualization_step, classes, size=224, steps=150, l2_reg=3e-3,
                blur_every=5, blur_sigma=1.0, seed=seed, progress=False)
        else:
            images[method] = class_images(model, classes, seed=seed, progress=False, **CANDIDATES[method])[0]
    return images


def probabilities(images: torch.Tensor, classes: list[int]) -> list[float]:
    """The network's probability of each image's class, at the image's own size."""
    from convlens.model import load_model

    with torch.no_grad():
        probs = load_model("cpu")(images).softmax(dim=1)
    return [round(probs[i, c].item(), 4) for i, c in enumerate(classes)]


def contact_sheet(images: torch.Tensor, order: list[int], path: Path, cols: int = 4) -> None:
    """Tiles ``images[order[k]]`` at their own size, labelled k + 1 only, on white, 4 per row."""
    from convlens.images import to_pil

    tile = images.shape[-1]
    rows = -(-len(order) // cols)
    gap, label = 12, 28
    sheet = Image.new("RGB", (cols * (tile + gap) + gap, rows * (tile + label + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for k, index in enumerate(order):
        x, y = gap + (k % cols) * (tile + gap), gap + (k // cols) * (tile + label + gap)
        draw.text((x, y + 4), str(k + 1), fill="black", font_size=20)
        sheet.paste(to_pil(images[index]), (x, y + label))
    sheet.save(path)


INSTRUCTIONS = """Blind test: what does each picture show?

There are two sheets, sheet_A.png and sheet_B.png, each with 8 numbered pictures made by a computer.

Part 1 (free naming). Do this for BOTH sheets before Part 2. For each numbered picture, write down what you
think it shows, in a word or two. Guess if unsure; write "?" if you have no idea. Do not look anything up.

Part 2 (forced choice). Only now open names.txt. It lists 16 names: the 8 things the pictures on each sheet
show, each exactly once per sheet, and 8 that no picture shows. Match every number on sheet A to one name,
then do the same for sheet B.

Write your answers as: sheet, number, Part 1 answer, Part 2 answer.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "blind")
    parser.add_argument("--seed", type=int, required=True, help="draws the classes; seeds the images and shuffles")
    parser.add_argument("--candidates", default=f"{PIXEL},today",
                        help="the two methods, comma-separated: 'pixel' or names in convlens.priors.CANDIDATES")
    parser.add_argument("--native", action="store_true",
                        help="make the images in this process with this CPU's fastest kernels (not portable)")
    args = parser.parse_args(argv)
    from convlens.priors import CANDIDATES

    methods = args.candidates.split(",")
    unknown = [m for m in methods if m != PIXEL and m not in CANDIDATES]
    if len(methods) != 2 or len(set(methods)) != 2 or unknown:
        parser.error(f"--candidates takes two different names among {PIXEL}, {', '.join(CANDIDATES)}")
    if not args.native and not portable():  # the same images on any x86-64 machine: start over in a child
        argv = sys.argv[1:] if argv is None else list(argv)
        from kit import kit_env

        return subprocess.call([sys.executable, "-m", "tools.blind_test", *argv], env={**kit_env(), **PORTABLE_ENV})
    args.out.mkdir(parents=True, exist_ok=True)

    drawn, distractors = draw_classes(args.seed)
    (args.out / "draw.json").write_text(json.dumps({  # recorded before any image is made
        "seed": args.seed, "pool": len(POOL), "drawn": [name for _, name, _ in drawn],
        "distractors": [name for _, name, _ in distractors]}, indent=2) + "\n")
    start = time.perf_counter()
    indices = [index for index, _, _ in drawn]
    images = make_images(indices, args.seed, methods)
    rng = random.Random(args.seed)
    methods = list(images)
    rng.shuffle(methods)  # which method is sheet A is itself random
    key = {"seed": args.seed, "protocol": "INSTRUCTIONS.txt", "draw": "draw.json", "tensors": "tensors.pt",
           "threads": SHEET_THREADS, "torch": str(torch.__version__),
           "numerics": numerics(), "sheets": {}}
    for letter, method in zip("AB", methods):
        order = list(range(len(drawn)))
        rng.shuffle(order)
        contact_sheet(images[method], order, args.out / f"sheet_{letter}.png")
        probs = probabilities(images[method], indices)
        key["sheets"][f"sheet_{letter}.png"] = {
            "method": method, "size": images[method].shape[-1],
            "tiles": {str(k + 1): {"class": drawn[i][1], "imagenet_index": drawn[i][0],
                                   "free_naming_counts": drawn[i][2], "p_class_at_size_shown": probs[i]}
                      for k, i in enumerate(order)},
        }
    names = [name for _, name, _ in drawn + distractors]
    rng.shuffle(names)
    (args.out / "answer_key.json").write_text(json.dumps(key, indent=2) + "\n")
    torch.save({"seed": args.seed, "threads": SHEET_THREADS, "torch": str(torch.__version__),
                "numerics": numerics(), "classes": indices,
                "images": {f"sheet_{letter}.png": images[method] for letter, method in zip("AB", methods)},
                "methods": {f"sheet_{letter}.png": method for letter, method in zip("AB", methods)}},
               args.out / "tensors.pt")
    (args.out / "INSTRUCTIONS.txt").write_text(INSTRUCTIONS)
    (args.out / "names.txt").write_text("\n".join(names) + "\n")
    print(f"drew {', '.join(n for _, n, _ in drawn)} (seed {args.seed}); wrote {args.out}/draw.json, sheet_A.png, "
          f"sheet_B.png, INSTRUCTIONS.txt, names.txt (viewer), answer_key.json and tensors.pt (scorer only) in "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
