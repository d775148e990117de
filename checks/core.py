"""The checks framework: run a student's function on saved inputs, compare with a saved reference output,
and say in exactly one line what happened.

A verdict line is ``PASS <check>: <what was checked>`` or ``FAIL <check>: <what is wrong>``. PASS lines hold
no measured numbers, so they read the same on every machine (CPU or GPU) and nbval can compare them.

Error measure: ``max |actual - expected| / max |expected|``, the worst element's error relative to the size of
the reference. Float32 round-off through the network differs between CPU and GPU kernels by about 1e-5 of
that scale; with TF32 switched off (``deterministic_device``) it stays below 1e-4. The usual mistakes (a
missing abs, a sum instead of a max, a forgotten normalization, the wrong layer) are off by 1e-1 or more.
So the default tolerance is 1e-3: two decades above round-off, two below a real mistake.
"""
from __future__ import annotations

import contextlib
import functools
import os
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

DEFAULT_TOL = 1e-3
HELPERS_DIR = Path(__file__).resolve().parents[1] / "helpers"
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")  # on each module


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
        """A FAIL verdict with ``prefix`` put before its detail (saying which variant failed); a PASS as is."""
        return self if self.passed else replace(self, detail=prefix + self.detail)

    def _ipython_display_(self) -> None:
        # The check already printed its line; showing the return value again would print it twice.
        pass


def check_device() -> torch.device:
    """Where checks run the student's code: $CONVLENS_DEVICE if set, else CUDA when available, else CPU."""
    name = os.environ.get("CONVLENS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=None)
def _pretrained_on(device: str) -> torch.nn.Module:
    from helpers.model import load_model

    return load_model(device)


def model_or_default(model: torch.nn.Module | None = None) -> torch.nn.Module:
    """``model`` itself, or the kit's pretrained classifier on :func:`check_device` (loaded once per process)."""
    return model if model is not None else _pretrained_on(str(check_device()))


@contextlib.contextmanager
def deterministic_device():
    """Switch TF32 off for the duration (it would add ~1e-3 relative error on Ampere and newer GPUs)."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _fmt_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _fmt_index(index) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def where_raised(err: BaseException) -> str:
    """' (helpers/x.py line N)' for the innermost frame inside helpers/, else ''."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.parent.name == "helpers":
            return f" (helpers/{path.name} line {frame.lineno})"
    return ""


def relative_error(a, b) -> float:
    """``max|a - b| / max|b|`` in float64 on CPU (numbers or tensors); ``inf`` when the shapes differ. An all-zero
    ``b`` has scale 1, so the error is then absolute."""
    a, b = _float64_cpu(a), _float64_cpu(b)
    if a.shape != b.shape:
        return float("inf")
    return (a - b).abs().max().item() / (b.abs().max().item() or 1.0)


def _float64_cpu(value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def shape_hint(actual_shape, expected_shape) -> str:
    """A likely cause for a shape mismatch, or ''."""
    a, e = tuple(actual_shape), tuple(expected_shape)
    if not e:
        return "; a scalar (0-dim tensor) was expected: reduce with .sum() or .mean(), or index [0]"
    if len(a) == len(e) + 1 and a[0] == e[0] and 3 in a[1:2]:
        return "; the channel dimension was not reduced (take the max over dim 1)"
    if len(a) == len(e) + 1 and a[1:] == e:
        return "; there is an extra leading dimension"
    if len(a) + 1 == len(e) and a == e[1:]:
        return "; the batch dimension is missing"
    if sorted(a) == sorted(e):
        return "; the dimensions are in the wrong order"
    return ""


def compare(check: str, actual: Any, expected: torch.Tensor, tol: float = DEFAULT_TOL,
            hints: Iterable[tuple[str, Callable[[torch.Tensor, torch.Tensor], bool]]] = (),
            expected_device: torch.device | None = None, what: str = "") -> Verdict:
    """Compare one output tensor with its reference.

    Args:
        check: the check's name, first word of the line (e.g. ``"saliency_map"``).
        actual: what the student's function returned (anything; non-tensors fail with a clear reason).
        expected: reference tensor (any device; compared on CPU in float64).
        tol: largest allowed ``max|actual - expected| / max|expected|``.
        hints: (likely cause, test(actual, expected) -> bool) pairs; the first test that is true is named
            in the FAIL line. Tests get float64 CPU tensors of the right shape.
        expected_device: if given, the output must be on this device type.
        what: a short description for the PASS line (default: the shape).
    """
    if actual is None:
        return Verdict(check, False, "returned None; did you forget the return statement?")
    if not isinstance(actual, torch.Tensor):
        return Verdict(check, False, f"returned {type(actual).__name__}, expected a torch.Tensor")
    if tuple(actual.shape) != tuple(expected.shape):
        return Verdict(check, False, f"shape {_fmt_shape(actual.shape)}, expected {_fmt_shape(expected.shape)}"
                       + shape_hint(actual.shape, expected.shape))
    if actual.dtype != expected.dtype:
        return Verdict(check, False, f"dtype {str(actual.dtype).replace('torch.', '')}, expected "
                       f"{str(expected.dtype).replace('torch.', '')}")
    if expected_device is not None and actual.device.type != torch.device(expected_device).type:
        return Verdict(check, False, f"output is on {actual.device.type}, expected {torch.device(expected_device).type}"
                       " (create new tensors with device=x.device)")
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if e.dtype == torch.bool or not torch.is_floating_point(expected):
        bad = (a != e).nonzero()
        if len(bad):
            idx = tuple(bad[0].tolist())
            return Verdict(check, False, f"{len(bad)} of {a.numel()} values differ; first at {_fmt_index(idx)}: "
                           f"got {a[idx].item():g}, expected {e[idx].item():g}")
        return Verdict(check, True, what or f"shape {_fmt_shape(expected.shape)}, values match the reference")
    nonfinite = ~torch.isfinite(a)
    if nonfinite.any():
        idx = tuple(nonfinite.nonzero()[0].tolist())
        kind = "NaN" if torch.isnan(a).any() else "inf"
        return Verdict(check, False, f"{int(nonfinite.sum())} {kind} value(s), first at {_fmt_index(idx)}"
                       " (a division by zero or log of zero?)")
    err = relative_error(a, e)
    if err > tol:
        flat = int((a - e).abs().argmax())
        idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape)) if a.dim() else ()
        cause = next((name for name, test in hints if _safe(test, a, e)), "")
        return Verdict(check, False,
                       f"worst element {_fmt_index(idx)}: got {a[idx].item():.6g}, expected {e[idx].item():.6g} "
                       f"(error {err:.2e} of the reference's scale; allowed {tol:.0e})"
                       + (f"; likely cause: {cause}" if cause else ""))
    return Verdict(check, True, what or f"shape {_fmt_shape(expected.shape)}, values match the reference")


def _safe(test, a, e) -> bool:
    try:
        return bool(test(a, e))
    except Exception:  # a hint that does not apply to this output is simply not named
        return False


def _snapshot(values) -> list[tuple[int, torch.Tensor, bool]]:
    return [(i, v.detach().clone(), v.requires_grad) for i, v in enumerate(values) if isinstance(v, torch.Tensor)]


def run(check: str, fn: Callable, args: tuple, expected, tol: float = DEFAULT_TOL, hints=(), kwargs=None,
        model: torch.nn.Module | None = None, arg_names: tuple[str, ...] = (),
        output: Callable[[Any], Any] = lambda out: out, what: str = "") -> Verdict:
    """Call ``fn(*args, **kwargs)`` and judge it: exceptions, inputs changed in place, gradients or hooks
    leaked into the model, then :func:`compare` of ``output(result)`` with ``expected``.

    ``expected`` may be a tensor or a callable ``result -> Verdict`` for outputs that need their own test.
    ``what``: the PASS line's text (given to :func:`compare`, or put on a callable's passing verdict).
    The student's function sees copies of the inputs on :func:`check_device`.
    """
    kwargs = dict(kwargs or {})
    name = getattr(fn, "__name__", check)
    before = _snapshot(args)
    params_flags = [p.requires_grad for p in model.parameters()] if model is not None else []
    hooks_before = hook_count(model) if model is not None else 0
    try:
        with deterministic_device():
            result = fn(*args, **kwargs)
    except NotImplementedError:
        module = getattr(fn, "__module__", "helpers").replace(".", "/")
        return Verdict(check, False, f"not implemented yet: fill in the TODO in {module}.py ({name})")
    except Exception as err:  # any student error becomes one line
        message = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        return Verdict(check, False, f"raised {type(err).__name__}{': ' + message if message else ''}"
                       f"{where_raised(err)}")
    for i, value, requires_grad in before:
        current = args[i]
        label = arg_names[i] if i < len(arg_names) else f"argument {i + 1}"
        if current.shape != value.shape or not torch.equal(current.detach(), value):
            return Verdict(check, False, f"{label} was modified in place; work on a copy (x.clone())")
        if current.grad is not None and not requires_grad:
            return Verdict(check, False, f"{label} has a .grad left on it; compute gradients on a copy")
        if current.requires_grad != requires_grad:
            return Verdict(check, False, f"{label}.requires_grad was changed from {requires_grad}; use a copy")
    if model is not None:
        if [p.requires_grad for p in model.parameters()] != params_flags:
            return Verdict(check, False, "the model's requires_grad flags were changed and not restored")
        if any(p.grad is not None for p in model.parameters()):
            return Verdict(check, False, "gradients leaked into the model's parameters (.grad is set); "
                           "differentiate with respect to the input only")
        if hook_count(model) != hooks_before:
            return Verdict(check, False, "hooks were left registered on the model; remove them (in a finally: block)")
    try:
        out = output(result)
    except Exception as err:
        return Verdict(check, False, f"returned something of the wrong form ({type(err).__name__}: {err})")
    if isinstance(out, torch.Tensor) and out.requires_grad:
        return Verdict(check, False, "the output still requires grad; return it with .detach()")
    if callable(expected) and not isinstance(expected, torch.Tensor):
        verdict = expected(out)
        return replace(verdict, detail=what) if what and verdict.passed else verdict
    return compare(check, out, expected, tol=tol, hints=hints, expected_device=_device_of(args), what=what)


def _device_of(args) -> torch.device | None:
    """The device of the first tensor among ``args``, also looking one level into lists, tuples and dicts."""
    for a in args:
        for value in a.values() if isinstance(a, dict) else a if isinstance(a, (list, tuple)) else (a,):
            if isinstance(value, torch.Tensor):
                return value.device
    return None


def hook_count(model: torch.nn.Module) -> int:
    """How many hooks are registered on ``model`` and its submodules."""
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS)


_hook_count = hook_count  # the old name, still used by tests/test_gradcam.py


def report(verdict: Verdict) -> Verdict:
    """Print the verdict's one line and hand it back (notebook check cells end with this)."""
    print(verdict.line, flush=True)
    return verdict
