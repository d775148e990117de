"""What each check runs, as data: one :class:`Spec` per exercise function.

A check calls the student's function on every case of its reference file (``checks/references/<topic>.pt``;
the instructor's grader adds hidden cases) and compares the outputs with the stored ones. Nothing here
computes an answer. What a spec says:

* ``outputs``: the names of the parts of the function's result that are compared (see ``collect``);
* ``tol``: the largest allowed error of each part, relative to the reference's scale (checks/core.py);
* ``stand_ins``: the other exercises the function calls, replaced during the check by the fixed stand-in
  functions below, so that a bug in one exercise fails only that exercise's check. A stand-in is not the
  exercise's answer: it is a simple function of every argument, so that the check still sees whether the
  arguments were passed on correctly. The reference outputs were made with the same stand-ins;
* ``forbidden``: library implementations of the same method; calling one fails the check (the exercise is
  to write it). Everything else (torch, ``F.interpolate``, ...) stays allowed;
* ``what``: the PASS line's text.

Models: a case names the model it runs on: ``pretrained`` (the kit's EfficientNet-Lite0), ``inplace``
(the same with in-place activations), ``raising`` (a forward pass that raises after running: hooks must
still be removed), ``smooth`` (a small network without kinks, so that loops are reproducible on any
device), ``wavy`` (a small smooth network along whose paths a class is won and lost) or ``features`` (a small smooth feature network with named layers, for the style-transfer loop).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

TOPICS = {
    "saliency": "notebooks/1_network_visualization.ipynb",
    "gradcam": "notebooks/2_gradcam.ipynb",
    "fooling": "notebooks/3_fooling_and_class_images.ipynb",
    "style_transfer": "notebooks/4_style_transfer.ipynb",
}


@dataclass(frozen=True)
class Spec:
    name: str
    topic: str
    what: str
    outputs: tuple = ("output",)
    tol: dict = field(default_factory=dict)  # output name -> tolerance (default checks.core.DEFAULT_TOL)
    variant_tol: float = 2e-2  # how close an output must be to a stored mistake for its cause to be named
    stand_ins: tuple = ()
    forbidden: tuple = ()
    attached_ok: bool = False  # losses may stay attached to the graph (the optimizer needs that)


_ATTRIBUTION = ("captum.attr.Saliency", "captum.attr.InputXGradient", "captum.attr.IntegratedGradients",
                "captum.attr.NoiseTunnel", "convlens.attribution.integrated_gradients")
_OCCLUSION = ("captum.attr.Occlusion", "captum.attr.FeatureAblation", "captum.attr.ShapleyValueSampling",
              "convlens.attribution.occlusion_attribution")
_GUIDED = ("captum.attr.GuidedBackprop", "captum.attr.Deconvolution", "captum.attr.GuidedGradCam")
_CAM = ("captum.attr.LayerGradCam", "captum.attr.GuidedGradCam", "captum.attr.LayerGradientXActivation")
_ATTACKS = ("captum.robust.FGSM", "captum.robust.PGD")
_VISUALIZE = ("convlens.visualize.create_class_visualization", "convlens.visualize.deep_dream",
              "convlens.visualize.visualize_channel")
_STYLE = ("convlens.style.perceptual_loss", "convlens.style.train_style_net")

SPECS = {spec.name: spec for spec in [
    Spec("saliency_map", "saliency", "class-score and loss saliency match the reference",
         # Gradients pass ReLU6 kinks; a unit sitting on a kink can flip between CPU and GPU round-off. The
         # loss gradient -grad s_y + sum_k p_k grad s_k nearly cancels when p_y is near 1, so float32
         # kernels that differ only in summation order disagree by ~4e-3 there.
         tol={"output": 2e-2}, forbidden=_ATTRIBUTION),
    Spec("occlusion_map", "saliency", "per-pixel probability drops match the reference", forbidden=_OCCLUSION),
    Spec("guided_backprop", "gradcam", "values match the reference, also with in-place activations; no hooks "
         "left behind", forbidden=_GUIDED),
    Spec("grad_cam", "gradcam", "maps match the reference at 'head' (normalized and raw) and 'block10'; no hooks "
         "left behind", forbidden=_CAM),
    Spec("guided_grad_cam", "gradcam", "combines guided_backprop and grad_cam as the reference does",
         stand_ins=("guided_backprop", "grad_cam"), forbidden=_GUIDED + _CAM),
    # Input gradients of a ReLU network jump where a unit crosses its kink, and round-off moves units across
    # kinks: one flip changes a pixel of a step of length L by ~5e-4 * L; mistakes change pixels by 2e-2.
    Spec("fooling_step", "fooling", "one normalized ascent step matches the reference", tol={"output": 5e-3},
         forbidden=_ATTACKS),
    Spec("make_fooling_image", "fooling", "step counts and fooled images match the reference",
         outputs=("images", "steps"), tol={"images": 1e-4}, stand_ins=("fooling_step",), forbidden=_ATTACKS),
    Spec("class_visualization_step", "fooling", "one jittered, regularized ascent step matches the reference",
         tol={"output": 5e-3}, forbidden=_VISUALIZE + _ATTACKS),
    Spec("content_loss", "style_transfer", "scalar matches the reference", attached_ok=True, forbidden=_STYLE),
    Spec("gram_matrix", "style_transfer", "Gram matrices match the reference, normalized and not",
         attached_ok=True, forbidden=_STYLE),
    Spec("style_loss", "style_transfer", "scalar matches the reference", attached_ok=True,
         stand_ins=("gram_matrix",), forbidden=_STYLE),
    Spec("tv_loss", "style_transfer", "scalar matches the reference", attached_ok=True, forbidden=_STYLE),
    Spec("style_transfer", "style_transfer", "L-BFGS and Adam runs match the reference, from every start",
         outputs=("image", "history"), tol={"image": 1e-3, "history": 1e-3},
         stand_ins=("content_loss", "gram_matrix", "style_loss", "tv_loss"), forbidden=_STYLE),
]}


def checks_of(topic: str) -> list[str]:
    return [name for name, spec in SPECS.items() if spec.topic == topic]


# ------------------------------------------------------------------------------------------------ results

class FormError(ValueError):
    """The function returned something of the wrong form; the message says what was expected."""


def collect(spec: Spec, result) -> dict:
    """The parts of a function's result that are compared, by the names in ``spec.outputs``."""
    if spec.name == "make_fooling_image":
        if not (isinstance(result, tuple) and len(result) == 2):
            raise FormError(f"returned {type(result).__name__}; expected a tuple (fooled images, steps)")
        return {"images": result[0], "steps": result[1]}
    if spec.name == "style_transfer":
        if not (isinstance(result, tuple) and len(result) == 2):
            raise FormError(f"returned {type(result).__name__}; expected a tuple (image, history)")
        image, history = result
        rows = [getattr(history, part, None) for part in ("total", "content", "style", "tv")]
        if any(not isinstance(r, list) for r in rows):
            raise FormError("the history is not a LossHistory: record every evaluation with history.record(...)")
        if len({len(r) for r in rows}) != 1:
            raise FormError("the history's lists have different lengths")
        return {"image": image, "history": torch.tensor(rows, dtype=torch.float64).T.contiguous()}
    return {"output": result}


# ------------------------------------------------------------------------------------------------ stand-ins
# Simple functions of every argument, with the callee's signature; deliberately not the exercises.

def _stand_in_guided_backprop(model, images, labels):
    return (images.detach() - 0.5) * (1 + 0.25 * (labels.to(images.device) % 5).to(images.dtype).view(-1, 1, 1, 1))


def _stand_in_grad_cam(model, images, labels, layer="head", normalize=True):
    maps = images.detach().mean(dim=1) + 0.1
    maps = maps * (1 + 0.5 * (labels.to(images.device) % 3).to(images.dtype).view(-1, 1, 1))
    maps = maps * (1 + 0.1 * len(str(layer)))
    return maps / maps.sum(dim=(1, 2), keepdim=True) if normalize else 3.0 * maps


def _stand_in_gram_matrix(features, normalize=True):
    means = features.flatten(2).mean(dim=2)
    table = means[:, :, None] - 0.5 * means[:, None, :]
    return table / features.shape[1] if normalize else table


def _stand_in_content_loss(content_weight, current, target):
    return content_weight * torch.cosh(current - target).mean()


def _stand_in_style_loss(feats, style_layers, style_targets, style_weights):
    total = 0.0
    for layer, target, weight in zip(style_layers, style_targets, style_weights):
        total = total + weight * torch.cosh(feats[layer].mean(dim=(2, 3)) - target.mean(dim=2)).sum()
    return total


def _stand_in_tv_loss(img, tv_weight):
    # Rewards pixels far from mid-grey, so a loop that forgets to clamp leaves [0, 1] and is seen to.
    return -tv_weight * (img - 0.5).pow(2).sum()


def stand_ins(spec: Spec, inputs: dict) -> dict:
    """{callee name: stand-in} for one case (a case may carry what a stand-in needs, e.g. directions)."""
    table = {"guided_backprop": _stand_in_guided_backprop, "grad_cam": _stand_in_grad_cam,
             "gram_matrix": _stand_in_gram_matrix, "content_loss": _stand_in_content_loss,
             "style_loss": _stand_in_style_loss, "tv_loss": _stand_in_tv_loss}
    if "fooling_step" in spec.stand_ins:
        directions = inputs["directions"]

        def _stand_in_fooling_step(model, images, targets, step_size):
            # A fixed direction per class, not the gradient: moves each image toward its target.
            return (images.detach() + step_size * directions.to(images)[targets.to(images.device)]).clamp(0, 1)

        table["fooling_step"] = _stand_in_fooling_step
    return {name: table[name] for name in spec.stand_ins}


# ------------------------------------------------------------------------------------------------ small networks

def _frozen(net: nn.Module, weights: dict) -> nn.Module:
    net.load_state_dict(weights)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def smooth_skeleton() -> nn.Module:
    """A small classifier without kinks (tanh): 3 x 16 x 16 images -> 10 classes, untrained."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


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


class RaisingForward(nn.Module):
    """Runs the classifier, then raises: the student's hooks must still be removed."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.net(images)
        raise Interrupted("forward pass interrupted on purpose by the check")


class Interrupted(RuntimeError):
    pass
