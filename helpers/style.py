"""Notebook 4 exercises: neural style transfer (Gatys et al. 2016) with EfficientNet-Lite0 as feature network.

    content_loss, gram_matrix, style_loss, tv_loss   the three losses (and the Gram matrix)
    style_transfer                                   the optimization loop (L-BFGS or Adam)

Write your code between the TODO markers. Images are (N, 3, H, W) float in [0, 1]; feature maps are
(N, C, H, W). Losses are 0-dim tensors that keep their graph, so they can be backpropagated. New tensors
follow the input's device and dtype.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from convlens.model import extract_features
from convlens.style import DEFAULT_SETTINGS, LossHistory, StyleSettings, compute_style_targets, content_and_style_features


def content_loss(content_weight: float, current: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Content loss: how far the current features are from the content image's, as the weighted sum of
    squared differences over every element, L_c = w_c * sum_(n,c,h,w) (F - P)^2.

    Args:
        content_weight: scalar weight w_c >= 0.
        current: (N, C, H, W) features of the image being optimized at the content layer.
        target: (N, C, H, W) or (1, C, H, W) features of the content image at the same layer.
    Returns:
        0-dim tensor (differentiable with respect to ``current``).
    """
    # TODO START content_loss
    # Hints: under Exercise 1 in notebook 4.
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
    # Channels x channels, one matrix per image. Hints: under Exercise 2 in notebook 4.
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    if normalize:
        gram = gram / (c * h * w)
    return gram
    # TODO END gram_matrix


def style_loss(feats: dict, style_layers: Sequence[str], style_targets: Sequence[torch.Tensor],
               style_weights: Sequence[float]) -> torch.Tensor:
    """Style loss: over the style layers l, the weighted squared distance between the Gram matrix of the current
    features (your :func:`gram_matrix`, normalized) and the style image's, L_s = sum_l w_l * ||G_l - A_l||^2
    (the squared Frobenius norm, summed over images too). With no style layers the loss is a 0-dim zero.

    Args:
        feats: {layer name: (N, C_l, H_l, W_l) features of the image being optimized}.
        style_layers: the L layer names to use, in order.
        style_targets: L Gram matrices of the style image, (1, C_l, C_l) or (N, C_l, C_l), normalized.
        style_weights: L scalar weights.
    Returns:
        0-dim tensor (differentiable with respect to the features).
    """
    # TODO START style_loss
    # Use your gram_matrix. Hints: under Exercise 3 in notebook 4.
    total = None
    for layer, target, weight in zip(style_layers, style_targets, style_weights):
        term = weight * (gram_matrix(feats[layer]) - target).pow(2).sum()
        total = term if total is None else total + term
    if total is None:  # no style layers: a zero that still lives on the right device
        total = next(iter(feats.values())).new_zeros(()) if feats else torch.zeros(())
    return total
    # TODO END style_loss


def tv_loss(img: torch.Tensor, tv_weight: float) -> torch.Tensor:
    """Total-variation loss: how rough the image is, as the weighted sum of squared differences between every
    pair of neighbouring pixels (one above the other, or side by side), over every channel and image.

    Args:
        img: (N, 3, H, W) image.
        tv_weight: scalar weight w_t >= 0.
    Returns:
        0-dim tensor (differentiable with respect to ``img``).
    """
    # TODO START tv_loss
    # Hints: under Exercise 4 in notebook 4.
    vertical = (img[:, :, 1:, :] - img[:, :, :-1, :]).pow(2).sum()
    horizontal = (img[:, :, :, 1:] - img[:, :, :, :-1]).pow(2).sum()
    return tv_weight * (vertical + horizontal)
    # TODO END tv_loss


def style_transfer(model: nn.Module, content: torch.Tensor, style, settings: StyleSettings = DEFAULT_SETTINGS,
                   steps: int = 200, init="content", optimizer: str = "lbfgs", lr: float = 0.05,
                   lr_decay: float = 0.98, seed: int = 0, progress: bool = False):
    """Optimize the pixels of an image so that it has the content of ``content`` and the style of ``style``.

    Args:
        model: the feature network (frozen; left without hooks or gradients).
        content: (N, 3, H, W) in [0, 1], in any memory layout (channels-last too: torch.optim.LBFGS needs the
            tensor it optimizes contiguous); N content images are stylized together (their losses are summed).
        style: a (1, 3, H', W') style image in [0, 1], or a list of Gram targets from
            :func:`compute_style_targets` (one per style layer).
        settings: layers and weights.
        steps: the number of loss evaluations, exactly (L-BFGS may evaluate several times per step; it must
            neither stop early nor go past this number).
        init: "content" (start from ``content``), "noise" (uniform noise in [0, 1]: one ``torch.rand`` draw of
            shape (N, 3, H, W) from ``generator``, made from ``seed``), or an (N, 3, H, W) tensor in [0, 1] to
            start from.
        optimizer: "lbfgs" (``torch.optim.LBFGS``, its default step size) or "adam" (``torch.optim.Adam`` with
            learning rate ``lr``, multiplied by ``lr_decay`` after each step).
    Returns:
        (image, history): the result (N, 3, H, W) in [0, 1], detached, and ``history``, holding the
        (total, content, style, tv) losses of every evaluation in order: call
        ``history.record(total, content, style, tv)`` once per evaluation, with that evaluation's losses,
        and ``history.close()`` once the run ends, however it ends (it closes the progress bar).

    The loss is content_loss (``settings.content_weight``, against ``content_target``) + style_loss
    (``settings.style_layers`` and ``settings.style_weights``, against ``targets``) + tv_loss
    (``settings.tv_weight``) of the image. What is checked is what the run achieves, however you write it:
    every evaluated image lies in [0, 1]; each evaluation's gradient is that evaluation's alone; the history
    has one entry per evaluation, ``steps`` in all; the first entry is the start's loss, and the last is the
    loss of the last image evaluated (the checks compute it again from that image); the returned image
    gets about as far as a correct run of the same optimizer; the same ``seed`` gives the same run, whatever
    torch's global random state; ``content``, ``style`` and ``init`` are left untouched.
    """
    with torch.inference_mode():
        content_target = extract_features(model, content, [settings.content_layer])[settings.content_layer]
    content_target = content_target.clone()
    targets = (compute_style_targets(model, style, settings, gram_matrix) if isinstance(style, torch.Tensor)
               else list(style))
    generator = torch.Generator(device=content.device).manual_seed(seed)
    history = LossHistory(steps, progress)

    def features(images: torch.Tensor):
        """(content features, {style layer: features}) of ``images``, from one forward pass."""
        return content_and_style_features(model, images, settings)

    # TODO START style_transfer
    # Start from the image the optimizer will change, then write the function the optimizer calls for
    # each evaluation. `features`, `content_target`, `targets`, `generator` and `history` are ready above.
    # Hints: under Exercise 5 in notebook 4.
    if isinstance(init, torch.Tensor):
        start = init.detach().to(content.device, content.dtype)
    elif init == "noise":
        start = torch.rand(content.shape, generator=generator, device=content.device, dtype=content.dtype)
    elif init == "content":
        start = content.detach()
    else:
        raise ValueError(f"init must be 'content', 'noise' or a tensor, not {init!r}")
    image = start.clone(memory_format=torch.contiguous_format).requires_grad_(True)

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
    # TODO END style_transfer
