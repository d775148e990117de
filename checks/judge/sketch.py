"""A compact sketch of a tensor (a count sketch: each element added, with a random sign, into one of 256
buckets, the same for every tensor of that size), so the reference build can store what a generated mutant
(tools/mutants.py) outputs without storing the outputs themselves. The relative L2 distance between two
sketches estimates the one between the tensors."""
from __future__ import annotations

import functools

import torch

BUCKETS = 256


@functools.lru_cache(maxsize=64)
def _hash(numel: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(numel)
    return (torch.randint(0, BUCKETS, (numel,), generator=generator),
            torch.randint(0, 2, (numel,), generator=generator).to(torch.float64) * 2 - 1)


def sketch(tensor: torch.Tensor) -> torch.Tensor:
    """(BUCKETS + 1,) float64: the count sketch of ``tensor``'s values, then its element count. NaN or inf
    values give a sketch of NaNs."""
    values = tensor.detach().to("cpu", torch.float64).flatten()
    if not bool(torch.isfinite(values).all()):
        return torch.full((BUCKETS + 1,), float("nan"), dtype=torch.float64)
    index, sign = _hash(values.numel())
    out = torch.zeros(BUCKETS, dtype=torch.float64).index_add_(0, index, sign * values)
    return torch.cat([out, torch.tensor([float(values.numel())], dtype=torch.float64)])


def distance(a: torch.Tensor, b: torch.Tensor, left_out: int = 0) -> float:
    """Relative L2 distance of two sketches (of b's size), over all buckets but the ``left_out`` that differ
    most; inf for tensors of different sizes or non-finite values."""
    if a[-1] != b[-1] or not bool(torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("inf")
    gaps, scale = (a[:-1] - b[:-1]).abs(), b[:-1]
    if left_out:
        kept = gaps.argsort()[: BUCKETS - left_out]
        gaps, scale = gaps[kept], scale[kept]
    return float(gaps.norm()) / max(float(scale.norm()), 1e-12)


def left_out(numel: int) -> int:
    """How many buckets :func:`distance` may set aside for a tensor of ``numel`` elements: as many as its worst
    0.1 % (a few values another machine's round-off flips at a kink or a clamp fall into that many buckets at
    most), and no more than an eighth of them, from 1000 elements on."""
    return min(numel // 1000, BUCKETS // 8)
