"""Colour statistics of images, to say in numbers whether a generated picture looks like a photo or a style:
saturation, RMS contrast, colour histograms and their distance, and colour matching.

Images are float RGB in [0, 1], (N, 3, H, W) or (3, H, W).
"""
from __future__ import annotations

import torch


def _batch(images: torch.Tensor) -> torch.Tensor:
    return (images[None] if images.dim() == 3 else images).detach().float().clamp(0, 1)


def saturation(images: torch.Tensor) -> torch.Tensor:
    """Mean HSV saturation, (max - min) / max over R, G, B (0 for black), per image: (N,)."""
    x = _batch(images)
    hi, lo = x.amax(dim=1), x.amin(dim=1)
    return torch.where(hi > 0, (hi - lo) / hi.clamp_min(1e-8), torch.zeros_like(hi)).mean(dim=(1, 2))


def rms_contrast(images: torch.Tensor) -> torch.Tensor:
    """Standard deviation of the luminance (Rec. 601 weights) over the pixels, per image: (N,)."""
    x = _batch(images)
    luma = torch.einsum("c,nchw->nhw", x.new_tensor([0.299, 0.587, 0.114]), x)
    return luma.flatten(1).std(dim=1)


def colour_histogram(images: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Joint RGB histogram with ``bins`` levels per channel, normalized to sum 1, per image: (N, bins ** 3)."""
    x = _batch(images)
    level = (x * bins).long().clamp(max=bins - 1)
    index = (level[:, 0] * bins + level[:, 1]) * bins + level[:, 2]
    hist = torch.zeros(x.shape[0], bins ** 3, device=x.device)
    hist.scatter_add_(1, index.flatten(1), torch.ones_like(index.flatten(1), dtype=hist.dtype))
    return hist / hist.sum(dim=1, keepdim=True)


def histogram_distance(a: torch.Tensor, b: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Hellinger distance between the colour histograms of images ``a`` and ``b`` (paired, or one against
    many): 0 for the same colours, 1 for no colour in common. (N,)."""
    ha, hb = colour_histogram(a, bins), colour_histogram(b, bins)
    return (1 - (ha * hb).sqrt().sum(dim=1)).clamp_min(0).sqrt()


def crop_distance(style: torch.Tensor, bins: int = 8) -> float:
    """The reference for :func:`histogram_distance`: the distance between the left and right halves of one
    style image (3, H, W) or (1, 3, H, W). A result as close as that has the style's colours."""
    x = _batch(style)
    half = x.shape[-1] // 2
    return histogram_distance(x[..., :half], x[..., half:2 * half], bins).item()


def match_colours(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Give ``images`` (N, 3, H, W) the mean and covariance of ``reference``'s colours (one image, or N):
    x -> mu_r + C_r^(1/2) C_x^(-1/2) (x - mu_x), per image, then clamp to [0, 1] (a linear colour transfer)."""
    x = images.flatten(2)  # (N, 3, P)
    ref = _batch(reference).to(images).flatten(2).expand(x.shape[0], -1, -1)
    eye = 1e-5 * torch.eye(3, device=x.device, dtype=x.dtype)

    def stats(v):
        mean = v.mean(dim=2, keepdim=True)
        centred = v - mean
        return mean, torch.einsum("ncp,ndp->ncd", centred, centred) / v.shape[2] + eye

    def sqrtm(c, power):
        values, vectors = torch.linalg.eigh(c)
        return vectors @ torch.diag_embed(values.clamp_min(1e-8) ** power) @ vectors.transpose(1, 2)

    mx, cx = stats(x)
    mr, cr = stats(ref)
    out = mr + sqrtm(cr, 0.5) @ sqrtm(cx, -0.5) @ (x - mx)
    return out.view_as(images).clamp(0, 1)


def match_histograms(images: torch.Tensor, reference: torch.Tensor, iterations: int = 100, seed: int = 0,
                     blur: float = 0.0):
    """Give ``images`` (N, 3, H, W) the colour distribution of ``reference`` (one image, or N) by sliced optimal
    transport (Pitie et al. 2007; Rabin et al. 2011): ``iterations`` times, in a random rotated colour basis,
    move each projected value to the reference's value of the same rank. Returns (N, 3, H, W) in [0, 1].

    Each iteration fixes three directions only, so the joint distribution converges slowly: on the kit's
    style images 12 iterations leave 2-3 times the distance between two halves of the style image, 100
    reach it (bench/bench_feature_vis.py).

    ``blur`` (px, Gaussian sigma) first softens ``images``: an exact match splits a region whose colour is
    noisy between several of the reference's colours, a speckle; blurred first (0.7 px for the textures of
    notebook 4), the region takes one colour."""
    if blur:
        from convlens.images import gaussian_blur

        images = gaussian_blur(images, blur)
    generator = torch.Generator().manual_seed(seed)
    out = images.detach().flatten(2).clone()  # (N, 3, P)
    ref = _batch(reference).to(out).flatten(2)  # (1 or N, 3, P_ref): one reference is sorted once, not N times
    index = None
    if ref.shape[2] != out.shape[2]:  # resample the reference's quantiles at this image's ranks
        ranks = torch.linspace(0, 1, out.shape[2], device=out.device, dtype=out.dtype)
        index = (ranks * (ref.shape[2] - 1)).round().long()
    for _ in range(iterations):
        basis, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator).to(out))
        projected = basis.T @ out  # (N, 3, P)
        wanted = torch.sort(basis.T @ ref, dim=2).values
        wanted = (wanted if index is None else wanted[..., index]).expand_as(projected)
        moved = torch.empty_like(projected).scatter_(2, projected.argsort(dim=2), wanted)
        out = out + basis @ (moved - projected)
    return out.view_as(images).clamp(0, 1)
