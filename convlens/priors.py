"""Feature visualization with better priors (notebook 3, "Going further: better priors").

The recipe of Olah et al. 2017 ("Feature Visualization") and Mordvintsev et al. 2018 ("Differentiable Image
Parameterizations"), written for this kit in torch:

* the image is not optimized pixel by pixel but through its **Fourier spectrum**, scaled by 1 / f, so every
  spatial frequency starts with about the same energy per octave as a natural photo and a gradient step
  does not favour the finest (noisiest) frequencies;
* the three channels live in a **decorrelated colour space** (the square root of ImageNet's colour
  covariance), then a sigmoid maps them into [0, 1]: a step changes brightness and colour in proportions
  natural images have, instead of pushing R, G and B apart;
* each step sees a **randomly transformed view** (padding, shifts, scale 0.9-1.1, rotation +-10 degrees,
  a slight blur): only patterns that survive these transformations pay off;
* **Adam** does the ascent.

Two additions for readability, both measured in bench/bench_feature_vis.py and tools/blind_test.py: a Gaussian
prior on the whitened spectrum (a photo's contrast, not a saturated one) and, for class images, transparency
over random backgrounds (Mordvintsev et al. 2018), so the object stands on a plain background.

Images are float RGB in [0, 1], shape (N, 3, H, W).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from convlens.images import gaussian_blur
from convlens.model import extract_features, fast_copy
from convlens.runtime import progress as bar

# Square root of ImageNet's RGB colour covariance (Lucid's matrix; rows: R, G, B), scaled so its largest column
# has norm 1: a unit step along any decorrelated axis moves the pixels by at most about one unit.
COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                            [0.27, 0.00, -0.05],
                            [0.27, -0.09, 0.03]])
COLOUR_SQRT = COLOUR_SQRT / COLOUR_SQRT.norm(dim=0).max()
NATURAL_RMS = 0.2  # RMS of the spectrum coefficients of the shipped photos (128 px, logit of the pixels)


def decorrelated_to_rgb(values: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) values in the decorrelated colour space -> RGB before the sigmoid: ``COLOUR_SQRT @ v``
    at every pixel."""
    return torch.einsum("rc,nchw->nrhw", COLOUR_SQRT.to(values), values)


def rgb_to_decorrelated(rgb: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`decorrelated_to_rgb`."""
    return torch.einsum("cr,nrhw->nchw", torch.linalg.inv(COLOUR_SQRT).to(rgb), rgb)


def fourier_frequencies(height: int, width: int) -> torch.Tensor:
    """Radial frequency (cycles per pixel) of each coefficient of ``torch.fft.rfft2`` on an (H, W) image:
    (H, W // 2 + 1)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return (fx * fx + fy * fy).sqrt()


def spectrum_scale(height: int, width: int, decay_power: float = 1.0) -> torch.Tensor:
    """1 / f ** decay_power per rfft2 coefficient, with f floored at the lowest non-zero frequency (the mean
    would otherwise be infinite): (H, W // 2 + 1)."""
    floor = 1.0 / max(height, width)
    return 1.0 / fourier_frequencies(height, width).clamp_min(floor) ** decay_power


def spectrum_to_image(spectrum: torch.Tensor, height: int, width: int, decay_power: float = 1.0) -> torch.Tensor:
    """Complex (N, C, H, W // 2 + 1) spectrum -> real (N, C, H, W): scale by :func:`spectrum_scale`, then an
    orthonormal inverse real FFT."""
    scale = spectrum_scale(height, width, decay_power).to(spectrum.device)
    return torch.fft.irfft2(spectrum * scale, s=(height, width), norm="ortho")


def image_to_spectrum(image: torch.Tensor, decay_power: float = 1.0) -> torch.Tensor:
    """The inverse of :func:`spectrum_to_image`: real (N, C, H, W) -> the complex spectrum that gives it."""
    height, width = image.shape[-2:]
    return torch.fft.rfft2(image, norm="ortho") / spectrum_scale(height, width, decay_power).to(image.device)


class FourierImage(nn.Module):
    """A batch of images parameterized by a 1/f-scaled spectrum in the decorrelated colour space.

    forward() -> (N, 3, H, W) in (0, 1): ``sigmoid(decorrelated_to_rgb(spectrum_to_image(spectrum)))``.
    The parameter is the spectrum's real and imaginary parts, (N, 3, H, W // 2 + 1, 2), drawn from
    N(0, sd^2), so the first image is faint coloured clouds around mid-grey.
    """

    def __init__(self, batch: int, size: int, decay_power: float = 1.0, sd: float = 0.01,
                 generator: torch.Generator | None = None, device=None, start: torch.Tensor | None = None):
        super().__init__()
        self.size, self.decay_power = size, decay_power
        shape = (batch, 3, size, size // 2 + 1, 2)
        if start is None:
            self.spectrum = nn.Parameter((sd * torch.randn(shape, generator=generator)).to(device))
        else:  # (N, 3, H, W) in (0, 1), resized to ``size``: the spectrum that renders it
            start = F.interpolate(start.float(), size=(size, size), mode="bilinear", align_corners=False)
            values = rgb_to_decorrelated(torch.logit(start.clamp(1e-4, 1 - 1e-4)))
            self.spectrum = nn.Parameter(torch.view_as_real(image_to_spectrum(values, decay_power)).to(device))

    def forward(self) -> torch.Tensor:
        values = spectrum_to_image(torch.view_as_complex(self.spectrum), self.size, self.size, self.decay_power)
        return torch.sigmoid(decorrelated_to_rgb(values))


def random_affine(images: torch.Tensor, generator: torch.Generator, scale=(0.9, 1.1), degrees: float = 10.0,
                  shift: float = 8.0, padding_mode: str = "reflection") -> torch.Tensor:
    """Each image zoomed by a factor in ``scale``, rotated by up to +-``degrees`` and shifted by up to
    +-``shift`` pixels (uniform draws from ``generator``, one set per image), bilinear, same size.
    Differentiable with respect to ``images``."""
    n, _, height, width = images.shape
    draw = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=generator)
    zoom = draw(*scale)
    angle = draw(-degrees, degrees) * math.pi / 180
    tx, ty = draw(-shift, shift) * 2 / width, draw(-shift, shift) * 2 / height
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    # affine_grid maps output to input coordinates: a zoom by s samples the input at coordinates / s.
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def lucid_view(images: torch.Tensor, generator: torch.Generator, pad: int = 12, jitter: int = 8,
               scale=(0.9, 1.1), degrees: float = 10.0) -> torch.Tensor:
    """Lucid's transformation robustness: pad with grey, then shift by up to +-``jitter`` pixels, zoom by
    ``scale`` and rotate by up to +-``degrees`` (one random draw per image). (N, 3, H + 2 pad, W + 2 pad)."""
    padded = F.pad(images, (pad,) * 4, value=0.5)
    return random_affine(padded, generator, scale, degrees, jitter, padding_mode="border")


def random_backgrounds(count: int, size: int, generator: torch.Generator, flat: float = 0.5) -> torch.Tensor:
    """Random backgrounds, (count, 3, size, size) in [0, 1]: a uniform grey with probability ``flat`` (the kind
    the result is shown on), else a smooth colour field (a 4 x 4 grid of random colours, bicubic-upsampled). A
    transparent image is composited on new ones at every step."""
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    fields = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    greys = torch.rand(count, 1, 1, 1, generator=generator).expand(count, 3, size, size)
    pick = (torch.rand(count, 1, 1, 1, generator=generator) < flat).expand_as(fields)
    return torch.where(pick, greys, fields)


def optimize_image(model, objective, batch: int, size: int = 128, steps: int = 128, lr: float = 0.05,
                   transparent: bool = False, alpha_weight: float = 10.0, prior: float = 30.0, blur: float = 1.5,
                   decay_power: float = 1.0, pad: int = 12, jitter: int = 8, scale=(0.9, 1.1),
                   degrees: float = 10.0, background: float = 0.9, flat: float = 0.5, seed: int = 0,
                   progress: bool = True, desc: str = "better priors", start=None):
    """Raise ``objective(fast_model, views) -> (N,)`` with Adam on a :class:`FourierImage` seen through
    :func:`lucid_view`, blurred by ``blur`` pixels (0: not blurred).

    ``prior`` weighs a Gaussian prior on the spectrum, ``prior * mean(|c|^2) / NATURAL_RMS^2`` per image: the
    parameterization whitens photos, so this asks for the contrast of a photo at every frequency.
    With ``transparent`` a second FourierImage gives an opacity (its first channel); each step composites the
    image on :func:`random_backgrounds` and pays ``alpha_weight * mean(opacity)``, so only what the objective
    needs stays opaque (Mordvintsev et al. 2018). The model runs as :func:`convlens.model.fast_copy`.

    ``start``: the (colour, opacity) layers of an earlier run, (N, 3, h, w) and (N, 1, h, w), to go on from
    (resized to ``size``); ``None`` starts from faint noise drawn from ``seed``.

    Returns:
        images (N, 3, size, size) in [0, 1] (transparent: composited on grey ``background``), the colour
        layer (N, 3, size, size) and the opacity (N, 1, size, size) (all ones when not transparent); detached.
    """
    fast = fast_copy(model)
    device = next(fast.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    colour_start, alpha_start = start if start is not None else (None, None)
    colour = FourierImage(batch, size, decay_power, generator=generator, device=device, start=colour_start)
    layers = [colour]
    if transparent:  # the opacity is the first channel of a second image
        layers.append(FourierImage(batch, size, decay_power, generator=generator, device=device,
                                   start=None if alpha_start is None else alpha_start.expand(-1, 3, -1, -1)))
    optimizer = torch.optim.Adam([layer.spectrum for layer in layers], lr=lr)

    def render(back):
        rgb = colour()
        alpha = layers[1]()[:, :1] if transparent else torch.ones_like(rgb[:, :1])
        return alpha * rgb + (1 - alpha) * back, rgb, alpha

    for _ in bar(range(steps), desc=desc, enabled=progress):
        back = random_backgrounds(batch, size, generator, flat).to(device) if transparent else 0.0
        image, _, alpha = render(back)
        views = lucid_view(image, generator, pad, jitter, scale, degrees)
        if blur:
            views = gaussian_blur(views, blur)
        loss = -objective(fast, views).sum()
        loss = loss + prior * batch * sum(layer.spectrum.pow(2).mean() for layer in layers) / NATURAL_RMS ** 2
        if transparent:
            loss = loss + alpha_weight * batch * alpha.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return tuple(t.detach() for t in render(background))



# What people made of these images: a dated result of tools/blind_test.py's protocol (eight classes drawn with a
# recorded seed from its pool, before any image was made; each method's sheet, untitled and shuffled, shown to
# a viewer who had not seen it; free naming first, then a choice among 16 names), run by the reviewers. It is
# cited, never measured by a notebook cell: the cell prints it with its date and settings.
BLIND_TEST = {"date": "2026-12-04",
              "settings": "better priors: class_images at 128 px, 96 steps, transparent; "
                          "pixel space: the exercise's loop at 224 px, 150 steps"}
BLIND_NAMING = {"better priors": {"free": 3, "forced": 4, "of": 8},
                "pixel space": {"free": 0, "forced": 3, "of": 8}}

def class_images(model, targets, size: int = 128, steps: int = 128, seed: int = 0, progress: bool = True,
                 objective: str = "score", restarts: int = 1, final_size: int = 0, final_steps: int = 0,
                 **options):
    """One image per target class, all in one batch; ``options`` go to :func:`optimize_image`
    (``transparent=True`` for objects on a plain background).

    Args:
        objective: ``"score"`` raises the class's raw score (before the softmax); ``"log_probability"`` its
            log-softmax, which also pushes the other classes down.
        restarts: runs from ``restarts`` seeds (``seed``, ``seed + 1``, ...), keeping per class the image that
            stays most readable to the same network under random views (:func:`robustness`); never Lite2.
        final_size, final_steps: then go on for ``final_steps`` steps at ``final_size`` px from the upsampled
            layers (0: no final pass).
    Returns what :func:`optimize_image` returns; the images first.
    """
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1)

    def raise_class(net, views):
        logits = net(views)
        if objective == "log_probability":
            logits = logits.log_softmax(dim=1)
        elif objective != "score":
            raise ValueError(f"objective must be 'score' or 'log_probability', not {objective!r}")
        return logits.gather(1, targets.to(views.device)[:, None])[:, 0]

    best, best_robust = None, None
    for restart in range(restarts):
        run = optimize_image(model, raise_class, len(targets), size, steps, seed=seed + restart, progress=progress,
                             desc="class images, better priors", **options)
        if restarts > 1:
            robust = robustness(model, run[0], targets, transforms=8, seed=seed + restart)
            if best is None:
                best, best_robust = list(run), robust
            else:
                better = robust > best_robust
                best = [torch.where(better.view(-1, 1, 1, 1), new, old) for new, old in zip(run, best)]
                best_robust = torch.maximum(robust, best_robust)
        else:
            best = list(run)
    if final_steps:
        best = optimize_image(model, raise_class, len(targets), final_size, final_steps, seed=seed,
                              progress=progress, desc="class images, final pass", start=(best[1], best[2]),
                              **options)
    return tuple(best)


# Candidate recipes for class images, compared on classes nobody picked by bench/bench_feature_vis.py (the
# table's rows) and shown to people by tools/blind_test.py --candidates. Each is a set of class_images options.
CANDIDATES = {
    "today": dict(size=128, steps=96, transparent=True),
    "224px": dict(size=224, steps=96, transparent=True),
    "logprob": dict(size=128, steps=96, transparent=True, objective="log_probability"),
    "strong_views": dict(size=128, steps=96, transparent=True, scale=(0.7, 1.3), degrees=20.0, jitter=16),
    "restarts3": dict(size=128, steps=64, transparent=True, restarts=3),
    "final_224": dict(size=128, steps=80, transparent=True, final_size=224, final_steps=24),
    "opaque": dict(size=128, steps=96, transparent=False),
    "more_steps": dict(size=128, steps=192, transparent=True),
}
# The recipe notebook 3 runs: the table's best row, 6.5 s per class on one thread (the notebook's setting on
# 2 cores), so its three classes fit the section's time.
NOTEBOOK_CANDIDATE = "224px"
# What bench/bench_feature_vis.py measured (cited by notebook 3, not measured there): the screen's mean share,
# over 16 classes drawn by a recorded seed and images made with seeds 0 and 1, per candidate.
CANDIDATE_TABLE = {"date": "2026-12-06", "seed": 20261206, "classes": 16,
                   "shares": {"today": 0.67, "224px": 0.92, "final_224": 0.86, "restarts3": 0.77,
                              "more_steps": 0.74, "strong_views": 0.68, "logprob": 0.44, "opaque": 0.44}}


def channel_image(model, layer: str, channel: int, size: int = 128, steps: int = 96, seed: int = 0,
                  progress: bool = True, **options):
    """An image that excites one channel of ``layer`` (its mean activation); ``options`` go to
    :func:`optimize_image`. Returns what :func:`optimize_image` returns; the image (1, 3, size, size) first."""

    def objective(net, views):
        return extract_features(net, views, [layer])[layer][:, channel].mean(dim=(1, 2))

    return optimize_image(model, objective, 1, size, steps, seed=seed, progress=progress,
                          desc=f"{layer} channel {channel}, better priors", **options)


def robustness(model, images: torch.Tensor, targets, transforms: int = 32, scale=(0.8, 1.2), degrees: float = 15.0,
               shift: float = 16.0, seed: int = 0) -> torch.Tensor:
    """How readable an image stays for the network: p(target) averaged over ``transforms`` random views
    (zoom in ``scale``, rotation up to +-``degrees``, shift up to +-``shift`` pixels; reflected borders).
    Stronger than the transformations used while optimizing. Returns (N,) mean probabilities."""
    fast = fast_copy(model)
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1, 1).to(images.device)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(images), device=images.device)
    with torch.no_grad():
        for _ in range(transforms):
            views = random_affine(images, generator, scale, degrees, shift)
            total += fast(views.contiguous(memory_format=torch.channels_last)).softmax(dim=1).gather(1, targets)[:, 0]
    return total / transforms


def screen(images: torch.Tensor, targets, judge=None, views: int = 16, size: int = 260, scale=(0.8, 1.2),
           degrees: float = 15.0, shift: float = 16.0, top: int = 5, seed: int = 0) -> torch.Tensor:
    """A second network's opinion of generated images: the share of ``views`` random views in which the target
    class is among the top ``top`` classes of EfficientNet-Lite2 (``judge``; loaded when ``None``).

    Each image (N, 3, H, W) in [0, 1] is resized to ``size`` px (Lite2's training size), then each view zooms by
    a factor in ``scale``, rotates by up to +-``degrees`` and shifts by up to +-``shift`` px (reflected borders;
    the same draws from ``seed`` for every call). Returns (N,) shares in [0, 1].

    This is a screen, not an objective: nothing in the kit optimizes against it. A sibling network shares some
    pixel patterns with Lite0, so a high share does not prove a person can name the image (tools/blind_test.py
    makes sheets for people); single views at 224 px are not used because they pass nearly everything.
    """
    from convlens.model import load_model

    judge = fast_copy(judge if judge is not None else load_model(images.device, arch="efficientnet_lite2"))
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1, 1).to(images.device)
    resized = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    generator = torch.Generator().manual_seed(seed)
    hits = torch.zeros(len(images), device=images.device)
    with torch.no_grad():
        for _ in range(views):
            view = random_affine(resized, generator, scale, degrees, shift)
            logits = judge(view.contiguous(memory_format=torch.channels_last))
            hits += (logits.topk(top, dim=1).indices == targets).any(dim=1).float()
    return hits / views
