"""The fixed pieces the checks run with: stand-ins for the other exercises, and the models a case names.

Stand-ins are simple functions of every argument with the callee's signature, deliberately not the
exercises: while one exercise is checked they replace the others it calls, so a bug costs one check, and
the check still sees whether the arguments were passed on. A spec names its stand-ins; a stand-in that
needs something of the case (a direction per class) is made from the case's inputs.

Models (:data:`MODELS`): ``pretrained`` (the kit's EfficientNet-Lite0), ``inplace`` (the same with in-place
activations), ``raising`` (the same, but its forward pass raises at its last layer, after every hook a
student registers on an earlier layer has run), ``smooth`` (a small network without kinks, so that loops
are reproducible on any device), ``wavy`` (a small smooth network along whose paths a class is won and lost)
and ``features`` (a small smooth feature network with named layers, for the style-transfer loop).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

# ------------------------------------------------------------------------------------------------ stand-ins

def stand_in_guided_backprop(model, images, labels):
    return (images.detach() - 0.5) * (1 + 0.25 * (labels.to(images.device) % 5).to(images.dtype).view(-1, 1, 1, 1))


def stand_in_grad_cam(model, images, labels, layer="head", normalize=True):
    maps = images.detach().mean(dim=1) + 0.1
    maps = maps * (1 + 0.5 * (labels.to(images.device) % 3).to(images.dtype).view(-1, 1, 1))
    maps = maps * (1 + 0.1 * len(str(layer)))
    return maps / maps.sum(dim=(1, 2), keepdim=True) if normalize else 3.0 * maps


def stand_in_gram_matrix(features, normalize=True):
    means = features.flatten(2).mean(dim=2)
    table = means[:, :, None] - 0.5 * means[:, None, :]
    return table / features.shape[1] if normalize else table


def stand_in_content_loss(content_weight, current, target):
    return content_weight * torch.cosh(current - target).mean()


def stand_in_style_loss(feats, style_layers, style_targets, style_weights):
    total = 0.0
    for layer, target, weight in zip(style_layers, style_targets, style_weights):
        total = total + weight * torch.cosh(feats[layer].mean(dim=(2, 3)) - target.mean(dim=2)).sum()
    return total


def stand_in_tv_loss(img, tv_weight):
    # Rewards pixels far from mid-grey, so a loop that forgets to clamp leaves [0, 1] and is seen to.
    return -tv_weight * (img - 0.5).pow(2).sum()

def stand_in_fooling_step_for(inputs: dict):
    """The fooling step's stand-in for one case: a fixed direction per class (``inputs["directions"]``),
    not the gradient, that moves each image toward its target."""
    directions = inputs["directions"]

    def stand_in_fooling_step(model, images, targets, step_size):
        return (images.detach() + step_size * directions.to(images)[targets.to(images.device)]).clamp(0, 1)

    return stand_in_fooling_step


def fixed(fn):
    """A stand-in factory for a stand-in that needs nothing of the case."""
    return lambda inputs: fn


# callee -> factory(case inputs) -> its stand-in; a record's ``stand_ins`` names callees from here.
STAND_INS = {"guided_backprop": fixed(stand_in_guided_backprop), "grad_cam": fixed(stand_in_grad_cam),
             "fooling_step": stand_in_fooling_step_for, "content_loss": fixed(stand_in_content_loss),
             "gram_matrix": fixed(stand_in_gram_matrix), "style_loss": fixed(stand_in_style_loss),
             "tv_loss": fixed(stand_in_tv_loss)}


# ------------------------------------------------------------------------------------------------ small networks

def _frozen(net: nn.Module, weights: dict) -> nn.Module:
    net.load_state_dict(weights)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def smooth_skeleton() -> nn.Module:
    """A small classifier without kinks (tanh): 3 x H x W images (16 x 16 and other sizes near it) -> 10
    classes, untrained. The pooling to 8 x 8 is the identity at 16 x 16 and lets non-square cases through."""
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(8), nn.Flatten())  # one module: the state dict keeps its keys
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh(), pool, nn.Linear(8 * 8 * 8, 10))


def smooth_network(weights: dict) -> nn.Module:
    """:func:`smooth_skeleton` with ``weights``, frozen. Loops are checked on it: with ReLU networks,
    round-off moves units across their kinks and a few steps amplify that, so a loop's output would differ
    between devices."""
    return _frozen(smooth_skeleton(), weights)


class Sine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(25 * x)


def wavy_skeleton() -> nn.Module:
    """A small smooth classifier whose scores rise and fall along any straight path (sine features):
    3 x 16 x 16 images -> 10 classes, untrained. A fooling loop on it wins, loses and wins its target again."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 16), Sine(), nn.Linear(16, 10))


class FeatureNetwork(nn.Module):
    """A small smooth feature network with named layers c1, c2, c3 (for the style-transfer loop check)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh())
        self.c2 = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.Tanh())
        self.c3 = nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.Tanh())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.c3(self.c2(self.c1(images))).mean(dim=(2, 3))


def wavy_network(weights: dict) -> nn.Module:
    return _frozen(wavy_skeleton(), weights)


def feature_network(weights: dict) -> nn.Module:
    return _frozen(FeatureNetwork(), weights)


class OverBudget(RuntimeError):
    """Raised by a metered model's forward pass once a loop has used up its case's budget of passes."""


class Meter(list):
    """What a metered model saw: ``[passes, lowest pixel, highest pixel, passes that can be differentiated]``
    (the last: with gradients on, of an image that requires grad: a loss evaluation), and in
    ``last_evaluated`` a copy of the image of the last such pass."""

    last_evaluated: torch.Tensor | None = None


@contextlib.contextmanager
def metered(model: nn.Module, budget: int):
    """For the duration, count ``model``'s forward passes and the range of the images it is given. Yields
    a :class:`Meter`; the pass after ``budget`` raises :class:`OverBudget`, so a loop that ignores its step
    budget stops within seconds, with that cause."""
    seen = Meter([0, float("inf"), float("-inf"), 0])

    def count(module, args):
        seen[0] += 1
        if seen[0] > budget:
            raise OverBudget(f"more than {budget} forward passes")
        if args and isinstance(args[0], torch.Tensor) and args[0].numel():
            images = args[0].detach()
            seen[1], seen[2] = min(seen[1], float(images.min())), max(seen[2], float(images.max()))
            if torch.is_grad_enabled() and args[0].requires_grad:
                seen[3] += 1
                seen.last_evaluated = images.clone()

    handle = model.register_forward_pre_hook(count)
    try:
        yield seen
    finally:
        handle.remove()


class Interrupted(RuntimeError):
    """Raised by the ``raising`` model's forward pass, on purpose."""


@contextlib.contextmanager
def raising_forward(model: nn.Module):
    """For the duration, ``model``'s forward pass raises :class:`Interrupted` at its last layer, after every
    earlier layer (and any hook a student put there) has run. The model itself stays the same object, so
    ``get_layer`` and the student's hook registration work as on the plain model."""
    last = [m for m in model.modules() if not list(m.children())][-1]

    def interrupt(module, args, output):
        raise Interrupted("forward pass interrupted on purpose by the check")

    switch = {"on": True}  # the check turns it off for its follow-up pass

    def interrupt_while_on(module, args, output):
        if switch["on"]:
            interrupt(module, args, output)

    handle = last.register_forward_hook(interrupt_while_on)
    try:
        yield switch
    finally:
        handle.remove()


@dataclass(frozen=True)
class ModelFixture:
    """How a case's model is made. ``build(inputs, pretrained)``: the model passed to the student's function
    (``pretrained()`` gives the kit's network, shared between cases and watched for changes)."""

    build: Callable
    pretrained: bool = False  # the kit's shared network: changes to it are detected and undone
    inplace: bool = False  # its activations are switched to in-place for the call
    raises: bool = False  # its forward pass raises (see raising_forward)


MODELS = {
    "pretrained": ModelFixture(lambda inputs, pretrained: pretrained(), pretrained=True),
    "inplace": ModelFixture(lambda inputs, pretrained: pretrained(), pretrained=True, inplace=True),
    "raising": ModelFixture(lambda inputs, pretrained: pretrained(), pretrained=True, raises=True),
    "smooth": ModelFixture(lambda inputs, pretrained: smooth_network(inputs["network"])),
    "wavy": ModelFixture(lambda inputs, pretrained: wavy_network(inputs["network"])),
    "features": ModelFixture(lambda inputs, pretrained: feature_network(inputs["network"])),
}
