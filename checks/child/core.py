"""What every check shares: the typed result of one case, the one-line verdict and the error measure.

A verdict line is ``PASS <check>: <what was checked>`` or ``FAIL <check>: <what is wrong>``. PASS lines hold
no measured numbers, so they read the same on every machine (CPU or GPU) and nbval can compare them.

Error measure: ``max |actual - expected| / max |expected|``, the worst element's error relative to the size of
the reference. Float32 round-off through the network differs between CPU and GPU kernels by about 1e-5 of
that scale; with TF32 switched off it stays below 1e-4. The usual mistakes (a missing abs, a sum instead of
a max, a forgotten normalization, the wrong layer) are off by 1e-1 or more. So the default tolerance is 1e-3:
two decades above round-off, two below a real mistake.
"""
from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

DEFAULT_TOL = 1e-3
MAX_PROBLEM_CHARS = 600  # of a problem's text that crosses from a child process


class Kind(str, enum.Enum):
    """Why a case failed before its outputs could be compared."""

    NOT_IMPLEMENTED = "not_implemented"  # the stub still raises NotImplementedError
    EXCEPTION = "exception"  # the student's code raised
    SIDE_EFFECT = "side_effect"  # an input, the model, hooks, flags or the RNG were left changed
    FORM = "form"  # the result is not what the contract promises (None, a number, the wrong device)
    FORBIDDEN = "forbidden"  # a library implementation of the exercise was called
    MISSING = "missing"  # no such function, or no such file in a submission
    IMPORT_ERROR = "import_error"  # the student's file cannot be imported
    TIMEOUT = "timeout"  # over the time limit (set by whoever runs the child)
    CRASHED = "crashed"  # the process running it died
    MALFORMED = "malformed"  # a child process sent a reply that cannot be used
    KIT_ERROR = "kit_error"  # the kit's own code failed: never the student's fault

    @property
    def words(self) -> str:
        """A few words for reports (the class summary's "most common failure")."""
        return KIND_WORDS[self]


KIND_WORDS = {Kind.NOT_IMPLEMENTED: "not implemented", Kind.EXCEPTION: "raises an exception",
              Kind.SIDE_EFFECT: "leaves something changed", Kind.FORM: "returns the wrong form",
              Kind.FORBIDDEN: "forbidden library call", Kind.MISSING: "file or function missing",
              Kind.IMPORT_ERROR: "module cannot be imported", Kind.TIMEOUT: "timed out", Kind.CRASHED: "crashed",
              Kind.MALFORMED: "unusable reply", Kind.KIT_ERROR: "the kit failed"}


# A case with ``follow_up``: after the student's function returns, one clean pass of the same model on the same
# input tensor (its class scores, and the gradient of a fixed random mix of them at a copy of it). A hook
# left on the model, an input changed in place, or the model left in another mode changes these outputs,
# which the judge compares like any other: side effects are seen, not reported.
FOLLOW_UP = ("after_scores", "after_grad")
# A loss's gradient with respect to an input the optimizer differentiates: the part "grad <input's label>".
GRADIENT = "grad "
FOLLOW_UP_TOL = {"after_scores": 1e-3, "after_grad": 2e-2}  # the gradient crosses ReLU6 kinks (as saliency's)

# What a child process may report; the others are found by the process that runs it.
CHILD_KINDS = frozenset({Kind.NOT_IMPLEMENTED, Kind.EXCEPTION, Kind.SIDE_EFFECT, Kind.FORM, Kind.FORBIDDEN,
                         Kind.MISSING, Kind.KIT_ERROR})


@dataclass(frozen=True)
class CaseResult:
    """What running a student's function on one case gave: the compared parts of its result (detached CPU
    tensors) or, when something went wrong before they could be compared, a problem and its kind."""

    outputs: dict = field(default_factory=dict)
    problem: str | None = None
    kind: Kind | None = None
    finding: str = ""  # a few words for reports when the kind's own are too vague ("raises TypeError")

    @classmethod
    def failure(cls, kind: Kind, problem: str, finding: str = "") -> "CaseResult":
        return cls({}, problem, Kind(kind), finding)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_message(self) -> dict:
        """Plain values only, for a process boundary (loaded back with ``weights_only=True``)."""
        return {"outputs": dict(self.outputs), "problem": self.problem,
                "kind": None if self.kind is None else self.kind.value, "finding": self.finding}

    @classmethod
    def from_message(cls, value, parts: tuple) -> "CaseResult":
        """A child's reply, checked: only the expected keys, a known kind, text of bounded length, plain CPU
        tensors of bounded size for the parts in ``parts``; ValueError saying what is wrong otherwise."""
        if not isinstance(value, dict) or set(value) != {"outputs", "problem", "kind", "finding"}:
            raise ValueError("not a reply to a case")
        outputs, problem, kind, finding = value["outputs"], value["problem"], value["kind"], value["finding"]
        if not isinstance(outputs, dict) or len(outputs) > 64 or not all(
                name in parts or (isinstance(name, str) and name.startswith(GRADIENT) and len(name) < 200)
                for name in outputs):
            raise ValueError("unexpected outputs")
        for name, tensor in outputs.items():
            if type(tensor) is not torch.Tensor or tensor.layout != torch.strided or tensor.is_quantized \
                    or tensor.device.type != "cpu" or tensor.numel() > (64 << 20) // max(tensor.element_size(), 1):
                raise ValueError(f"output {name!r} is not a plain tensor of a sensible size")
        if problem is not None and not isinstance(problem, str):
            raise ValueError("the problem is not text")
        if (problem is None) != (kind is None):
            raise ValueError("a problem without a kind")
        if kind is not None and (not isinstance(kind, str) or kind not in {k.value for k in CHILD_KINDS}):
            raise ValueError("unknown kind of problem")
        if not isinstance(finding, str):
            raise ValueError("the finding is not text")
        if problem is not None:
            return cls.failure(Kind(kind), one_line(problem), one_line(finding, 80))
        return cls(dict(outputs))


def one_line(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """``text`` as one printable line of at most ``limit`` characters: whitespace runs become one space,
    other control characters (terminal escape codes) are dropped."""
    text = " ".join(str(text).split())
    text = "".join(c for c in text if c.isprintable())
    return text[:limit] + ("..." if len(text) > limit else "")


def printable(text: str) -> str:
    """What a student's code printed, safe to show: control characters other than newlines and tabs (terminal
    escape codes, carriage returns that overwrite a line) are dropped."""
    return "".join(c for c in str(text) if c.isprintable() or c in "\n\t")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check, kept structured from the judge to every report. ``str(verdict)`` is the one
    line the notebook prints, composed from the fields:
    ``FAIL <check>: [<case>: ]<detail>[; likely cause: <cause>][; <relation>]``.

    ``kind``: why a case failed before its outputs could be compared (None for a PASS or a wrong value);
    ``case``: the label of the case that failed; ``cause``: the stored or generated mistake the output matches,
    in words; ``relation``: what the output has to do with the reference when no mistake matches;
    ``finding``: a few words for reports, the same for submissions that failed the same way."""

    check: str
    passed: bool
    detail: str
    kind: Kind | None = None
    case: str = ""
    cause: str = ""
    relation: str = ""
    finding: str = ""

    @property
    def status(self) -> str:
        """"pass", "fail" (wrong values) or the kind of problem: a word for reports."""
        return "pass" if self.passed else (self.kind.value if self.kind else "fail")

    @property
    def summary(self) -> str:
        """Why it failed, in a few words ('' for a PASS): the likely cause, else the finding, else the kind's
        words."""
        if self.passed:
            return ""
        return self.cause or self.finding or (self.kind.words if self.kind else "wrong values")

    @property
    def line(self) -> str:
        if self.passed:
            return f"PASS {self.check}: {self.detail}"
        return (f"FAIL {self.check}: {self.case + ': ' if self.case else ''}{self.detail}"
                f"{'; likely cause: ' + self.cause if self.cause else ''}"
                f"{'; ' + self.relation if self.relation else ''}")

    def __str__(self) -> str:
        return self.line

    def __bool__(self) -> bool:
        return self.passed

    def in_case(self, label: str) -> Verdict:
        """A FAIL verdict said of the case ``label``; a PASS as is."""
        return self if self.passed or not label else replace(self, case=label)

    def to_dict(self) -> dict:
        """Plain values for a report (report.json)."""
        return {"check": self.check, "passed": self.passed, "status": self.status, "case": self.case,
                "detail": self.detail, "cause": self.cause, "relation": self.relation, "finding": self.finding,
                "summary": self.summary, "line": self.line}

    def _ipython_display_(self) -> None:
        # The check already printed its line; showing the return value again would print it twice.
        pass


def relative_error(actual, expected) -> float:
    """``max|actual - expected| / max|expected|`` in float64 on CPU (numbers or tensors); ``inf`` when the
    shapes differ or a NaN/inf sits where the other has a finite value. Positions that are NaN (or the same
    inf) in both count as equal. An all-zero ``expected`` has scale 1, so the error is then absolute."""
    a, e = _float64_cpu(actual), _float64_cpu(expected)
    if a.shape != e.shape:
        return float("inf")
    same_nonfinite = (~torch.isfinite(a)) & (~torch.isfinite(e)) & ((a == e) | (a.isnan() & e.isnan()))
    finite = torch.isfinite(a) & torch.isfinite(e)
    if not bool((finite | same_nonfinite).all()):
        return float("inf")
    if not bool(finite.any()):
        return 0.0
    scale = e[finite].abs().max().item() or 1.0
    return (a[finite] - e[finite]).abs().max().item() / scale


def close(actual, expected, tol: float = DEFAULT_TOL) -> bool:
    """Do ``actual`` and ``expected`` agree within ``tol`` of the expected scale (see :func:`relative_error`)?"""
    return relative_error(actual, expected) <= tol


def _float64_cpu(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def describe_exception(err: BaseException) -> str:
    """One line for an exception raised by a student's code: type, first line of the message, and where
    in helpers/ it was raised."""
    if isinstance(err, SyntaxError):
        return f"SyntaxError: {err.msg} (helpers/{Path(err.filename or '?').name} line {err.lineno})"
    message = " ".join(str(err).split())[:160]
    return f"{type(err).__name__}{': ' + message if message else ''}{where_raised(err)}"


def where_raised(err: BaseException) -> str:
    """' (helpers/x.py line N)' for the innermost frame inside helpers/, else ''."""
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        path = Path(frame.filename)
        if path.parent.name == "helpers":
            return f" (helpers/{path.name} line {frame.lineno})"
    return ""


def fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def fmt_index(index) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"
