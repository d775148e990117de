"""Integrated gradients computed fast: Captum's ``IntegratedGradients`` result, batched on a fast copy.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convlens.model import as_targets, fast_copy


def gauss_legendre(steps: int) -> tuple[list[float], list[float]]:
    """(weights, points) of the Gauss-Legendre rule with ``steps`` nodes on [0, 1]: the path points and
    weights of Captum's default ``method="gausslegendre"`` (the nodes of [-1, 1] moved to [0, 1], the weights
    halved)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return list(0.5 * weights), list(0.5 * (nodes + 1))


def fast_integrated_gradients(model: nn.Module, images: torch.Tensor, target, steps: int = 50, baseline: float = 0.0,
                         batch_size: int = 10) -> torch.Tensor:
    """Captum's ``IntegratedGradients`` (same path points and weights), batched on a fast copy of the model.

    attribution = (x - x0) * sum_k w_k * d s_y / dx at x0 + a_k (x - x0), with Captum's Gauss-Legendre
    points a_k and weights w_k. Evaluates ``batch_size`` path points per forward/backward pass on a
    :func:`convlens.model.fast_copy`, keeping every tensor channels_last. The result equals Captum's
    ``IntegratedGradients(model).attribute(images, baselines=baseline, target=target, n_steps=steps)`` up to
    float round-off.

    Args:
        model: classifier (a :func:`convlens.model.fast_copy` is used as is; any other model is copied).
        images: (N, 3, H, W) in [0, 1].
        target: int or (N,) class indices (attributions of the logit).
        steps: number of path points.
        baseline: constant baseline image value (0: black).
        batch_size: path points per forward/backward pass.
    Returns:
        (N, 3, H, W) attributions; their sum is close to score(image) - score(baseline).
    """
    weights, points = gauss_legendre(steps)
    fast = fast_copy(model)
    targets = as_targets(target, images.shape[0], images.device)
    result = []
    for image, label in zip(images.detach().contiguous(memory_format=torch.channels_last), targets):
        start = torch.full_like(image, baseline)
        total = torch.zeros_like(image)
        for first in range(0, steps, batch_size):
            alpha = torch.tensor(points[first:first + batch_size], dtype=image.dtype, device=image.device)
            weight = torch.tensor(weights[first:first + batch_size], dtype=image.dtype, device=image.device)
            path = start + alpha.view(-1, 1, 1, 1) * (image - start)
            path = path.contiguous(memory_format=torch.channels_last).requires_grad_(True)
            (grad,) = torch.autograd.grad(fast(path)[:, label].sum(), path)
            total += (weight.view(-1, 1, 1, 1) * grad).sum(dim=0)
        result.append((image - start) * total)
    return torch.stack(result).contiguous()
