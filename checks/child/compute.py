"""Run a student's function on one case and report what came out: the side that computes.

:func:`compute_case` is all that runs where the student's code runs (in the notebook, or in the child
process of ``kit.py check`` and of the grader). It gets a case's inputs, never its expected outputs, and
returns a :class:`checks.child.core.CaseResult`: the compared parts of the result (detached, on the CPU) or the
first problem seen: what the probes (checks/child/probes.py) found the call changed or raised (an input changed in
place, gradients or hooks left behind, a forbidden library call, ...), or a result of the wrong form. A failure of the kit's own code while it prepares a
case is a ``KIT_ERROR``, never the student's. Judging happens elsewhere (checks/judge/).
"""
from __future__ import annotations

import contextlib
import copy
import functools

import torch
from torch import nn

from checks.child import fixtures, specs
from checks.child.core import GRADIENT, CaseResult, Kind, describe_exception
from checks.child.probes import PROBES, Call



def check_device() -> torch.device:
    """Where checks run: the kit's one device rule."""
    from convlens.runtime import choose_device

    return choose_device()


@functools.lru_cache(maxsize=None)
def pretrained(device: str) -> nn.Module:
    from convlens.model import load_model

    return load_model(device)


@functools.lru_cache(maxsize=None)
def _pristine(device: str) -> dict:
    """A copy of the pretrained model's weights, to notice (and undo) changes made in place."""
    return {k: v.detach().clone() for k, v in pretrained(device).state_dict().items()}


def weights_changed(model: nn.Module, device: torch.device) -> bool:
    if model is not pretrained(str(device)):
        return False
    state, pristine = model.state_dict(), _pristine(str(device))
    if state.keys() == pristine.keys() and all(torch.equal(state[k], v) for k, v in pristine.items()):
        return False
    if state.keys() == pristine.keys():
        model.load_state_dict(pristine)
    else:  # layers were replaced: load a fresh model for the next case
        pretrained.cache_clear()
        _pristine.cache_clear()
    return True


def laid_out(tensor: torch.Tensor, layout: str | None) -> torch.Tensor:
    """The same values in another memory layout: "channels_last" (4-D tensors), "transposed" (the last two
    axes' strides swapped: not contiguous), or as it is. Stored tensors are contiguous; a case's ``layout``
    says how its inputs reach the function, as a student's code may well hand them over."""
    if layout == "channels_last" and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    if layout == "transposed" and tensor.dim() >= 2:
        return tensor.transpose(-1, -2).contiguous().transpose(-1, -2)
    return tensor


def _decode(value, model, inputs: dict, device, layout: str | None = None):
    """A stored argument -> the value passed: "@model", "@<input name>", a settings dict, or as it is."""
    if isinstance(value, str) and value == "@model":
        return model
    if isinstance(value, str) and value.startswith("@"):
        return _decode(inputs[value[1:]], model, inputs, device, layout)
    if isinstance(value, torch.Tensor):  # a fresh copy: what the student's code does to it stays with this call
        return laid_out(value.detach().to(device, copy=True), layout)
    if isinstance(value, dict) and "@settings" in value:
        from convlens.style import StyleSettings

        return StyleSettings(**value["@settings"])
    if isinstance(value, list):
        return [_decode(v, model, inputs, device, layout) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v, model, inputs, device, layout) for v in value)
    if isinstance(value, dict):
        return {k: _decode(v, model, inputs, device, layout) for k, v in value.items()}
    return value


def _floating(value) -> torch.dtype | None:
    """The dtype of the first floating-point tensor in an argument (looking into lists, tuples, dicts)."""
    return next((t.dtype for _, t in _tensors(value, "") if t.is_floating_point()), None)


def _tensors(value, label: str):
    """(label, tensor) for every tensor in an argument, looking into lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        yield label, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{label}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{label}[{k!r}]")


def compute_case(spec: specs.Spec, module, case: dict, device: torch.device | None = None) -> CaseResult:
    """Call ``module.<spec.name>`` on one case (``{"model", "args", "kwargs", "inputs", "label"}``): the
    probes (checks/child/probes.py) look before and after the call; the first finding, else the result's parts."""
    try:
        call = _prepare(spec, module, case, device or check_device())
    except Exception as err:  # the kit's own code: never the student's fault
        return CaseResult.failure(Kind.KIT_ERROR, f"the kit could not run this check: {describe_exception(err)}")
    fn = getattr(module, spec.name, None)
    if fn is None:
        return CaseResult.failure(Kind.MISSING, f"helpers/{spec.topic}.py has no function {spec.name}")
    probes = [probe(call) for probe in PROBES]
    try:
        with contextlib.ExitStack() as stack:
            for probe in probes:
                stack.enter_context(probe.during())
            with _deterministic():
                try:
                    call.result = fn(*call.args, **call.kwargs)
                except NotImplementedError:
                    return CaseResult.failure(Kind.NOT_IMPLEMENTED, "not implemented yet: fill in the TODO in "
                                              f"helpers/{spec.topic}.py ({spec.name})")
                except Exception as err:  # any student error becomes one line
                    call.error = err
                for probe in probes:
                    probe.look()
                follow = (_follow_up(call.net, call.args, call.inputs)
                          if case.get("follow_up") and call.net is not None else {})
    except RecursionError as err:
        return CaseResult.failure(Kind.EXCEPTION, f"raised {describe_exception(err)}", "raises RecursionError")
    findings = [(probe.early, probe.finding()) for probe in probes]  # every one: some also undo (the weights)
    early = _first(finding for is_early, finding in findings if is_early)
    if early is not None or call.raises:
        return early or CaseResult(follow)  # a raising forward pass: only the clean-up is checked
    late = _first(finding for is_early, finding in findings if not is_early)
    if late is not None:
        return late
    outputs = _outputs(call)
    if isinstance(outputs, CaseResult):
        return outputs
    outputs.update(follow)
    if call.grad_case and "output" in outputs:
        outputs.update(_input_gradients(spec, call.result_parts["output"], call.watched))
    if case.get("rerun"):  # the result must not depend on torch's global random state
        torch.manual_seed(torch.initial_seed() + 1)
        again = compute_case(spec, module, {**case, "rerun": False}, device)
        if again.ok and any(not torch.equal(outputs[k], again.outputs[k]) for k in outputs):
            return CaseResult.failure(Kind.SIDE_EFFECT, "the result changes with torch's global random seed: draw "
                                      "random numbers from the generator made from `seed` "
                                      "(torch.rand(..., generator=generator))")
    return CaseResult(outputs)


def _prepare(spec: specs.Spec, module, case: dict, device: torch.device) -> Call:
    """The call's arguments, decoded from the case onto ``device``: the kit's own work."""
    fixture = fixtures.MODELS.get(case.get("model"))
    inputs = case.get("inputs", {})
    model = fixture.build(inputs, lambda: pretrained(str(device))).to(device) if fixture else None
    if fixture is not None and fixture.pretrained:
        _pristine(str(device))  # taken before any student code touches the model
    dtype = _floating(inputs.get("images")) if case.get("dtype") else None
    if model is not None and dtype is not None and dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)  # the model follows the images (a copy: the cache stays float32)
    layout = case.get("layout")
    args = [_decode(v, model, inputs, device, layout) for v in case["args"]]
    kwargs = {k: _decode(v, model, inputs, device, layout) for k, v in case.get("kwargs", {}).items()}
    # arg_names name the tensor arguments in order (the model and plain numbers have none)
    names = iter(case.get("arg_names", []))
    watched = [item for i, a in enumerate(args) if not isinstance(a, nn.Module)
               for item in _tensors(a, next(names, None) if isinstance(a, torch.Tensor) else f"argument {i + 1}")]
    watched = [(label or f"argument {i + 1}", t) for i, (label, t) in enumerate(watched)]
    watched += [item for k, v in kwargs.items() for item in _tensors(v, k)]
    call = Call(spec, module, case, device, fixture, model, args, kwargs, watched, spec.stand_ins_for(inputs))
    if call.grad_case:  # a loss gets inputs that require grad, as in the optimization loop
        for _, t in watched:
            if t.is_floating_point() and t.is_leaf:
                t.requires_grad_(True)
    return call


def _outputs(call: Call) -> dict | CaseResult:
    """{part: tensor on the CPU} of the result, or the failure that says what is wrong with its form."""
    spec = call.spec
    try:
        parts = call.result_parts = spec.collect(call.result)
    except specs.FormError as err:
        return CaseResult.failure(Kind.FORM, str(err))
    if "evaluated" in spec.outputs:  # what the model saw: (passes, lowest pixel, highest pixel, evaluations)
        parts["evaluated"] = torch.tensor(list(call.seen), dtype=torch.float64)
    if "last_evaluated" in spec.outputs:  # the image of the last loss evaluation (empty: none)
        last = getattr(call.seen, "last_evaluated", None)
        parts["last_evaluated"] = last if last is not None else torch.empty(0)
    expected_device = call.watched[0][1].device if call.watched else call.device
    expected_dtype = next((t.dtype for _, t in call.watched if t.is_floating_point()), None)
    outputs = {}
    for name, value in parts.items():
        if value is None:
            return CaseResult.failure(Kind.FORM, "returned None; did you forget the return statement?"
                                      if name == "output" else f"the {name} part is None", "returns None")
        if not isinstance(value, torch.Tensor):
            return CaseResult.failure(Kind.FORM, f"returned a Python {type(value).__name__}"
                                      + ("" if name == "output" else f" as {name}") + ", expected a torch.Tensor")
        if value.requires_grad and not spec.attached_ok:
            return CaseResult.failure(Kind.FORM, "the output still requires grad; return it with .detach()",
                                      "output still requires grad")
        if call.grad_case and not value.requires_grad:
            return CaseResult.failure(Kind.FORM, "the result carries no gradient back to the inputs (detached, "
                                      ".item(), numpy, or torch.no_grad()?): the optimizer differentiates this loss",
                                      "no gradient")
        if value.device.type != expected_device.type:
            return CaseResult.failure(Kind.FORM, f"output is on {value.device.type}, expected "
                                      f"{expected_device.type} (create new tensors with device=x.device)",
                                      "wrong device")
        if (name not in KIT_PARTS and value.is_floating_point() and expected_dtype is not None
                and value.dtype != expected_dtype):
            what = "output" if name == "output" else f"the {name} part"
            return CaseResult.failure(Kind.FORM, f"{what} is {_dtype(value.dtype)}, expected {_dtype(expected_dtype)}"
                                      " like the input: make new tensors like the input (torch.zeros_like(x), "
                                      "or dtype=x.dtype, device=x.device), and do not convert it", "wrong dtype")
        outputs[name] = value.detach().cpu()
    return outputs


def _input_gradients(spec: specs.Spec, output: torch.Tensor, watched: list) -> dict:
    """{"grad <label>": the gradient of the output's sum with respect to that input} for the inputs an
    optimizer differentiates (``spec.differentiated``); zeros where the output does not depend on it."""
    chosen = [(label, t) for label, t in watched if t.requires_grad
              and any(label == p or label.startswith(p + "[") for p in spec.differentiated)]
    if not chosen or not output.requires_grad:
        return {}
    try:
        grads = torch.autograd.grad(output.sum(), [t for _, t in chosen], allow_unused=True)
    except RuntimeError:  # a graph already freed or broken: the missing part says so
        return {}
    return {f"{GRADIENT}{label}": (torch.zeros_like(t) if g is None else g).detach().cpu()
            for (label, t), g in zip(chosen, grads)}


# Parts of a result that the kit builds (the history's table) or measures (the model's meter): their dtype is
# the kit's, not the student's.
KIT_PARTS = ("history", "evaluated", "last_evaluated")


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _follow_up(model: nn.Module, args: list, inputs: dict) -> dict:
    """One clean pass of ``model`` on the very images tensor the student's function was given (what a later
    cell of the notebook would do): its scores, and the gradient at a copy of it of one fixed random mix of
    all the scores. That mix is no exercise's objective (no class score, no loss), so this computes no answer;
    any hook left on the model, a changed input or another mode changes it."""
    images = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() == 4), None)
    if images is None:
        return {}
    try:
        x = images.detach().clone().requires_grad_(True)
        scores = model(x)
        mix = torch.randn(scores.shape[1], generator=torch.Generator().manual_seed(20240))
        (grad,) = torch.autograd.grad((scores * mix.to(scores)).sum(), x)
    except Exception:  # a model the student's code left broken: the missing outputs say so
        return {"after_scores": torch.full((1,), float("nan"))}
    return {"after_scores": scores.detach().cpu(), "after_grad": grad.detach().cpu()}


def _first(findings) -> CaseResult | None:
    """The failure of the first finding, (kind, message[, words for reports]), that is not None."""
    return next((CaseResult.failure(*finding) for finding in findings if finding is not None), None)


@contextlib.contextmanager
def _deterministic():
    """One CPU thread (every place that runs a check then sums in the same order, as the reference build
    did, so the notebook, kit.py check and the grader print the same line), TF32 off (it would add ~1e-3
    relative error on Ampere and newer GPUs), gradients on."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_num_threads())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, threads = old
        torch.set_num_threads(threads)
