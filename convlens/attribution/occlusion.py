"""Occlusion computed fast: Captum's ``Occlusion`` result, several times faster on CPU.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convlens.attribution.occlusion_lite0 import occlusion_drops
from convlens.model import as_targets, fast_copy


def _window_starts(size: int, window: int, stride: int) -> list[int]:
    """Window positions along one axis: Captum's Occlusion uses ceil((size - window) / stride) + 1 of them."""
    return [k * stride for k in range(math.ceil((size - window) / stride) + 1)]




def occlusion_attribution(model: nn.Module, images: torch.Tensor, target, window: int = 16, stride: int = 8,
                          baseline: float = 0.0, batch_size: int = 16,
                          progress: bool = False) -> torch.Tensor:
    """Captum ``Occlusion`` computed fast: equal output (up to float round-off), several times less time on CPU.

    Same result as ``Occlusion(model).attribute(images, sliding_window_shapes=(3, window, window),
    strides=stride, baselines=baseline, target=target)`` on the logits. Faster because it runs without autograd on a channels_last copy of
    the model with BatchNorm folded, ``batch_size`` occluded copies per pass, and, for EfficientNet-Lite0 on
    images whose sides are multiples of 4 (8), recomputes the layers up to stride 4 (and 8) only around each
    window: a grey square changes those feature maps only within a few positions of the square, so those
    layers run on a crop around it and the result is pasted into the unoccluded feature map.

    Args:
        model: classifier, (N, 3, H, W) in [0, 1] -> (N, C) logits; a :func:`convlens.model.fast_copy` is
            used as is, any other model is copied (the caller's model is not changed).
        images: (N, 3, H, W) float in [0, 1].
        target: int or (N,) class indices.
        window, stride: occluding square side and step in pixels; stride <= window <= H, W.
        baseline: the value written into the occluded square (0: black, 0.5: grey).
        batch_size: occluded images per forward pass (small batches stay in the CPU cache).
        progress: show a tqdm progress bar over images.
    Returns:
        (N, 3, H, W) attributions, equal across channels: f_y(image) - f_y(occluded), averaged over the
        windows covering each pixel.
    """
    n, channels, height, width = images.shape
    if not (1 <= stride <= window <= min(height, width)):
        raise ValueError(f"need 1 <= stride <= window <= image side; got stride={stride}, window={window}")
    fast = fast_copy(model)
    targets = as_targets(target, n, images.device)
    tops, lefts = _window_starts(height, window, stride), _window_starts(width, window, stride)
    corners = [(t, l) for t in tops for l in lefts]
    # fold() adds each window's value back onto a canvas that the last (overhanging) windows fit into.
    padded = (tops[-1] + window, lefts[-1] + window)
    ones = images.new_ones(1, window * window, len(corners))
    count = F.fold(ones, padded, window, stride=stride)[0, 0, :height, :width]
    split = getattr(fast, "arch", "") == "efficientnet_lite0" and height % 4 == 0 and width % 4 == 0

    def value_of(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, classes.view(-1, 1)).squeeze(1)

    from convlens.runtime import progress as bar

    maps = []
    with torch.inference_mode():
        for i in bar(range(n), desc="occlusion", enabled=progress):
            image = images[i:i + 1].contiguous(memory_format=torch.channels_last)
            if not split:  # another network or size: Captum itself, batched, on the fast copy
                from captum.attr import Occlusion

                maps.append(Occlusion(fast).attribute(image, sliding_window_shapes=(channels, window, window),
                                                      strides=stride, baselines=baseline, target=targets[i:i + 1],
                                                      perturbations_per_eval=batch_size)[0, 0])
                continue
            drops = occlusion_drops(fast, image, corners, window, baseline, batch_size,
                                           lambda logits: value_of(logits, targets[i].expand(len(logits))))
            columns = drops.view(1, 1, -1).expand(1, window * window, -1)
            total = F.fold(columns, padded, window, stride=stride)[0, 0, :height, :width]
            maps.append(total / count)
    return torch.stack(maps).unsqueeze(1).expand(n, channels, height, width).clone()
