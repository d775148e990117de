"""The EfficientNet-Lite0 speed-up behind :func:`convlens.attribution.occlusion_attribution`: recompute the
early layers only on crops around each occluded window. Only this architecture; every other network takes
the generic path (Captum's ``Occlusion`` on a fast copy).
"""
from __future__ import annotations

import torch
from torch import nn


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


def occlusion_drops(net, image, corners, window, baseline, batch_size, value_of) -> torch.Tensor:
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
