"""Draw the kit's procedural style images into datasets/styles/: ``python tools/make_styles.py``.

Each image is 512 x 512 RGB, made from numpy, scipy and PIL with a fixed seed, so running the script again
writes the same pixels. They are colourful and strongly textured on purpose: a style transfer result should
show at a glance which style it took. Made by the kit; licence CC0.

    mosaic         Voronoi tiles in warm and cool glazes, separated by dark grout lines
    swirls         domain-warped sine bands (a turbulent flow) through a blue / yellow palette
    brush_strokes  a few thousand short coloured strokes that follow a smooth direction field
    stripes        op-art zigzag bands in three saturated colours
    stained_glass  bright Voronoi panes with a radial glow each, framed by thick black leading
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage
from scipy.spatial import cKDTree

SIZE = 512
STYLES_DIR = Path(__file__).resolve().parents[1] / "datasets" / "styles"


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), each (size, size), in pixels."""
    return np.mgrid[0:size, 0:size].astype(np.float64) + 0.5


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise, rescaled to zero mean and unit std: a smooth random field."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (field - field.mean()) / field.std()


def _voronoi(rng: np.random.Generator, size: int, n_cells: int):
    """Nearest-seed cell index and the gap between the two nearest seed distances (small on cell borders)."""
    seeds = rng.uniform(0, size, (n_cells, 2))
    y, x = _grid(size)
    dist, index = cKDTree(seeds).query(np.stack([y.ravel(), x.ravel()], 1), k=2)
    gap = (dist[:, 1] - dist[:, 0]).reshape(size, size)
    return index[:, 0].reshape(size, size), gap, seeds


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def mosaic(size: int = SIZE, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cell, gap, _ = _voronoi(rng, size, 420)
    palette = np.array([[0.80, 0.25, 0.15], [0.95, 0.70, 0.20], [0.15, 0.45, 0.70],
                        [0.10, 0.60, 0.55], [0.90, 0.88, 0.80], [0.55, 0.20, 0.45]])
    colours = palette[rng.integers(0, len(palette), cell.max() + 1)]
    colours = colours * rng.uniform(0.8, 1.1, (len(colours), 1))  # each tile glazed a little differently
    rgb = colours[cell] * (1 + 0.06 * _smooth_noise(rng, size, 2.0))[..., None]
    grout = np.clip((gap - 2.0) / 1.5, 0, 1)[..., None]  # 0 on the border line, 1 inside a tile
    return _to_uint8(rgb * grout + np.array([0.12, 0.10, 0.09]) * (1 - grout))


def swirls(size: int = SIZE, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    # Domain warping: bend the coordinates twice with smooth noise, then draw sine bands through them.
    warp_y = 40 * _smooth_noise(rng, size, 40) + 12 * _smooth_noise(rng, size, 12)
    warp_x = 40 * _smooth_noise(rng, size, 40) + 12 * _smooth_noise(rng, size, 12)
    phase = (x + warp_x) * 0.09 + 0.5 * np.sin((y + warp_y) * 0.05)
    bands = 0.5 + 0.5 * np.sin(phase)
    hue = 0.5 + 0.5 * np.sin((y + warp_x) * 0.02)
    stops = np.array([[0.05, 0.10, 0.35], [0.15, 0.35, 0.75], [0.55, 0.75, 0.95], [0.98, 0.85, 0.25]])
    position = np.clip(0.7 * bands + 0.3 * hue, 0, 1) * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    t = (position - low)[..., None]
    return _to_uint8(stops[low] * (1 - t) + stops[low + 1] * t)


def brush_strokes(size: int = SIZE, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle = np.pi * _smooth_noise(rng, size, 60)  # a smooth field of stroke directions
    palette = np.array([[0.85, 0.35, 0.10], [0.95, 0.75, 0.15], [0.20, 0.30, 0.60], [0.60, 0.10, 0.15],
                        [0.25, 0.55, 0.30], [0.95, 0.92, 0.85]]) * 255
    canvas = Image.new("RGB", (size, size), (60, 40, 30))
    draw = ImageDraw.Draw(canvas)
    for _ in range(4000):
        cy, cx = rng.uniform(0, size, 2)
        theta = angle[int(cy), int(cx)]
        length, width = rng.uniform(12, 30), int(rng.integers(3, 7))
        dy, dx = np.sin(theta) * length / 2, np.cos(theta) * length / 2
        colour = palette[rng.integers(0, len(palette))] * rng.uniform(0.8, 1.1)
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=tuple(int(c) for c in colour.clip(0, 255)),
                  width=width)
    return np.asarray(canvas.filter(ImageFilter.SMOOTH))


def stripes(size: int = SIZE, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = _grid(size)
    zigzag = np.abs(((x / 48) % 2) - 1) * 30  # a triangle wave across x
    band = ((y + zigzag + 6 * _smooth_noise(rng, size, 8)) / 16).astype(int) % 3
    palette = np.array([[0.10, 0.10, 0.12], [0.95, 0.30, 0.20], [0.98, 0.90, 0.70]])
    return _to_uint8(palette[band])


def stained_glass(size: int = SIZE, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cell, gap, seeds = _voronoi(rng, size, 90)
    palette = np.array([[0.85, 0.10, 0.15], [0.10, 0.25, 0.80], [0.95, 0.75, 0.10], [0.10, 0.60, 0.30],
                        [0.55, 0.15, 0.65], [0.10, 0.65, 0.80]])
    colours = palette[rng.integers(0, len(palette), len(seeds))]
    y, x = _grid(size)
    centre = seeds[cell]
    glow = np.exp(-((y - centre[..., 0]) ** 2 + (x - centre[..., 1]) ** 2) / (2 * 28.0 ** 2))
    rgb = colours[cell] * (0.55 + 0.6 * glow)[..., None]
    lead = np.clip((gap - 5.0) / 2.0, 0, 1)[..., None]  # thick black lines where two panes meet
    return _to_uint8(rgb * lead)


STYLES = {"mosaic": mosaic, "swirls": swirls, "brush_strokes": brush_strokes, "stripes": stripes,
          "stained_glass": stained_glass}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=STYLES_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in STYLES.items():
        path = args.out / f"{name}.png"
        Image.fromarray(draw()).save(path, optimize=True)
        print(f"{path.name}: {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
