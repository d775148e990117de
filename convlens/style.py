"""Style transfer support for notebook 4: features, settings, style targets, loss history, colour
preservation and the feed-forward style network. The losses and the optimization loop are the student's
(helpers/style.py); functions here that need them take them as arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from convlens.model import extract_features
from convlens.runtime import progress as bar


def softmax_smoothing(features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax over the positions of each channel (Wang et al., CVPR 2021, "SWAG"), times H * W.

    Each channel becomes a distribution over positions, rescaled so a flat map stays 1 everywhere: peaks
    are kept, but a handful of huge activations can no longer dominate a Gram matrix by their magnitude.

    Args:
        features: (N, C, H, W).
        temperature: the features are divided by ``temperature`` times their own standard deviation (per
            image and channel) before the softmax, so the smoothing does not depend on the layer's scale.
    Returns:
        (N, C, H, W), positive, mean 1 per channel.
    """
    flat = features.flatten(2)
    positions = flat.shape[2]
    # The scale is treated as a constant (detached): it sets how sharp the softmax is, nothing more.
    scale = flat.detach().std(dim=2, keepdim=True).clamp_min(1e-6) * temperature
    return (F.softmax(flat / scale, dim=2) * positions).view_as(features)


def content_and_style_features(model: nn.Module, images: torch.Tensor, settings: "StyleSettings"):
    """One forward pass for both losses: (content features (N, C, H, W), {style layer: features}).

    The style features go through :func:`softmax_smoothing` when ``settings.smooth`` is set; the content
    features never do (a layer may serve as both).
    """
    feats = extract_features(model, images, settings.layers)
    return feats[settings.content_layer], _style_view(feats, settings)


def _style_view(feats: dict, settings: "StyleSettings") -> dict:
    """{style layer: features} from ``feats``, through :func:`softmax_smoothing` when ``settings.smooth``."""
    return {name: softmax_smoothing(feats[name]) if settings.smooth else feats[name]
            for name in settings.style_layers}


def expanded(block: int) -> str:
    """Module path of block ``block``'s expansion activation (ReLU6, 6x the block's input channels)."""
    return f"_blocks.{block}._expand_act"


@dataclass(frozen=True)
class StyleSettings:
    """Which layers and weights define "content" and "style".

    content_layer: one layer name; content_weight: w_c. style_layers: names; style_weights: one per layer.
    tv_weight: w_t. smooth: pass the style layers' features through :func:`softmax_smoothing`.
    """

    content_layer: str
    content_weight: float
    style_layers: tuple
    style_weights: tuple
    tv_weight: float
    smooth: bool = False

    @property
    def layers(self) -> list:
        """Every layer the losses read: the content layer and the style layers."""
        return list(dict.fromkeys([self.content_layer, *self.style_layers]))

    def scaled(self, content: float = 1.0, style: float = 1.0, tv: float = 1.0) -> "StyleSettings":
        """A copy with the content, style and TV weights multiplied by the given factors."""
        return replace(self, content_weight=self.content_weight * content,
                       style_weights=tuple(w * style for w in self.style_weights), tv_weight=self.tv_weight * tv)


# Chosen by the experiment in the notebook: the outputs of blocks 1, 3, 5 and 8 carry the style (from fine
# to coarse), the output of block 8 carries the content; no softmax smoothing (it did not help here).
DEFAULT_SETTINGS = StyleSettings(
    content_layer="block8",
    content_weight=2e-3,
    style_layers=("block1", "block3", "block5", "block8"),
    style_weights=(1.5, 1.0, 1.0, 5.0),
    tv_weight=1.0,
    smooth=False,
)


# The stem (the first convolution, 32 channels at half resolution) is the only style layer that sees the colour of
# single pixels: without it a texture grown from noise keeps its rainbow pixel noise (notebook 4, "Texture
# synthesis"). This weight gives it the same loss as block1 for noise against the mosaic.
STEM_STYLE_WEIGHT = 2500.0


def with_stem(settings: StyleSettings, weight: float = STEM_STYLE_WEIGHT) -> StyleSettings:
    """A copy of ``settings`` with the stem's output added as the first style layer, with ``weight``."""
    if "stem" in settings.style_layers:
        return settings
    return replace(settings, style_layers=("stem", *settings.style_layers),
                   style_weights=(weight, *settings.style_weights))


def compute_style_targets(model: nn.Module, style_images, settings: StyleSettings, gram_matrix,
                          mix: Sequence[float] | None = None) -> list:
    """Gram matrices of one or several style images at ``settings.style_layers``.

    Args:
        gram_matrix: the Gram-matrix function (the student's, from helpers/style.py).
        style_images: (1, 3, H, W) in [0, 1], or a list of such images (sizes may differ).
        mix: with several images, their blending weights (default: equal); the targets are the weighted
            average of their Gram matrices.
    Returns:
        list of (1, C_l, C_l) tensors, one per style layer, not requiring grad.
    """
    if isinstance(style_images, torch.Tensor):
        style_images = [style_images]
    mix = [1.0 / len(style_images)] * len(style_images) if mix is None else list(mix)
    targets = None
    # inference_mode: no graph is recorded for a target; clone() turns the result into a normal tensor
    # that autograd may save for backward later (an inference tensor may not be saved).
    with torch.inference_mode():
        for image, weight in zip(style_images, mix):
            feats = _style_view(extract_features(model, image, settings.style_layers), settings)
            grams = [weight * gram_matrix(feats[layer]) for layer in settings.style_layers]
            targets = grams if targets is None else [t + g for t, g in zip(targets, grams)]
    return [t.clone() for t in targets]


class LossHistory:
    """Records the losses of every function evaluation (and drives an optional tqdm progress bar)."""

    def __init__(self, steps: int, progress: bool = False, desc: str = "style transfer"):
        self.total, self.content, self.style, self.tv = [], [], [], []
        self._bar = None
        if progress:
            self._bar = bar(total=steps, desc=desc)

    def record(self, total, content, style, tv) -> None:
        """Append one evaluation's losses (0-dim tensors or floats)."""
        for store, value in ((self.total, total), (self.content, content), (self.style, style), (self.tv, tv)):
            store.append(float(value.detach()) if isinstance(value, torch.Tensor) else float(value))
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n >= self._bar.total:
                self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __len__(self) -> int:
        return len(self.total)


def preserve_colour(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the stylized image's luminance and the content image's colour (Gatys et al. 2017, luminance-only
    transfer done after the fact): YCbCr of both, Y from ``stylized``, Cb and Cr from ``content``.

    Args:
        stylized, content: (N, 3, H, W) in [0, 1].
    Returns:
        (N, 3, H, W) in [0, 1].
    """
    to_ycc = stylized.new_tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    luma = torch.einsum("kc,nchw->nkhw", to_ycc, stylized)[:, :1]
    chroma = torch.einsum("kc,nchw->nkhw", to_ycc, content)[:, 1:]
    ycc = torch.cat([luma, chroma], dim=1)
    return torch.einsum("kc,nchw->nkhw", torch.linalg.inv(to_ycc), ycc).clamp(0, 1)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class StyleNet(nn.Module):
    """A small feed-forward stylization network (after Johnson et al. 2016, with instance normalization
    from Ulyanov et al. 2016): downsample twice, residual blocks, upsample twice (resize + conv).

    forward(images): (N, 3, H, W) in [0, 1] with H, W divisible by 4 -> (N, 3, H, W) in [0, 1].
    """

    def __init__(self, width: int = 16, n_residual: int = 3):
        super().__init__()

        def conv(c_in, c_out, k, stride=1):
            return [nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k, stride=stride),
                    nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()]

        self.encode = nn.Sequential(*conv(3, width, 9), *conv(width, 2 * width, 3, 2),
                                    *conv(2 * width, 4 * width, 3, 2))
        self.residual = nn.Sequential(*[_ResidualBlock(4 * width) for _ in range(n_residual)])
        self.up1 = nn.Sequential(*conv(4 * width, 2 * width, 3))
        self.up2 = nn.Sequential(*conv(2 * width, width, 3))
        self.out = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(width, 3, 9))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.residual(self.encode(images))
        x = self.up1(F.interpolate(x, scale_factor=2, mode="nearest"))
        x = self.up2(F.interpolate(x, scale_factor=2, mode="nearest"))
        return torch.sigmoid(self.out(x))


def perceptual_loss(model: nn.Module, exercises, output: torch.Tensor, photos: torch.Tensor,
                    targets: Sequence[torch.Tensor], settings: StyleSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """The style transfer loss of a network's ``output`` (N, 3, H, W) for its inputs ``photos`` (N, 3, H, W):
    content against the photos' own features, style against ``targets``, plus TV, summed over the batch.
    ``exercises``: anything with the notebook's ``content_loss``, ``style_loss`` and ``tv_loss`` (the
    student's module)."""
    with torch.no_grad():
        content_target = extract_features(model, photos, [settings.content_layer])[settings.content_layer]
    current, style_feats = content_and_style_features(model, output, settings)
    return (exercises.content_loss(settings.content_weight, current, content_target)
            + exercises.style_loss(style_feats, settings.style_layers, targets, settings.style_weights)
            + exercises.tv_loss(output, settings.tv_weight))


def train_style_net(model: nn.Module, exercises, photos: torch.Tensor, style: torch.Tensor,
                    settings: StyleSettings = DEFAULT_SETTINGS, steps: int = 150, batch_size: int = 4,
                    crop: int = 128, lr: float = 2e-3, seed: int = 0, progress: bool = False):
    """Train a :class:`StyleNet` for one style on random crops of ``photos`` with the same three losses.

    Args:
        exercises: the student's module (``content_loss``, ``gram_matrix``, ``style_loss``, ``tv_loss``).
        photos: (N, 3, H, W) in [0, 1], H and W >= ``crop``.
        style: (1, 3, H', W') in [0, 1].
    Returns:
        (net in eval mode, list of the total loss per step).
    """
    torch.manual_seed(seed)
    net = StyleNet().to(photos.device, photos.dtype)
    targets = compute_style_targets(model, style, settings, exercises.gram_matrix)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    losses = []
    steps_iter = bar(range(steps), desc="training the style network", enabled=progress)
    n, _, h, w = photos.shape
    for _ in steps_iter:
        pick = torch.randint(0, n, (batch_size,), generator=generator)
        top = torch.randint(0, h - crop + 1, (batch_size,), generator=generator)
        left = torch.randint(0, w - crop + 1, (batch_size,), generator=generator)
        batch = torch.stack([photos[i, :, t:t + crop, l:l + crop] for i, t, l in zip(pick, top, left)])
        flip = torch.rand(batch_size, generator=generator) < 0.5
        batch[flip] = batch[flip].flip(-1)
        loss = perceptual_loss(model, exercises, net(batch), batch, targets, settings) / batch_size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return net.eval(), losses
