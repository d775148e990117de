"""Notebook 2: guided backpropagation, Grad-CAM and guided Grad-CAM, written by hand.

Every function takes the classifier as an argument (see convlens/model.py): images are (N, 3, H, W) float in
[0, 1], labels are (N,) int64 ImageNet indices, one class per image. The "class score" is the logit (the
model's output before any softmax). Outputs are detached and follow the images' device and dtype; the model
is left as it was found (no hooks, same ``requires_grad`` flags, no ``.grad`` on its parameters).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convlens.model import get_layer


def guided_backprop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): the gradient of each image's class score with
    respect to its pixels, where every ReLU-type activation lets a gradient through only if it is positive
    on the way back and the activation's own local derivative is non-zero (its input was in the active range).

    Args:
        model: classifier whose activations are ``nn.ReLU`` modules (ReLU6 here subclasses ``nn.ReLU``);
            they may be in-place.
        images: (N, 3, H, W) float in [0, 1]. Not modified.
        labels: (N,) int64, the class to explain for each image.
    Returns:
        (N, 3, H, W) tensor, same device and dtype as ``images``, any sign (the first convolution mixes
        signs again), detached.
    """
    # TODO START guided_backprop
    # Hooks, not a modified model: leave the model exactly as you found it, also when something
    # raises, and make it work when the activations are in-place. Hints: under Exercise 1 in notebook 2.
    images = images.detach().clone().requires_grad_(True)

    def clamp_at_zero(grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)

    def hook_output(module: nn.Module, inputs, output: torch.Tensor) -> None:
        output.register_hook(clamp_at_zero)

    handles = []
    try:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                handles.append(module.register_forward_hook(hook_output))
        with torch.enable_grad():
            scores = model(images)
            picked = scores.gather(1, labels.to(scores.device).view(-1, 1)).sum()
            (grads,) = torch.autograd.grad(picked, images)
    finally:
        for handle in handles:
            handle.remove()
    return grads.detach()
    # TODO END guided_backprop


def grad_cam(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layer="head",
             normalize: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at one layer, upsampled to the image size.

    With A (N, C, h, w) the layer's output and y the class score (logit):
    ``weights[n, c] = mean over (i, j) of dy_n / dA[n, c, i, j]``,
    ``cam = ReLU(sum_c weights[n, c] * A[n, c])`` of size (h, w), then bilinear upsampling to (H, W)
    (``F.interpolate(..., mode="bilinear", align_corners=False)``, as ``LayerAttribution.interpolate`` does).

    Args:
        model: classifier; images: (N, 3, H, W) in [0, 1]; labels: (N,) int64.
        layer: short layer name (default "head", the last convolutional block), module path, or module.
        normalize: divide each map by its own maximum so it spans [0, 1] for display (a map that is all
            zero stays zero). ``False`` returns the raw map, equal to Captum's ``LayerGradCam`` with
            ``relu_attributions=True`` followed by ``LayerAttribution.interpolate(..., "bilinear")``.
    Returns:
        (N, H, W) tensor, same device and dtype as ``images``, values >= 0 (in [0, 1] when normalized),
        detached.
    """
    layer_module = get_layer(model, layer)  # a short name, module path or the module itself
    # TODO START grad_cam
    # Read the layer's activations and their gradients with a hook that you always remove.
    # Hints: under Exercise 2 in notebook 2.
    images = images.detach().clone().requires_grad_(True)
    saved = {}

    def keep_output(module: nn.Module, inputs, output: torch.Tensor) -> None:
        saved["activations"] = output

    handle = layer_module.register_forward_hook(keep_output)
    try:
        with torch.enable_grad():
            scores = model(images)
            picked = scores.gather(1, labels.to(scores.device).view(-1, 1)).sum()
            activations = saved["activations"]
            (grads,) = torch.autograd.grad(picked, activations)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))  # (N, 1, h, w)
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if normalize:
        peak = cam.amax(dim=(1, 2), keepdim=True)
        cam = cam / peak.clamp_min(torch.finfo(cam.dtype).tiny)
    return cam.detach()
    # TODO END grad_cam


def guided_grad_cam(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, layer="head") -> torch.Tensor:
    """Guided Grad-CAM: guided backpropagation times the raw (unnormalized) upsampled Grad-CAM, pixel by pixel
    and broadcast over the colour channels: fine detail from the first, class selectivity from the second.

    Equal to Captum's ``GuidedGradCam(model, layer).attribute(images, labels, interpolate_mode="bilinear")``
    (Captum's default ``interpolate_mode`` is "nearest", which gives blocky maps).

    Args: as :func:`grad_cam`. Returns: (N, 3, H, W), same device and dtype as ``images``, detached.
    """
    # TODO START guided_grad_cam
    # Build it from your two functions above. Hints: under Exercise 3 in notebook 2.
    cam = grad_cam(model, images, labels, layer=layer, normalize=False)
    return guided_backprop(model, images, labels) * cam.unsqueeze(1)
    # TODO END guided_grad_cam
