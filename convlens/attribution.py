"""Attribution methods the notebooks use next to the students' own: fast Captum-equivalent occlusion and
integrated gradients, cost counting, superpixel masks, deletion / insertion curves (Petsiuk et al. 2018),
the model-randomization test (Adebayo et al. 2018) and the Grad-CAM composite's mass measure.

Images are float RGB in [0, 1], shape (N, 3, H, W); targets are (N,) int64 ImageNet indices.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.images import gaussian_blur
from convlens.model import as_targets, fast_copy


def _channels_last(images: torch.Tensor) -> torch.Tensor:
    """The same values stored NHWC (a no-op when they already are)."""
    return images.contiguous(memory_format=torch.channels_last)


def attribution_map(attributions: torch.Tensor, reduce: str = "abs_max") -> torch.Tensor:
    """(N, 3, H, W) attributions -> (N, H, W) map for ranking and plotting.

    ``reduce``: ``"abs_max"`` (max over channels of |a|, as for saliency), ``"abs_sum"`` (sum of |a|) or
    ``"sum"`` (signed sum over channels, e.g. for Integrated Gradients' completeness).
    """
    a = attributions.detach()
    if reduce == "abs_max":
        return a.abs().amax(dim=1)
    if reduce == "abs_sum":
        return a.abs().sum(dim=1)
    if reduce == "sum":
        return a.sum(dim=1)
    raise ValueError(f"reduce must be 'abs_max', 'abs_sum' or 'sum', got {reduce!r}")


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

    from tqdm.auto import tqdm

    maps = []
    with torch.inference_mode():
        for i in tqdm(range(n), desc="occlusion", disable=not progress, leave=False):
            image = _channels_last(images[i:i + 1])
            if not split:  # another network or size: Captum itself, batched, on the fast copy
                from captum.attr import Occlusion

                maps.append(Occlusion(fast).attribute(image, sliding_window_shapes=(channels, window, window),
                                                      strides=stride, baselines=baseline, target=targets[i:i + 1],
                                                      perturbations_per_eval=batch_size)[0, 0])
                continue
            drops = _occlusion_drops_lite0(fast, image, corners, window, baseline, batch_size,
                                           lambda logits: value_of(logits, targets[i].expand(len(logits))))
            columns = drops.view(1, 1, -1).expand(1, window * window, -1)
            total = F.fold(columns, padded, window, stride=stride)[0, 0, :height, :width]
            maps.append(total / count)
    return torch.stack(maps).unsqueeze(1).expand(n, channels, height, width).clone()


# Incremental occlusion for EfficientNet-Lite0. The forward pass is cut into parts; a grey square changes
# the output of each early part only near the square, so those parts are recomputed on a crop around it and
# pasted into the unoccluded activations. Each entry: (stride ratio, reads before, reads after): output
# position p of the part reads input positions ratio*p - before .. ratio*p + after (TF "same" padding makes
# the range lopsided; tests/test_saliency.py measures it by perturbing single positions).
_LITE0_CUTS = ((4, 6, 12),  # pixels -> stem, blocks 0-2 -> stride 4, 24 channels
               (2, 5, 7))   # stride 4 -> blocks 3-4 -> stride 8, 40 channels


def _lite0_parts(net: nn.Module) -> list:
    """EfficientNetLite0.forward in three parts: (N, 3, H, W) pixels -> (N, 24, H/4, W/4) -> (N, 40, H/8, W/8)
    -> (N, 1000) logits; composed they give ``net(x)``."""
    blocks = net._blocks
    early, middle, late = nn.Sequential(*blocks[:3]), nn.Sequential(*blocks[3:5]), nn.Sequential(*blocks[5:])
    return [lambda x: early(net.stem(x)), middle, lambda h: net.classify(late(h))]


def _crop_plans(affected: list, size: int, cut: tuple[int, int, int]):
    """Along one axis, for each window's ``affected`` input range [a0, a1) of a cut: the outputs [p0, p1) that
    read it and the start of the input crop that recomputes them. All crops get one length (returned), a
    multiple of the cut's ratio, so that a batch stacks and each crop's strided grid and edge padding match
    the full map's; crops near the border shift inward."""
    ratio, before, after = cut
    spans = []
    for a0, a1 in affected:
        p0, p1 = max(0, -(-(a0 - after) // ratio)), min(size // ratio, (a1 - 1 + before) // ratio + 1)
        lo = max(0, (ratio * p0 - before) // ratio * ratio)
        hi = min(size, -(-(ratio * (p1 - 1) + after + 1) // ratio) * ratio)
        spans.append((lo, hi, p0, p1))
    length = max(hi - lo for lo, hi, _, _ in spans)
    return [(min(lo, size - length), p0, p1) for lo, _, p0, p1 in spans], length


def _occlusion_drops_lite0(net, image, corners, window, baseline, batch_size, value_of) -> torch.Tensor:
    """value(image) - value(image with each window occluded), (len(corners),), recomputing the early parts
    of the forward only on crops around each window. image: (1, 3, H, W) channels_last, H and W multiples
    of 4 (of 8 to use the second cut too)."""
    parts = _lite0_parts(net)
    size = image.shape[-2:]
    cuts = _LITE0_CUTS if size[0] % 8 == 0 and size[1] % 8 == 0 else _LITE0_CUTS[:1]
    clean = [image]  # the unoccluded activations at each cut
    for part in parts[:len(cuts)]:
        clean.append(part(clean[-1]))
    h = clean[-1]
    for part in parts[len(cuts):]:
        h = part(h)
    original = value_of(h)

    # plans[k][axis]: per window (crop start, first and end output) for cut k; lengths[k][axis]: crop length
    plans, lengths = [], []
    affected = [[(top, min(top + window, size[0])) for top, _ in corners],
                [(left, min(left + window, size[1])) for _, left in corners]]
    for cut in cuts:
        (rows, row_len), (cols, col_len) = (_crop_plans(affected[axis], size[axis], cut) for axis in (0, 1))
        plans.append((rows, cols))
        lengths.append((row_len, col_len))
        affected = [[(p0, p1) for _, p0, p1 in rows], [(p0, p1) for _, p0, p1 in cols]]
        size = (size[0] // cut[0], size[1] // cut[0])

    drops = torch.empty(len(corners), device=image.device, dtype=original.dtype)
    for start in range(0, len(corners), batch_size):
        chunk = range(start, min(start + batch_size, len(corners)))
        changed = []  # per window: the recomputed outputs of the last cut and their top-left position
        for k, cut in enumerate(cuts):
            (rows, cols), (row_len, col_len) = plans[k], lengths[k]
            crops = []
            for j, i in enumerate(chunk):
                r_lo, c_lo = rows[i][0], cols[i][0]
                crop = clean[k][:, :, r_lo:r_lo + row_len, c_lo:c_lo + col_len].clone()
                if k == 0:
                    top, left = corners[i]
                    crop[:, :, max(top - r_lo, 0):top + window - r_lo, max(left - c_lo, 0):left + window - c_lo] = baseline
                else:
                    _paste(crop, (r_lo, c_lo), *changed[j])
                crops.append(crop)
            out = parts[k](torch.cat(crops).contiguous(memory_format=torch.channels_last))
            changed = []
            for j, i in enumerate(chunk):
                (r_lo, p0, p1), (c_lo, q0, q1) = rows[i], cols[i]
                r_out, c_out = r_lo // cut[0], c_lo // cut[0]
                changed.append((out[j:j + 1, :, p0 - r_out:p1 - r_out, q0 - c_out:q1 - c_out], (p0, q0)))
        h = clean[-1].expand(len(chunk), -1, -1, -1).clone(memory_format=torch.channels_last)
        for j, (patch, at) in enumerate(changed):
            _paste(h[j:j + 1], (0, 0), patch, at)
        for part in parts[len(cuts):]:
            h = part(h)
        drops[start:start + len(chunk)] = original[0] - value_of(h)
    return drops


def _paste(target: torch.Tensor, target_origin, patch: torch.Tensor, patch_origin) -> None:
    """Write ``patch`` (whose top-left sits at ``patch_origin`` in full-map coordinates) into ``target``
    (top-left at ``target_origin``), keeping only the part that overlaps."""
    (tr, tc), (pr, pc) = target_origin, patch_origin
    th, tw = target.shape[-2:]
    ph, pw = patch.shape[-2:]
    r0, r1 = max(tr, pr), min(tr + th, pr + ph)
    c0, c1 = max(tc, pc), min(tc + tw, pc + pw)
    if r0 < r1 and c0 < c1:
        target[..., r0 - tr:r1 - tr, c0 - tc:c1 - tc] = patch[..., r0 - pr:r1 - pr, c0 - pc:c1 - pc]


def integrated_gradients(model: nn.Module, images: torch.Tensor, target, steps: int = 50, baseline: float = 0.0,
                         batch_size: int = 10) -> torch.Tensor:
    """Captum's ``IntegratedGradients`` (same path points and weights), batched on a fast copy of the model.

    attribution = (x - x0) * sum_k w_k * d s_y / dx at x0 + a_k (x - x0), with Captum's Gauss-Legendre
    points a_k and weights w_k. Evaluates ``batch_size`` path points per forward/backward pass on a
    :func:`convlens.model.fast_copy`, keeping every tensor channels_last. The result equals Captum's
    ``IntegratedGradients(model).attribute(images, baselines=baseline, target=target, n_steps=steps)`` up to
    float round-off.

    Args:
        model: classifier (a :func:`convlens.model.fast_copy` is used as is; any other model is copied).
        images: (N, 3, H, W) in [0, 1].
        target: int or (N,) class indices (attributions of the logit).
        steps: number of path points.
        baseline: constant baseline image value (0: black).
        batch_size: path points per forward/backward pass.
    Returns:
        (N, 3, H, W) attributions; their sum is close to score(image) - score(baseline).
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    weights, points = step_sizes(steps), alphas(steps)
    fast = fast_copy(model)
    targets = as_targets(target, images.shape[0], images.device)
    result = []
    for image, label in zip(_channels_last(images.detach()), targets):
        start = torch.full_like(image, baseline)
        total = torch.zeros_like(image)
        for first in range(0, steps, batch_size):
            alpha = torch.tensor(points[first:first + batch_size], dtype=image.dtype, device=image.device)
            weight = torch.tensor(weights[first:first + batch_size], dtype=image.dtype, device=image.device)
            path = start + alpha.view(-1, 1, 1, 1) * (image - start)
            path = path.contiguous(memory_format=torch.channels_last).requires_grad_(True)
            (grad,) = torch.autograd.grad(fast(path)[:, label].sum(), path)
            total += (weight.view(-1, 1, 1, 1) * grad).sum(dim=0)
        result.append((image - start) * total)
    return torch.stack(result).contiguous()


@dataclass
class PassCounter:
    """Counts the images that go through a model's forward and backward passes, and the wall time.

    Use as ``with PassCounter(model) as cost: ...``; then ``cost.forward``, ``cost.backward`` (images) and
    ``cost.seconds``. Hooks are removed on exit.
    """

    model: nn.Module
    forward: int = 0
    backward: int = 0
    seconds: float = 0.0
    _handle: object = field(default=None, repr=False)
    _start: float = field(default=0.0, repr=False)

    def _hook(self, module, inputs, output) -> None:
        batch = inputs[0].shape[0]
        self.forward += batch
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: self._count_backward(batch))

    def _count_backward(self, batch: int) -> None:
        self.backward += batch

    def __enter__(self) -> "PassCounter":
        self._handle = self.model.register_forward_hook(self._hook)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start
        self._handle.remove()


def superpixels(image: torch.Tensor, segments: int = 48, compactness: float = 0.5, work_size: int = 56,
                seed: int = 0) -> torch.Tensor:
    """Cut an image into roughly ``segments`` compact regions of similar colour (a SLIC-like k-means).

    k-means (scikit-learn) clusters the pixels of a ``work_size`` thumbnail on (row, column, colour);
    ``compactness`` weighs position against colour. The labels are scaled back up (nearest neighbour).

    Args:
        image: (3, H, W) in [0, 1].
    Returns:
        (H, W) int64 labels 0..K-1 on the image's device (K <= ``segments``), usable as a Captum
        ``feature_mask`` after ``[None, None]``.
    """
    from sklearn.cluster import KMeans

    height, width = image.shape[-2:]
    small = F.interpolate(image[None].float(), size=(work_size, work_size), mode="area")[0]
    rows, cols = torch.meshgrid(torch.linspace(0, 1, work_size), torch.linspace(0, 1, work_size), indexing="ij")
    features = torch.cat([compactness * torch.stack([rows, cols]), small.cpu()]).reshape(5, -1).T.numpy()
    labels = KMeans(n_clusters=segments, n_init=1, random_state=seed).fit_predict(features)
    _, labels = np.unique(labels, return_inverse=True)  # relabel to 0..K-1 without gaps
    grid = torch.as_tensor(labels.reshape(1, 1, work_size, work_size), dtype=torch.float32)
    full = F.interpolate(grid, size=(height, width), mode="nearest")[0, 0]
    return full.to(device=image.device, dtype=torch.int64)


def causal_curves(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor,
                  mode: str = "deletion", steps: int = 16, blur_sigma: float = 8.0,
                  batch_size: int = 64) -> torch.Tensor:
    """Probability of the class as the most important pixels (by ``maps``) are deleted or inserted.

    Deletion starts from the image and sets the top-ranked pixels to 0 (black), a fraction k / steps at
    step k; a good map makes the probability fall fast. Insertion starts from a blurred copy (Gaussian,
    ``blur_sigma`` pixels) and puts the top-ranked original pixels back; a good map makes it rise fast.
    Ties in ``maps`` are broken by pixel order (row-major).

    Args:
        model: classifier (copied to channels_last unless it already is a :func:`convlens.model.fast_copy`).
        images: (N, 3, H, W) in [0, 1]; labels: (N,) classes.
        maps: (N, H, W) importance, larger = more important (any range; only the ranking matters).
        mode: ``"deletion"`` or ``"insertion"``.
        steps: number of steps; the curve has steps + 1 points at fractions 0, 1/steps, ..., 1.
    Returns:
        (N, steps + 1) float probabilities in [0, 1].
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    n, _, height, width = images.shape
    if maps.shape != (n, height, width):
        raise ValueError(f"maps must be (N, H, W) = {(n, height, width)}, got {tuple(maps.shape)}")
    fast = fast_copy(model)
    labels = labels.to(images.device)
    pixels = height * width
    order = maps.detach().reshape(n, -1).to(images.device).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=images.device).expand(n, -1))
    counts = torch.tensor([round(k * pixels / steps) for k in range(steps + 1)], device=images.device)
    if mode == "deletion":
        start, end = images, torch.zeros_like(images)
    else:
        start, end = gaussian_blur(images, blur_sigma), images
    curves = []
    with torch.inference_mode():
        for i in range(n):
            # revealed[k, p]: pixel p has been switched from start to end by step k.
            revealed = (rank[i].view(1, -1) < counts.view(-1, 1)).view(steps + 1, 1, height, width)
            probs = []
            for first in range(0, steps + 1, batch_size):
                mask = revealed[first:first + batch_size]
                batch = _channels_last(torch.where(mask, end[i:i + 1], start[i:i + 1]))
                probs.append(F.softmax(fast(batch), dim=1)[:, labels[i]])
            curves.append(torch.cat(probs))
    return torch.stack(curves)


def causal_scores(curves: torch.Tensor) -> torch.Tensor:
    """Area under (N, steps + 1) curves over the fraction axis [0, 1] (trapezoid rule) -> (N,) in [0, 1]."""
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[-1] - 1), dim=-1)


def cascade_stages(model: nn.Module, block_groups: int = 4) -> list[tuple[str, list[str]]]:
    """Stages of a top-down cascade for EfficientNet-Lite0: (stage name, module paths to re-initialize).

    Order: the classifier (fc), the head conv, then the 16 blocks in ``block_groups`` groups from the top,
    then the stem. Other architectures: their named layers in reverse order.
    """
    if getattr(model, "arch", "") != "efficientnet_lite0":
        names = [(short, path) for short, path in getattr(model, "layer_names", {}).items()
                 if any(True for _ in model.get_submodule(path).parameters())]
        return [(short, [path]) for short, path in reversed(names)]
    blocks = list(range(len(model._blocks)))[::-1]
    size = math.ceil(len(blocks) / block_groups)
    groups = [blocks[i:i + size] for i in range(0, len(blocks), size)]
    stages = [("fc", ["_fc"]), ("head", ["_conv_head", "_bn1"])]
    stages += [(f"blocks {g[-1]}-{g[0]}", [f"_blocks.{b}" for b in g]) for g in groups]
    stages.append(("stem", ["_conv_stem", "_bn0"]))
    return stages


def _reinitialize(module: nn.Module) -> None:
    """Default (PyTorch) initialization for every submodule that has one; BatchNorm also forgets its
    running statistics."""
    for sub in module.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


@dataclass
class CascadeResult:
    """Outcome of :func:`cascading_randomization`.

    stages: ["original", <stage names>]; after stage s every stage up to s is randomized.
    maps: method -> (S, N, H, W) maps per stage; correlations: method -> (S, N) numpy Spearman rank
    correlations between each stage's map and the original map (1.0 for "original").
    """

    stages: list[str]
    maps: dict[str, torch.Tensor]
    correlations: dict[str, np.ndarray]


def cascading_randomization(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, explainers: dict,
                            stages=None, seed: int = 0) -> CascadeResult:
    """Re-initialize the model from the top layer down and watch each explanation change.

    A map that stays the same when the weights it claims to explain are random does not explain the
    model. The caller's model is not changed (this works on a channels_last copy).

    Args:
        model: classifier.
        images: (N, 3, H, W) in [0, 1]; labels: (N,) classes to explain (kept fixed throughout).
        explainers: name -> function(model, images, labels) -> (N, H, W) map.
        stages: list of (name, [module paths]) applied cumulatively; default :func:`cascade_stages`.
        seed: random initialization seed (the global RNG state is restored afterwards).
    Returns:
        a :class:`CascadeResult`.
    """
    from scipy.stats import spearmanr

    randomized = fast_copy(model)
    if randomized is model:  # already a fast copy: randomize a copy of it, never the caller's model
        randomized = copy.deepcopy(model)
    stages = cascade_stages(model) if stages is None else stages
    names = ["original"] + [name for name, _ in stages]
    per_stage = {method: [] for method in explainers}
    with torch.random.fork_rng(devices=[]):
        for index, (name, paths) in enumerate([("original", [])] + list(stages)):
            torch.manual_seed(seed + index)
            for path in paths:
                _reinitialize(randomized.get_submodule(path))
            for method, explain in explainers.items():
                per_stage[method].append(explain(randomized, images, labels).detach().float().cpu())
    maps = {method: torch.stack(values) for method, values in per_stage.items()}
    correlations = {}
    for method, stack in maps.items():
        original = stack[0].reshape(stack.shape[1], -1).numpy()
        rho = np.ones((stack.shape[0], stack.shape[1]))
        for s in range(1, stack.shape[0]):
            current = stack[s].reshape(stack.shape[1], -1).numpy()
            for i in range(stack.shape[1]):
                r = spearmanr(original[i], current[i]).statistic
                rho[s, i] = 0.0 if np.isnan(r) else r  # a constant map has no ranking
        correlations[method] = rho
    return CascadeResult(names, maps, correlations)


def mass_in_columns(maps: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Fraction of each non-negative map's total that lies in columns [start, stop). maps: (N, H, W) -> (N,)."""
    total = maps.sum(dim=(1, 2)).clamp_min(torch.finfo(maps.dtype).tiny)
    return maps[:, :, start:stop].sum(dim=(1, 2)) / total
