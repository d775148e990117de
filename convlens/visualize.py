"""Images made by gradient ascent for notebook 3: the class-visualization loop around the student's step,
DeepDream with octaves and single-channel visualization (Going further).

Images are float RGB in [0, 1], shape (N, 3, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from convlens.images import gaussian_blur
from convlens.model import extract_features
from convlens.runtime import progress as bar


def create_class_visualization(model, class_visualization_step, targets, size: int = 160, steps: int = 100,
                               l2_reg: float = 1e-3, learning_rate: float = 5.0, max_jitter: int = 8, blur_every: int = 10,
                               blur_sigma: float = 0.5, seed: int = 0, device=None,
                               progress: bool = True) -> torch.Tensor:
    """Generate one image per target class from random noise with the student's ``class_visualization_step``.

    Each step uses a fresh random jitter in [-max_jitter, max_jitter]^2 (shared by the batch); every
    ``blur_every`` steps the images are blurred with a Gaussian of ``blur_sigma`` pixels
    (:func:`convlens.images.gaussian_blur`, torchvision's), which removes the high-frequency patterns the
    network likes but people do not see as objects.

    Args:
        model: classifier on [0, 1] images.
        class_visualization_step: the step function of notebook 3 (``helpers.fooling.class_visualization_step``).
        targets: one class index or a list / (N,) tensor of them; all images are optimized as one batch.
        size: side of the square images (the model accepts any size; 128 is quick, 224 clearer).
            For cleaner pictures at 224 px: ``steps=150, l2_reg=3e-3, blur_every=5, blur_sigma=1.0``.
        steps, l2_reg, learning_rate, max_jitter, blur_every, blur_sigma: see above.
        seed: seeds the noise and the jitter (a private torch.Generator; the global RNG is untouched).
        device: default: the model's device.
        progress: show a tqdm progress bar.
    Returns:
        (N, 3, size, size) float32 images in [0, 1].
    """
    device = device or next(model.parameters()).device
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1).to(device)
    generator = torch.Generator().manual_seed(seed)
    images = _noise_images(len(targets), size, generator, device)

    def step(images: torch.Tensor, jitter: tuple[int, int]) -> torch.Tensor:
        return class_visualization_step(model, images, targets, l2_reg, learning_rate, jitter=jitter)

    return _jittered_ascent(images, step, steps, max_jitter, blur_every, blur_sigma, generator, progress,
                            "class visualization")


def _noise_images(count: int, size: int, generator: torch.Generator, device) -> torch.Tensor:
    """Faint noise around mid-gray, so every pixel can move both ways: (count, 3, size, size) in [0, 1]."""
    return (0.5 + 0.1 * torch.randn(count, 3, size, size, generator=generator)).clamp(0, 1).to(device)


def _jittered_ascent(images: torch.Tensor, step, steps: int, max_jitter: int, blur_every: int,
                     blur_sigma: float, generator: torch.Generator, progress: bool, desc: str) -> torch.Tensor:
    """``steps`` times: draw a jitter (ox, oy) in [-max_jitter, max_jitter]^2 from ``generator``, then
    ``images = step(images, (ox, oy))``; every ``blur_every`` steps (0: never), except after the last,
    blur the images (Gaussian, ``blur_sigma`` pixels). Returns the images detached."""
    for index in bar(range(steps), desc=desc, enabled=progress):
        ox, oy = torch.randint(-max_jitter, max_jitter + 1, (2,), generator=generator).tolist()
        images = step(images, (ox, oy))
        if blur_every and (index + 1) % blur_every == 0 and index + 1 < steps:
            images = gaussian_blur(images, blur_sigma)
    return images.detach()


def layer_activation(model, layer: str, images: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (a short name like ``"block10"``) for ``images`` (N, 3, H, W) in [0, 1].

    The forward pass stops at that layer (nothing after it is computed) and the hook is always removed.
    Gradients flow through the returned activation.
    """
    return extract_features(model, images, [layer])[layer]


def _shifted(images: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """A view of the images moved by (ox, oy) pixels: reflection-padded, then cropped, so the gradient
    reaches the unshifted pixels through the crop (transformation robustness, as in Lucid)."""
    pad = max(abs(ox), abs(oy))
    if not pad:
        return images
    height, width = images.shape[-2:]
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    return padded[..., pad - oy:pad - oy + height, pad - ox:pad - ox + width]


def _adam_ascent(images: torch.Tensor, objective, steps: int, lr: float, max_jitter: int, blur_every: int,
                 blur_sigma: float, generator: torch.Generator, progress: bool, desc: str) -> torch.Tensor:
    """Raise ``objective(view) -> scalar`` by Adam on the pixels (as Lucid does), each step on a randomly
    shifted view; pixels clamped to [0, 1] after each step, blurred every ``blur_every`` steps (0: never)."""
    pixels = images.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=lr)
    for index in bar(range(steps), desc=desc, enabled=progress):
        ox, oy = torch.randint(-max_jitter, max_jitter + 1, (2,), generator=generator).tolist()
        optimizer.zero_grad(set_to_none=True)
        (-objective(_shifted(pixels, ox, oy))).backward()
        optimizer.step()
        with torch.no_grad():
            pixels.clamp_(0, 1)
            if blur_every and (index + 1) % blur_every == 0 and index + 1 < steps:
                pixels.copy_(gaussian_blur(pixels, blur_sigma))
    return pixels.detach()


def deep_dream(model, image: torch.Tensor, layer: str = "block10", octaves: int = 3, octave_scale: float = 1.4,
               steps_per_octave: int = 8, lr: float = 0.02, max_jitter: int = 16, seed: int = 0,
               progress: bool = True) -> torch.Tensor:
    """DeepDream (Mordvintsev et al. 2015): amplify whatever ``layer`` already sees in ``image``.

    Adam ascent on ``0.5 * mean(activation ** 2)`` of the layer, at ``octaves`` scales from small to full
    size. At each scale the image is the photo resized to that scale plus the "detail" dreamed so far
    (upsampled), so the large patterns found at coarse scales are refined at finer ones.

    Args:
        image: (1, 3, H, W) or (3, H, W) in [0, 1].
        layer: short layer name; early blocks give textures, late blocks object parts.
    Returns:
        (1, 3, H, W) dreamed image in [0, 1].
    """
    base = (image[None] if image.dim() == 3 else image).detach()
    height, width = base.shape[-2:]
    generator = torch.Generator().manual_seed(seed)
    objective = lambda x: 0.5 * layer_activation(model, layer, x).pow(2).mean()
    detail = None
    for k in reversed(range(octaves)):  # smallest scale first
        size = [max(32, round(height / octave_scale ** k)), max(32, round(width / octave_scale ** k))]
        scaled = F.interpolate(base, size=size, mode="bilinear", align_corners=False, antialias=True)
        start = scaled if detail is None else (scaled + F.interpolate(detail, size=size, mode="bilinear",
                                                                      align_corners=False)).clamp(0, 1)
        dreamed = _adam_ascent(start, objective, steps_per_octave, lr, max_jitter, 0, 0.5, generator, progress,
                               f"dream {size[0]}x{size[1]}")
        detail = dreamed - scaled
    return dreamed


def pixel_channel_image(model, layer: str, channel: int, size: int = 128, steps: int = 40,
                      lr: float = 0.03, max_jitter: int = 4, blur_every: int = 4,
                      blur_sigma: float = 0.5, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """An image that excites one channel of ``layer``: Adam ascent on the channel's mean activation, with
    random shifts and an occasional blur. Starts from faint noise around mid-grey.
    Returns (1, 3, size, size) in [0, 1].
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    images = _noise_images(1, size, generator, device)
    objective = lambda x: layer_activation(model, layer, x)[:, channel].mean()
    return _adam_ascent(images, objective, steps, lr, max_jitter, blur_every, blur_sigma, generator, progress,
                        f"{layer} channel {channel}")
