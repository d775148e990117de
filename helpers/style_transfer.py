"""Notebook 4: neural style transfer (Gatys et al. 2016) with the kit's EfficientNet-Lite0 as feature network.

An image is optimized so that its features at one deep layer match a content image (content loss), the
Gram matrices of its features at several layers match a style image (style loss), and neighbouring pixels
stay close (total-variation loss). Images are (N, 3, H, W) float in [0, 1]; feature maps are (N, C, H, W).
Losses are 0-dim tensors that keep their graph, so they can be backpropagated. New tensors follow the
input's device and dtype.

The student writes ``content_loss``, ``gram_matrix``, ``style_loss``, ``tv_loss`` and the loop inside
``style_transfer``. The rest (feature extraction, settings, the feed-forward network) is support code.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers.model import extract_features, fast_copy  # extract_features: used as st.extract_features


# ---------------------------------------------------------------------------------------------------------
# The losses (student code)
# ---------------------------------------------------------------------------------------------------------

def content_loss(content_weight: float, current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Content loss: ``content_weight * sum((current - target) ** 2)`` over every element.

    Args:
        content_weight: scalar weight w_c >= 0.
        current: (N, C, H, W) features of the image being optimized at the content layer.
        target: (N, C, H, W) or (1, C, H, W) features of the content image at the same layer.
    Returns:
        0-dim tensor (differentiable with respect to ``current``).
    """
    # TODO START content_loss
    # A sum (not a mean) of squared differences, times the weight. No square root.
    return content_weight * (current - target).pow(2).sum()
    # TODO END content_loss


def gram_matrix(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Gram matrix of each feature map: G[n, c, d] = sum over positions of F[n, c, p] * F[n, d, p].

    Args:
        features: (N, C, H, W) feature maps.
        normalize: if True divide by C * H * W (the number of elements of one image's features), so the
            value does not grow with the image size or the layer's width.
    Returns:
        (N, C, C) tensor, symmetric in its last two dimensions.
    """
    # TODO START gram_matrix
    # Flatten the positions to (N, C, H*W) and multiply it by its own transpose (torch.bmm or @):
    # the result is channels x channels, not positions x positions.
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    if normalize:
        gram = gram / (c * h * w)
    return gram
    # TODO END gram_matrix


def style_loss(feats: dict, style_layers: Sequence[str], style_targets: Sequence[torch.Tensor],
               style_weights: Sequence[float]) -> torch.Tensor:
    """Style loss: ``sum over l of style_weights[l] * sum((gram_matrix(feats[layer_l]) - target_l) ** 2)``.

    Args:
        feats: {layer name: (N, C_l, H_l, W_l) features of the image being optimized}.
        style_layers: the L layer names to use, in order.
        style_targets: L Gram matrices of the style image, (1, C_l, C_l) or (N, C_l, C_l), normalized.
        style_weights: L scalar weights.
    Returns:
        0-dim tensor (differentiable with respect to the features).
    """
    # TODO START style_loss
    # One term per layer: the Gram matrix (normalized) of the current features against that layer's target,
    # a sum of squared differences, times that layer's weight. Add the terms up.
    total = None
    for layer, target, weight in zip(style_layers, style_targets, style_weights):
        term = weight * (gram_matrix(feats[layer]) - target).pow(2).sum()
        total = term if total is None else total + term
    if total is None:  # no style layers: a zero that still lives on the right device
        total = next(iter(feats.values())).new_zeros(()) if feats else torch.zeros(())
    return total
    # TODO END style_loss


def tv_loss(img: torch.Tensor, tv_weight: float) -> torch.Tensor:
    """Total-variation loss: ``tv_weight * (sum of squared differences between vertical neighbours + sum
    of squared differences between horizontal neighbours)``, over every channel and image.

    Args:
        img: (N, 3, H, W) image.
        tv_weight: scalar weight w_t >= 0.
    Returns:
        0-dim tensor (differentiable with respect to ``img``).
    """
    # TODO START tv_loss
    # Both directions: rows (dim 2) and columns (dim 3). Squared differences, summed, not averaged.
    vertical = (img[:, :, 1:, :] - img[:, :, :-1, :]).pow(2).sum()
    horizontal = (img[:, :, :, 1:] - img[:, :, :, :-1]).pow(2).sum()
    return tv_weight * (vertical + horizontal)
    # TODO END tv_loss


# ---------------------------------------------------------------------------------------------------------
# Features (support code)
# ---------------------------------------------------------------------------------------------------------

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
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    # The scale is treated as a constant (detached): it sets how sharp the softmax is, nothing more.
    scale = flat.detach().std(dim=2, keepdim=True).clamp_min(1e-6) * temperature
    return (F.softmax(flat / scale, dim=2) * (h * w)).reshape(n, c, h, w)


def fast_feature_net(model: nn.Module) -> nn.Module:
    """A copy of the classifier that computes the same features faster, for optimization loops (BatchNorm
    folded, weights channels_last; layer names kept): :func:`helpers.model.fast_copy`. The original model is
    not changed."""
    return fast_copy(model)


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


def compute_style_targets(model: nn.Module, style_images, settings: StyleSettings,
                          mix: Sequence[float] | None = None) -> list:
    """Gram matrices of one or several style images at ``settings.style_layers``.

    Args:
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
            from tqdm.auto import tqdm

            self._bar = tqdm(total=steps, desc=desc, leave=False)

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


def style_transfer(model: nn.Module, content: torch.Tensor, style, settings: StyleSettings = DEFAULT_SETTINGS,
                   steps: int = 200, init="content", optimizer: str = "lbfgs", lr: float = 0.05,
                   lr_decay: float = 0.98, seed: int = 0, progress: bool = False):
    """Optimize the pixels of an image so that it has the content of ``content`` and the style of ``style``.

    Args:
        model: the feature network (frozen; left without hooks or gradients).
        content: (N, 3, H, W) in [0, 1]; N content images are stylized together (their losses are summed).
        style: a (1, 3, H', W') style image in [0, 1], or a list of Gram targets from
            :func:`compute_style_targets` (one per style layer).
        settings: layers and weights.
        steps: number of loss evaluations (function evaluations for L-BFGS, steps for Adam).
        init: "content" (start from a copy of ``content``), "noise" (uniform noise in [0, 1], drawn from
            ``seed``), or an (N, 3, H, W) tensor to start from.
        optimizer: "lbfgs" or "adam"; ``lr`` and ``lr_decay`` (per step, exponential) are for Adam.
    Returns:
        (image, history): the result (N, 3, H, W) in [0, 1], detached, and a :class:`LossHistory` with one
        entry per loss evaluation.
    """
    with torch.inference_mode():
        content_target = extract_features(model, content, [settings.content_layer])[settings.content_layer]
    content_target = content_target.clone()
    targets = compute_style_targets(model, style, settings) if isinstance(style, torch.Tensor) else list(style)
    generator = torch.Generator(device=content.device).manual_seed(seed)
    history = LossHistory(steps, progress)

    def features(images: torch.Tensor):
        """(content features, {style layer: features}) of ``images``, from one forward pass."""
        return content_and_style_features(model, images, settings)

    # TODO START style_transfer_loop
    # 1. The image to optimize: a detached copy of `content` (init="content"), uniform noise in [0, 1] drawn
    #    with torch.rand(..., generator=generator, device=..., dtype=...) (init="noise"), or a copy of the
    #    tensor `init`. Make it a leaf that requires grad.
    # 2. A closure that: clamps the image to [0, 1] in place (under torch.no_grad()), zeroes the gradient,
    #    gets `current, style_feats = features(image)`, computes the three losses (content against
    #    `content_target`, style with `targets`, tv on the image), backpropagates their sum, calls
    #    history.record(total, content, style, tv) and returns the sum.
    # 3. L-BFGS: torch.optim.LBFGS([image], lr=1, max_iter=steps, max_eval=steps) evaluates the closure up
    #    to `steps` times in a single .step(closure). Adam: `steps` calls of .step(closure), each followed by
    #    a learning-rate decay (torch.optim.lr_scheduler.ExponentialLR with gamma=lr_decay).
    # 4. Return the image detached and clamped to [0, 1], and history.
    if isinstance(init, torch.Tensor):
        start = init.detach().to(content.device, content.dtype)
    elif init == "noise":
        start = torch.rand(content.shape, generator=generator, device=content.device, dtype=content.dtype)
    elif init == "content":
        start = content.detach()
    else:
        raise ValueError(f"init must be 'content', 'noise' or a tensor, not {init!r}")
    image = start.clone().requires_grad_(True)

    def closure() -> torch.Tensor:
        with torch.no_grad():
            image.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        current, style_feats = features(image)
        c_loss = content_loss(settings.content_weight, current, content_target)
        s_loss = style_loss(style_feats, settings.style_layers, targets, settings.style_weights)
        t_loss = tv_loss(image, settings.tv_weight)
        total = c_loss + s_loss + t_loss
        total.backward()
        history.record(total, c_loss, s_loss, t_loss)
        return total

    try:
        with torch.enable_grad():
            if optimizer == "lbfgs":
                opt = torch.optim.LBFGS([image], lr=1, max_iter=steps, max_eval=steps, history_size=20,
                                        tolerance_grad=0.0, tolerance_change=0.0)
                opt.step(closure)
            elif optimizer == "adam":
                opt = torch.optim.Adam([image], lr=lr)
                decay = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
                for _ in range(steps):
                    opt.step(closure)
                    decay.step()
            else:
                raise ValueError(f"optimizer must be 'lbfgs' or 'adam', not {optimizer!r}")
    finally:
        history.close()
    return image.detach().clamp(0, 1), history
    # TODO END style_transfer_loop


# ---------------------------------------------------------------------------------------------------------
# Going further (support code)
# ---------------------------------------------------------------------------------------------------------

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


def perceptual_loss(model: nn.Module, output: torch.Tensor, photos: torch.Tensor, targets: Sequence[torch.Tensor],
                    settings: StyleSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """The style transfer loss of a network's ``output`` (N, 3, H, W) for its inputs ``photos`` (N, 3, H, W):
    content against the photos' own features, style against ``targets``, plus TV. Summed over the batch."""
    with torch.no_grad():
        content_target = extract_features(model, photos, [settings.content_layer])[settings.content_layer]
    current, style_feats = content_and_style_features(model, output, settings)
    return (content_loss(settings.content_weight, current, content_target)
            + style_loss(style_feats, settings.style_layers, targets, settings.style_weights)
            + tv_loss(output, settings.tv_weight))


def train_style_net(model: nn.Module, photos: torch.Tensor, style: torch.Tensor,
                    settings: StyleSettings = DEFAULT_SETTINGS, steps: int = 150, batch_size: int = 4,
                    crop: int = 128, lr: float = 2e-3, seed: int = 0, progress: bool = False):
    """Train a :class:`StyleNet` for one style on random crops of ``photos`` with the same three losses.

    Args:
        photos: (N, 3, H, W) in [0, 1], H and W >= ``crop``.
        style: (1, 3, H', W') in [0, 1].
    Returns:
        (net in eval mode, list of the total loss per step).
    """
    torch.manual_seed(seed)
    net = StyleNet().to(photos.device, photos.dtype)
    targets = compute_style_targets(model, style, settings)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    losses = []
    steps_iter = range(steps)
    if progress:
        from tqdm.auto import tqdm

        steps_iter = tqdm(steps_iter, desc="training the style network", leave=False)
    n, _, h, w = photos.shape
    for _ in steps_iter:
        pick = torch.randint(0, n, (batch_size,), generator=generator)
        top = torch.randint(0, h - crop + 1, (batch_size,), generator=generator)
        left = torch.randint(0, w - crop + 1, (batch_size,), generator=generator)
        batch = torch.stack([photos[i, :, t:t + crop, l:l + crop] for i, t, l in zip(pick, top, left)])
        flip = torch.rand(batch_size, generator=generator) < 0.5
        batch[flip] = batch[flip].flip(-1)
        loss = perceptual_loss(model, net(batch), batch, targets, settings) / batch_size
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return net.eval(), losses
