"""Deletion and insertion curves (Petsiuk et al. 2018): how fast the class's probability falls as the
pixels a map ranks highest are deleted, or rises as they are put back into a blurred copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convlens.images import gaussian_blur
from convlens.model import fast_copy


def causal_curves(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor,
                  mode: str = "deletion", steps: int = 16, blur_sigma: float = 8.0,
                  batch_size: int = 64) -> torch.Tensor:
    """Probability of the class as the most important pixels (by ``maps``) are deleted or inserted.

    Deletion starts from the image and sets the top-ranked pixels to 0 (black), a fraction k / steps at
    step k; a good map makes the probability fall fast. Insertion starts from a blurred copy (Gaussian,
    ``blur_sigma`` pixels) and puts the top-ranked original pixels back; a good map makes it rise fast.
    Ties in ``maps`` are broken by pixel order (row-major).

    Args:
        model: classifier (copied to channels_last unless it already is a :func:`convlens.model.fast_copy`).
        images: (N, 3, H, W) in [0, 1]; labels: (N,) classes.
        maps: (N, H, W) importance, larger = more important (any range; only the ranking matters).
        mode: ``"deletion"`` or ``"insertion"``.
        steps: number of steps; the curve has steps + 1 points at fractions 0, 1/steps, ..., 1.
    Returns:
        (N, steps + 1) float probabilities in [0, 1].
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    n, _, height, width = images.shape
    if maps.shape != (n, height, width):
        raise ValueError(f"maps must be (N, H, W) = {(n, height, width)}, got {tuple(maps.shape)}")
    fast = fast_copy(model)
    labels = labels.to(images.device)
    pixels = height * width
    order = maps.detach().reshape(n, -1).to(images.device).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=images.device).expand(n, -1))
    counts = torch.tensor([round(k * pixels / steps) for k in range(steps + 1)], device=images.device)
    if mode == "deletion":
        start, end = images, torch.zeros_like(images)
    else:
        start, end = gaussian_blur(images, blur_sigma), images
    curves = []
    with torch.inference_mode():
        for i in range(n):
            # revealed[k, p]: pixel p has been switched from start to end by step k.
            revealed = (rank[i].view(1, -1) < counts.view(-1, 1)).view(steps + 1, 1, height, width)
            probs = []
            for first in range(0, steps + 1, batch_size):
                mask = revealed[first:first + batch_size]
                batch = torch.where(mask, end[i:i + 1], start[i:i + 1]).contiguous(memory_format=torch.channels_last)
                probs.append(F.softmax(fast(batch), dim=1)[:, labels[i]])
            curves.append(torch.cat(probs))
    return torch.stack(curves)


def causal_scores(curves: torch.Tensor) -> torch.Tensor:
    """Area under (N, steps + 1) curves over the fraction axis [0, 1] (trapezoid rule) -> (N,) in [0, 1]."""
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[-1] - 1), dim=-1)
