"""The model-randomization sanity test (Adebayo et al. 2018): re-initialize the network from the top down
and measure how much each explanation changes.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convlens.model import fast_copy


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
