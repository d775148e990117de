"""What every check shares: the one-line verdict and the error measure.

A verdict line is ``PASS <check>: <what was checked>`` or ``FAIL <check>: <what is wrong>``. PASS lines hold
no measured numbers, so they read the same on every machine (CPU or GPU) and nbval can compare them.

Error measure: ``max |actual - expected| / max |expected|``, the worst element's error relative to the size of
the reference. Float32 round-off through the network differs between CPU and GPU kernels by about 1e-5 of
that scale; with TF32 switched off it stays below 1e-4. The usual mistakes (a missing abs, a sum instead of
a max, a forgotten normalization, the wrong layer) are off by 1e-1 or more. So the default tolerance is 1e-3:
two decades above round-off, two below a real mistake.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import torch

DEFAULT_TOL = 1e-3


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check. ``str(verdict)`` is the one line the notebook prints."""

    check: str
    passed: bool
    detail: str

    @property
    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.check}: {self.detail}"

    def __str__(self) -> str:
        return self.line

    def __bool__(self) -> bool:
        return self.passed

    def prefixed(self, prefix: str) -> Verdict:
        """A FAIL verdict with ``prefix`` put before its detail (saying which case failed); a PASS as is."""
        return self if self.passed or not prefix else replace(self, detail=prefix + self.detail)

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
