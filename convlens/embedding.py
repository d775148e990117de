"""What the last layer represents: random crops of photos and their pooled last-layer features."""
from __future__ import annotations

import torch
from torch import nn

from convlens.model import extract_features, fast_copy


def random_crops(images: torch.Tensor, per_image: int, size: int = 96, scale=(0.08, 0.4), seed: int = 0):
    """``per_image`` random resized crops (torchvision ``RandomResizedCrop``) of each image.

    Args:
        images: (N, 3, H, W) in [0, 1].
    Returns:
        crops (N * per_image, 3, size, size) and source (N * per_image,) int64: which image each came from.
    """
    from torchvision.transforms import v2

    crop = v2.RandomResizedCrop(size, scale=scale, antialias=True)
    crops, source = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, image in enumerate(images):
            for _ in range(per_image):
                crops.append(crop(image))
                source.append(i)
    return torch.stack(crops), torch.tensor(source, dtype=torch.int64, device=images.device)


def pooled_features(model: nn.Module, images: torch.Tensor, layer: str = "head", batch_size: int = 64) -> torch.Tensor:
    """Global-average-pooled activations of ``layer`` (short name or module path): (N, C) float.

    For EfficientNet-Lite0 the "head" features (N, 1280) are what the final linear classifier sees.
    """
    fast = fast_copy(model)
    pooled = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            pooled.append(extract_features(fast, images[start:start + batch_size], [layer])[layer].mean(dim=(2, 3)))
    return torch.cat(pooled)
