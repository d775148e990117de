"""Turning attributions into maps and measuring them: channel reduction, superpixel masks, the mass of a
map in a band of columns. Images are float RGB in [0, 1], shape (N, 3, H, W).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def attribution_map(attributions: torch.Tensor, reduce: str = "abs_max") -> torch.Tensor:
    """(N, 3, H, W) attributions -> (N, H, W) map for ranking and plotting.

    ``reduce``: ``"abs_max"`` (max over channels of |a|, as for saliency), ``"abs_sum"`` (sum of |a|) or
    ``"sum"`` (signed sum over channels, e.g. for Integrated Gradients' completeness).
    """
    a = attributions.detach()
    if reduce == "abs_max":
        return a.abs().amax(dim=1)
    if reduce == "abs_sum":
        return a.abs().sum(dim=1)
    if reduce == "sum":
        return a.sum(dim=1)
    raise ValueError(f"reduce must be 'abs_max', 'abs_sum' or 'sum', got {reduce!r}")




def superpixels(image: torch.Tensor, segments: int = 48, compactness: float = 0.5, work_size: int = 56,
                seed: int = 0) -> torch.Tensor:
    """Cut an image into roughly ``segments`` compact regions of similar colour (a SLIC-like k-means).

    k-means (scikit-learn) clusters the pixels of a ``work_size`` thumbnail on (row, column, colour);
    ``compactness`` weighs position against colour. The labels are scaled back up (nearest neighbour).

    Args:
        image: (3, H, W) in [0, 1].
    Returns:
        (H, W) int64 labels 0..K-1 on the image's device (K <= ``segments``), usable as a Captum
        ``feature_mask`` after ``[None, None]``.
    """
    from sklearn.cluster import KMeans

    height, width = image.shape[-2:]
    small = F.interpolate(image[None].float(), size=(work_size, work_size), mode="area")[0]
    rows, cols = torch.meshgrid(torch.linspace(0, 1, work_size), torch.linspace(0, 1, work_size), indexing="ij")
    features = torch.cat([compactness * torch.stack([rows, cols]), small.cpu()]).reshape(5, -1).T.numpy()
    labels = KMeans(n_clusters=segments, n_init=1, random_state=seed).fit_predict(features)
    _, labels = np.unique(labels, return_inverse=True)  # relabel to 0..K-1 without gaps
    grid = torch.as_tensor(labels.reshape(1, 1, work_size, work_size), dtype=torch.float32)
    full = F.interpolate(grid, size=(height, width), mode="nearest")[0, 0]
    return full.to(device=image.device, dtype=torch.int64)




def mass_in_columns(maps: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Fraction of each non-negative map's total that lies in columns [start, stop). maps: (N, H, W) -> (N,)."""
    total = maps.sum(dim=(1, 2)).clamp_min(torch.finfo(maps.dtype).tiny)
    return maps[:, :, start:stop].sum(dim=(1, 2)) / total
