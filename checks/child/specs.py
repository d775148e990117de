"""What each check runs, as data: one :class:`Spec` per exercise function. This file is the one place that
describes an exercise's check; no other code of the kit branches on an exercise's name.

A check calls the student's function on every case of its reference file (``checks/references/<topic>.pt``;
the instructor's grader adds hidden cases) and compares the outputs with the stored ones. Nothing here
computes an answer. What a spec says:

* ``outputs`` and ``collect``: the names of the compared parts of the function's result, and how to take
  them out of it (a single tensor, a pair, an image with its loss history);
* ``tol``: the largest allowed error of each part, relative to the reference's scale (checks/child/core.py);
* ``stand_ins``: the other exercises the function calls, replaced during the check by the fixed stand-ins
  of checks/child/fixtures.py, so that a bug in one exercise fails only that exercise's check. The reference
  outputs were made with the same stand-ins;
* ``differentiable``: a loss: called with inputs that require grad, its output must carry the gradient
  back to them (a case may say ``grad = false`` where nothing depends on the inputs);
* ``forbidden``: library implementations of the same method; calling one fails the check (the exercise is
  to write it). Everything else (torch, ``F.interpolate``, ...) stays allowed;
* ``measure`` and ``outcomes``: for a loop whose method leaves choices, what is measured of a run and how
  each measure is judged (checks/child/outcomes.py);
* ``inputs``: which builder of tools/references.py makes its cases' inputs from tools/cases.toml;
* ``what``: the PASS line's text.

The model a case runs on is named by the case (checks/child/fixtures.py's ``MODELS``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from checks.child import fixtures, outcomes

# topic -> (the student's file under helpers/, the notebook that uses it). A topic is named for what the
# notebook is about, never for one of its functions, so a name on the command line means one thing.
TOPICS = {
    "saliency": "notebooks/1_network_visualization.ipynb",
    "gradcam": "notebooks/2_gradcam.ipynb",
    "fooling": "notebooks/3_fooling_and_class_images.ipynb",
    "style": "notebooks/4_style_transfer.ipynb",
}


class FormError(ValueError):
    """The function returned something of the wrong form; the message says what was expected."""


def single(result) -> dict:
    """The result is the one compared tensor."""
    return {"output": result}


def pair(first: str, second: str):
    """The result is a tuple (first, second) of compared tensors."""
    def collect(result) -> dict:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise FormError(f"returned {type(result).__name__}; expected a tuple ({first}, {second})")
        return {first: result[0], second: result[1]}
    return collect


def image_and_history(result) -> dict:
    """The result is (image, LossHistory); the history's four lists become one (evaluations, 4) table."""
    if not (isinstance(result, tuple) and len(result) == 2):
        raise FormError(f"returned {type(result).__name__}; expected a tuple (image, history)")
    image, history = result
    rows = [getattr(history, part, None) for part in ("total", "content", "style", "tv")]
    if any(not isinstance(r, list) for r in rows):
        raise FormError(f"the second item is a {type(history).__name__}, not the LossHistory that records the "
                        "losses of every evaluation")
    if len({len(r) for r in rows}) != 1:
        raise FormError("the history's lists have different lengths")
    try:
        table = torch.tensor(rows, dtype=torch.float64).T.contiguous()
    except (TypeError, ValueError, RuntimeError) as err:
        raise FormError(f"the history holds something other than numbers ({type(err).__name__})") from None
    return {"image": image, "history": table}


@dataclass(frozen=True)
class Spec:
    name: str
    topic: str
    what: str
    inputs: str = ""  # the input builder in tools/references.py (every real spec names one)
    outputs: tuple = ("output",)
    collect: Callable = single
    tol: dict = field(default_factory=dict)  # output name -> tolerance (default checks.child.core.DEFAULT_TOL)
    variant_tol: float = 2e-2  # how close an output must be to a stored mistake for its cause to be named
    stand_ins: dict = field(default_factory=dict)  # callee name -> factory(case inputs) -> stand-in
    forbidden: tuple = ()
    attached_ok: bool = False  # losses may stay attached to the graph (the optimizer needs that)
    differentiable: bool = False  # the output must carry a gradient back to its tensor inputs (a loss)
    # The inputs an optimizer differentiates the loss with respect to ({label or its prefix: the name a FAIL
    # line uses}): the gradient with respect to each is compared with the reference's, since a detached input
    # gives the same number and no gradient.
    differentiated: dict = field(default_factory=dict)
    # A loop whose method leaves choices: measure(inputs, outputs) -> {outcome: tensor}, judged by the rules in
    # ``outcomes`` (checks/child/outcomes.py) against the reference run's outcomes, instead of output by output.
    measure: Callable | None = None
    outcomes: tuple = ()
    # A sum over parallel lists (layers, targets, weights): the positions of those arguments. The build stores
    # the reference's value for each element alone, so a FAIL line can say which elements a sum left out.
    terms: tuple = ()

    def stand_ins_for(self, inputs: dict) -> dict:
        """{callee name: stand-in function} for one case."""
        return {name: factory(inputs) for name, factory in self.stand_ins.items()}


_ATTRIBUTION = ("captum.attr.Saliency", "captum.attr.InputXGradient", "captum.attr.IntegratedGradients",
                "captum.attr.NoiseTunnel", "convlens.attribution.fast_integrated_gradients")
_OCCLUSION = ("captum.attr.Occlusion", "captum.attr.FeatureAblation", "captum.attr.ShapleyValueSampling",
              "convlens.attribution.occlusion_attribution")
_GUIDED = ("captum.attr.GuidedBackprop", "captum.attr.Deconvolution", "captum.attr.GuidedGradCam")
_CAM = ("captum.attr.LayerGradCam", "captum.attr.GuidedGradCam", "captum.attr.LayerGradientXActivation")
_ATTACKS = ("captum.robust.FGSM", "captum.robust.PGD")
_VISUALIZE = ("convlens.visualize.create_class_visualization", "convlens.visualize.deep_dream",
              "convlens.visualize.pixel_channel_image")
_STYLE = ("convlens.style.perceptual_loss", "convlens.style.train_style_net")

_GB, _CAM_STAND_IN = fixtures.fixed(fixtures.stand_in_guided_backprop), fixtures.fixed(fixtures.stand_in_grad_cam)
_LOSSES = {"content_loss": fixtures.fixed(fixtures.stand_in_content_loss),
           "gram_matrix": fixtures.fixed(fixtures.stand_in_gram_matrix),
           "style_loss": fixtures.fixed(fixtures.stand_in_style_loss),
           "tv_loss": fixtures.fixed(fixtures.stand_in_tv_loss)}

SPECS = {spec.name: spec for spec in [
    Spec("saliency_map", "saliency", "class-score and loss saliency match the reference", inputs="photos",
         # Gradients pass ReLU6 kinks; a unit sitting on a kink can flip between CPU and GPU round-off. The
         # loss gradient -grad s_y + sum_k p_k grad s_k nearly cancels when p_y is near 1, so float32
         # kernels that differ only in summation order disagree by ~4e-3 there.
         tol={"output": 2e-2}, forbidden=_ATTRIBUTION),
    Spec("occlusion_map", "saliency", "per-pixel probability drops match the reference", inputs="photos",
         forbidden=_OCCLUSION),
    # A sum of gradients at a few path points: each crosses ReLU6 kinks as saliency's does, averaged.
    Spec("integrated_gradients", "saliency", "midpoint Riemann sums match the reference for every baseline",
         inputs="photos", tol={"output": 1e-2}, forbidden=_ATTRIBUTION),
    Spec("guided_backprop", "gradcam", "values match the reference, also with in-place activations; no hooks "
         "left behind", inputs="photos", forbidden=_GUIDED),
    Spec("grad_cam", "gradcam", "maps match the reference at 'head' (normalized and raw) and 'block10'; no hooks "
         "left behind", inputs="photos", forbidden=_CAM),
    Spec("guided_grad_cam", "gradcam", "combines guided_backprop and grad_cam as the reference does",
         inputs="photos", stand_ins={"guided_backprop": _GB, "grad_cam": _CAM_STAND_IN}, forbidden=_GUIDED + _CAM),
    # Input gradients of a ReLU network jump where a unit crosses its kink, and round-off moves units across
    # kinks: one flip changes a pixel of a step of length L by ~5e-4 * L; mistakes change pixels by 2e-2.
    Spec("fooling_step", "fooling", "one normalized ascent step matches the reference", inputs="photos_targets",
         tol={"output": 5e-3}, forbidden=_ATTACKS),
    Spec("make_fooling_image", "fooling", "step counts and fooled images match the reference", inputs="small_loop",
         outputs=("images", "steps"), collect=pair("images", "steps"), tol={"images": 1e-4},
         stand_ins={"fooling_step": fixtures.stand_in_fooling_step_for}, forbidden=_ATTACKS),
    Spec("class_visualization_step", "fooling", "one jittered, regularized ascent step matches the reference",
         inputs="ascent_step", tol={"output": 5e-3}, forbidden=_VISUALIZE + _ATTACKS),
    # On a small smooth network: the sign of a gradient of a ReLU network flips with round-off where it is
    # near 0, and a flip moves a value by 2 * step_size.
    Spec("pgd_attack", "fooling", "sign steps, each projected into the epsilon ball around the original and into "
         "[0, 1], match the reference", inputs="attack", tol={"output": 1e-4}, forbidden=_ATTACKS),
    Spec("content_loss", "style", "scalar and its gradient match the reference", inputs="feature_pair",
         attached_ok=True, differentiable=True, differentiated={"current": "current"}, forbidden=_STYLE),
    Spec("gram_matrix", "style", "Gram matrices match the reference, normalized and not", inputs="features",
         attached_ok=True, differentiable=True, differentiated={"features": "features"}, forbidden=_STYLE),
    Spec("style_loss", "style", "scalar and its gradient match the reference", inputs="feature_dict",
         attached_ok=True, differentiable=True, differentiated={"argument 1": "feats"},
         stand_ins={"gram_matrix": _LOSSES["gram_matrix"]}, forbidden=_STYLE, terms=(1, 2, 3)),
    Spec("tv_loss", "style", "scalar and its gradient match the reference", inputs="image_weight",
         attached_ok=True, differentiable=True, differentiated={"img": "img"}, forbidden=_STYLE),
    # The loop leaves choices (the optimizer's memory, where the clamp goes, how the rate decays): judged by
    # its outcomes (checks/child/outcomes.py), not step by step.
    Spec("style_transfer", "style", "L-BFGS and Adam runs start right, stay in [0, 1], record every "
         "evaluation and reach the reference's loss", inputs="style_loop", outputs=("image", "history", "evaluated", "last_evaluated"),
         collect=image_and_history, measure=outcomes.style_run, outcomes=outcomes.STYLE_RUN, stand_ins=_LOSSES,
         forbidden=_STYLE),
]}


def checks_of(topic: str) -> list[str]:
    return [name for name, spec in SPECS.items() if spec.topic == topic]
