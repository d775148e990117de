"""What each check runs: one :class:`Spec` per exercise function, read from checks/child/specs.json. That file
is written from the exercises' records (tools/exercises/<function>.toml, whose docstring lists every field)
by ``python3 kit.py references``; no code of the kit branches on an exercise's name.

A check calls the student's function on every case of its reference file (``checks/references/<topic>.pt``;
the instructor's grader adds hidden cases) and compares the outputs with the stored ones. Nothing here
computes an answer. A record names the Python parts of its spec, which live here and beside it: how to take
the compared outputs out of a result (:data:`COLLECTORS`), the stand-ins for the other exercises it calls
(checks/child/fixtures.py's ``STAND_INS``) and, for a loop, its measured outcomes (checks/child/outcomes.py's
``MEASURES``).

The model a case runs on is named by the case (checks/child/fixtures.py's ``MODELS``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from checks.child import fixtures, outcomes

SPECS_FILE = Path(__file__).resolve().with_name("specs.json")  # written from tools/exercises/ by the rebuild

# topic -> the notebook that uses it; the student's file is helpers/<topic>.py. A topic is named for what the
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
    inputs: str = ""  # the function of tools/inputs.py that makes a case's inputs (every real spec names one)
    outputs: tuple = ("output",)
    collect: Callable = single
    tol: dict = field(default_factory=dict)  # output name -> tolerance (default checks.child.core.DEFAULT_TOL)
    mistake_tol: float = 2e-2  # how close an output must be to a stored mistake for its cause to be named
    kink_share: float = 0.0  # the share of a map's elements a verdict may leave out (a gradient's kinks)
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
    points: float = 0  # what a PASS earns, unless grader/points.toml says otherwise

    def stand_ins_for(self, inputs: dict) -> dict:
        """{callee name: stand-in function} for one case."""
        return {name: factory(inputs) for name, factory in self.stand_ins.items()}


# A record's names for the Python parts of a spec.
COLLECTORS = {"single": lambda outputs: single, "pair": lambda outputs: pair(*outputs),
              "image_and_history": lambda outputs: image_and_history}


def _spec(name: str, data: dict) -> Spec:
    outputs = tuple(data.get("outputs", ("output",)))
    measure, rules = outcomes.MEASURES[data["measure"]] if "measure" in data else (None, ())
    return Spec(name, data["topic"], data["what"], inputs=data["inputs"], outputs=outputs,
                collect=COLLECTORS[data.get("collect", "single")](outputs), tol=data.get("tol", {}),
                mistake_tol=data.get("mistake_tol", 2e-2),
                kink_share=data.get("kink_share", 0.0),
                stand_ins={callee: fixtures.STAND_INS[callee] for callee in data.get("stand_ins", ())},
                forbidden=tuple(data.get("forbidden", ())), attached_ok=data.get("attached_ok", False),
                differentiable=data.get("differentiable", False), differentiated=data.get("differentiated", {}),
                measure=measure, outcomes=rules, terms=tuple(data.get("terms", ())), points=data["points"])


def load_specs() -> dict[str, Spec]:
    # Missing only in a checkout whose rebuild has not written it yet (python3 kit.py references writes it).
    if not SPECS_FILE.exists():
        return {}
    return {name: _spec(name, data) for name, data in json.loads(SPECS_FILE.read_text(encoding="utf-8")).items()}


SPECS = load_specs()


def checks_of(topic: str) -> list[str]:
    return [name for name, spec in SPECS.items() if spec.topic == topic]
