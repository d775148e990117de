"""Notebook 1 exercises: which pixels drive the classifier's decision.

    saliency_map          vanilla-gradient saliency (Simonyan et al. 2014)
    occlusion_map         occlusion sensitivity by hand (Zeiler and Fergus 2014)
    integrated_gradients  integrated gradients by hand, a Riemann sum (Sundararajan et al. 2017)
    smooth_grad           SmoothGrad by hand: saliency averaged over noisy copies (Smilkov et al. 2017)

Write your code between the TODO markers. Images are float RGB in [0, 1], shape (N, 3, H, W); labels are
(N,) int64 ImageNet indices. Hints, from the idea to pseudocode, are folded under each exercise in the
notebook. Check your work with the check cell there, or ``python3 kit.py check saliency``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def saliency_map(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 objective: str = "score") -> torch.Tensor:
    """Vanilla-gradient saliency: how much a small change of each pixel changes the decision.

    Args:
        model: classifier taking (N, 3, H, W) images in [0, 1] and returning (N, 1000) logits.
        images: (N, 3, H, W) float in [0, 1]. Not modified.
        labels: (N,) int64, the class to explain for each image.
        objective: ``"score"``: differentiate the unnormalized class score s_y (the logit);
            ``"loss"``: differentiate the cross-entropy loss -log softmax(s)_y instead.
    Returns:
        (N, H, W) float, >= 0: max over the 3 colour channels of |d objective / d pixel|, detached,
        on the images' device and dtype.
    """
    if objective not in ("score", "loss"):
        raise ValueError(f"objective must be 'score' or 'loss', got {objective!r}")
    # TODO START saliency_map
    # Leave `images` untouched and the model without gradients. The notebook's hints (folded under
    # Exercise 1) go from the idea to questions that lead to the code.
    x = images.detach().clone().requires_grad_(True)
    logits = model(x)
    labels = labels.to(logits.device)
    if objective == "score":
        objective_value = logits.gather(1, labels.view(-1, 1)).sum()
    else:
        objective_value = F.cross_entropy(logits, labels, reduction="sum")
    (grad,) = torch.autograd.grad(objective_value, x)
    return grad.abs().amax(dim=1)
    # TODO END saliency_map


def occlusion_map(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, window: int = 16,
                  stride: int = 8, fill: float = 0.5) -> torch.Tensor:
    """Occlusion sensitivity: the drop in the class probability when a grey square hides each region.

    A ``window`` x ``window`` patch of value ``fill`` slides over the image in steps of ``stride``, along the
    rows and the columns. Its top-left corner takes the positions 0, stride, 2 * stride, ... up to the first
    one whose window reaches the image's last row (or column); that last window may hang over the edge and
    is then cut at the border (as in Captum's ``Occlusion``), so every pixel is covered. Every pixel gets the
    average drop over the windows that cover it.

    Args:
        model: classifier taking (N, 3, H, W) images in [0, 1] and returning (N, 1000) logits.
        images: (N, 3, H, W) float in [0, 1]. Not modified.
        labels: (N,) int64 classes.
        window, stride: patch side and step in pixels (stride <= window <= H, W).
        fill: the patch's pixel value in [0, 1] (0.5: mid grey).
    Returns:
        (N, H, W) float in [-1, 1]: p_y(original) - p_y(occluded), averaged per pixel; positive where
        hiding the region lowers the probability of the class. Same as Captum ``Occlusion`` with
        ``sliding_window_shapes=(3, window, window)``, ``strides=stride``, ``baselines=fill`` on the softmax
        output, taken on one channel.
    """
    height, width = images.shape[-2:]
    if not (1 <= stride <= window <= min(height, width)):
        raise ValueError(f"need 1 <= stride <= window <= image side; got stride={stride}, window={window}, "
                         f"image {height}x{width}")
    # TODO START occlusion_map
    # No gradients are needed. Every pixel gets the mean drop over the windows that cover it; the
    # last window of a row or column may hang over the border. Hints: under Exercise 2 in the notebook.
    n = images.shape[0]
    labels = labels.to(images.device).view(-1, 1)
    with torch.no_grad():
        original = F.softmax(model(images), dim=1).gather(1, labels).squeeze(1)
        total = images.new_zeros(n, height, width)
        count = images.new_zeros(height, width)
        for top in range(0, height - window + stride, stride):
            for left in range(0, width - window + stride, stride):
                occluded = images.clone()
                occluded[:, :, top:top + window, left:left + window] = fill
                prob = F.softmax(model(occluded), dim=1).gather(1, labels).squeeze(1)
                total[:, top:top + window, left:left + window] += (original - prob).view(n, 1, 1)
                count[top:top + window, left:left + window] += 1
    return total / count
    # TODO END occlusion_map


def integrated_gradients(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, baseline: float = 0.0,
                         steps: int = 16) -> torch.Tensor:
    """Integrated gradients of the class score along the straight path from a plain baseline image.

    With x0 the image whose every pixel is ``baseline`` and s_y the logit of class y, the attribution of
    pixel i is (x_i - x0_i) times the average of d s_y / d x_i over the path x0 + a (x - x0), a in [0, 1].
    Here the average is the midpoint Riemann sum over ``steps`` equal pieces of [0, 1]: the gradient is
    taken at a = (k + 1/2) / steps for k = 0, ..., steps - 1. Completeness, your own test: the attributions
    of an image sum to nearly s_y(x) - s_y(x0), closer as ``steps`` grows.

    Args:
        model: classifier taking (N, 3, H, W) images in [0, 1] and returning (N, 1000) logits.
        images: (N, 3, H, W) float in [0, 1]. Not modified.
        labels: (N,) int64, the class to explain for each image.
        baseline: the baseline image's pixel value in [0, 1] (0: black).
        steps: number of path points, >= 1.
    Returns:
        (N, 3, H, W) float attributions (any sign), detached, on the images' device and dtype.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    # TODO START integrated_gradients
    # Leave `images` untouched and the model without gradients. Check completeness on one image first;
    # the notebook's hints (folded under Exercise 3) ask the questions that lead to the code.
    rows = labels.to(images.device).view(-1, 1)
    start = torch.full_like(images, baseline)
    total = torch.zeros_like(images)
    for k in range(steps):
        point = (start + (k + 0.5) / steps * (images - start)).detach().requires_grad_(True)
        score = model(point).gather(1, rows).sum()
        (grad,) = torch.autograd.grad(score, point)
        total += grad
    return ((images - start) * total / steps).detach()
    # TODO END integrated_gradients


def smooth_grad(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, stdev: float = 0.15,
               samples: int = 8, seed: int = 0) -> torch.Tensor:
    """SmoothGrad: the class-score saliency averaged over noisy copies of each image.

    The noise is one ``torch.randn`` draw of shape (samples, N, 3, H, W) from ``generator`` (made from ``seed``,
    on the CPU, so that a seed gives the same noise on any device), float32, times ``stdev``, then moved to the
    images' device and dtype. Copy k of image i is images[i] + noise[k, i], not clamped to [0, 1]. With s_y the
    logit of class y, the map of pixel p is the max over the colour channels of the mean over the copies of
    |d s_y / d pixel|.

    Args:
        model: classifier taking (N, 3, H, W) images in [0, 1] and returning (N, 1000) logits.
        images: (N, 3, H, W) float in [0, 1]. Not modified.
        labels: (N,) int64, the class to explain for each image.
        stdev: the noise's standard deviation, in pixel units (the pixel range is 1); 0 gives saliency_map's map.
        samples: number of noisy copies of each image, >= 1.
        seed: the seed of the noise's generator.
    Returns:
        (N, H, W) float, >= 0, detached, on the images' device and dtype.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    generator = torch.Generator().manual_seed(seed)
    # TODO START smooth_grad
    # Leave `images` untouched and the model without gradients. Draw all the noise first, as the docstring
    # says; the notebook's hints (folded under Exercise 4) lead to the rest.
    noise = stdev * torch.randn((samples, *images.shape), generator=generator)
    noise = noise.to(images)
    rows = labels.to(images.device).view(-1, 1)
    total = torch.zeros_like(images)
    for k in range(samples):
        noisy = (images.detach() + noise[k]).requires_grad_(True)
        scores = model(noisy).gather(1, rows).sum()
        (grad,) = torch.autograd.grad(scores, noisy)
        total += grad.abs()
    return (total / samples).amax(dim=1)
    # TODO END smooth_grad
