"""Small plotting helpers shared by the notebooks (matplotlib only; every function returns its Figure)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from convlens.images import to_numpy_image


def _as_map(value) -> np.ndarray:
    """(H, W) tensor or array -> float numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def image_grid(images, titles=None, ncols: int | None = None, size: float = 2.6, suptitle: str | None = None):
    """Show images side by side.

    Args:
        images: (N, 3, H, W) tensor in [0, 1], or a list of (3, H, W) tensors / (H, W) maps.
        titles: N strings or None.
        ncols: columns (default: all in one row, at most 8).
    """
    images = list(images)
    n = len(images)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        if isinstance(image, torch.Tensor) and image.dim() == 3 and image.shape[0] == 3:
            ax.imshow(to_numpy_image(image))
        else:
            ax.imshow(_as_map(image), cmap="hot")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def overlay(ax, image: torch.Tensor, heatmap, alpha: float = 0.5, cmap: str = "jet") -> None:
    """Draw ``heatmap`` (H, W), scaled to [0, 1] by its own min and max, over ``image`` (3, H, W)."""
    ax.imshow(to_numpy_image(image))
    h = _as_map(heatmap)
    span = h.max() - h.min()
    ax.imshow((h - h.min()) / span if span > 0 else h * 0, cmap=cmap, alpha=alpha)
    ax.axis("off")


def filter_grid(weights: torch.Tensor, ncols: int = 8, size: float = 0.9):
    """Show first-layer conv filters (C_out, 3, k, k) as small RGB tiles, each scaled to [0, 1] on its own."""
    w = weights.detach().float().cpu()
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    tiles = (w - lo) / (hi - lo).clamp_min(1e-12)
    n = tiles.shape[0]
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        axes.flat[i].imshow(tiles[i].permute(1, 2, 0).numpy(), interpolation="nearest")
    fig.tight_layout()
    return fig
