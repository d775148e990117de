"""Counting what an attribution method costs: images through the forward and backward passes, wall time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn


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
