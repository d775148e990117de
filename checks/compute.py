"""Run a student's function on one case and report what came out: the side that computes.

:func:`compute_case` is all that runs where the student's code runs (in the notebook, in ``kit.py check``,
or in the grader's unprivileged child). It gets a case's inputs, never its expected outputs, and returns
``{"outputs": {name: tensor}, "problem": str | None, "kind": str | None}``: the compared parts of the
result (detached, on the CPU) and the first problem it saw while running (an exception, an input changed in
place, gradients or hooks left behind, a forbidden library call, a result of the wrong form). Judging the
outputs happens elsewhere (checks/judge.py).
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import sys

import torch
from torch import nn

from checks import specs
from checks.core import describe_exception

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


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


def _weights_changed(model: nn.Module, device: torch.device) -> bool:
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


def model_for(case: dict, device: torch.device) -> nn.Module | None:
    kind = case.get("model")
    if kind in ("pretrained", "inplace"):
        return pretrained(str(device))
    if kind == "raising":
        return specs.RaisingForward(pretrained(str(device)))
    if kind == "smooth":
        return specs.smooth_network(case["inputs"]["network"]).to(device)
    if kind == "wavy":
        return specs.wavy_network(case["inputs"]["network"]).to(device)
    if kind == "features":
        return specs.feature_network(case["inputs"]["network"]).to(device)
    return None


def _decode(value, model, inputs: dict, device):
    """A stored argument -> the value passed: "@model", "@<input name>", a settings dict, or as it is."""
    if isinstance(value, str) and value == "@model":
        return model
    if isinstance(value, str) and value.startswith("@"):
        return _decode(inputs[value[1:]], model, inputs, device)
    if isinstance(value, torch.Tensor):  # a fresh copy: what the student's code does to it stays with this call
        return value.detach().to(device, copy=True)
    if isinstance(value, dict) and "@settings" in value:
        from convlens.style import StyleSettings

        return StyleSettings(**value["@settings"])
    if isinstance(value, list):
        return [_decode(v, model, inputs, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v, model, inputs, device) for v in value)
    if isinstance(value, dict):
        return {k: _decode(v, model, inputs, device) for k, v in value.items()}
    return value


def compute_case(spec: specs.Spec, module, case: dict, device: torch.device | None = None) -> dict:
    """Call ``module.<spec.name>`` on one case (``{"model", "args", "kwargs", "inputs", "label"}``)."""
    device = device or check_device()
    model = model_for(case, device)
    if isinstance(model, nn.Module) and model is pretrained(str(device)):
        _pristine(str(device))  # taken before any student code touches the model
    inputs = case.get("inputs", {})
    args = [_decode(v, model, inputs, device) for v in case["args"]]
    kwargs = {k: _decode(v, model, inputs, device) for k, v in case.get("kwargs", {}).items()}
    fn = getattr(module, spec.name, None)
    if fn is None:
        return _problem("missing", f"helpers/{spec.topic}.py has no function {spec.name}")
    net = model.net if isinstance(model, specs.RaisingForward) else model
    watched = [a for a in args if isinstance(a, torch.Tensor)]
    before = [(a.detach().clone(), a.requires_grad) for a in watched]
    flags = [p.requires_grad for p in net.parameters()] if net is not None else []
    hooks = hook_count(net) if net is not None else 0
    called: list[str] = []
    try:
        with _restored(net), _inplace(net, case.get("model") == "inplace"), _swapped(module, specs.stand_ins(
                spec, inputs)), _watching(spec.forbidden, called), _deterministic():
            try:
                result = fn(*args, **kwargs)
                error = None
            except NotImplementedError:
                return _problem("not_implemented", f"not implemented yet: fill in the TODO in helpers/{spec.topic}.py "
                                f"({spec.name})")
            except specs.Interrupted as err:
                result, error = None, err
            except Exception as err:  # any student error becomes one line
                result, error = None, err
            left = net is not None and hook_count(net) != hooks
            grads = net is not None and any(p.grad is not None for p in net.parameters())
            changed_flags = net is not None and [p.requires_grad for p in net.parameters()] != flags
    except RecursionError as err:
        return _problem("exception", f"raised {describe_exception(err)}")
    if called:
        return _problem("forbidden", f"calls {called[0]}: the exercise is to write it yourself")
    if left:
        when = " when the forward pass raises" if case.get("model") == "raising" else ""
        return _problem("side_effect", f"hooks stay registered on the model{when}; remove them in a finally: "
                        "block (try: ... finally: handle.remove())")
    if net is not None and _weights_changed(net, device):
        return _problem("side_effect", "the model's weights were changed in place; never modify the model")
    if case.get("model") == "raising":
        return {"outputs": {}, "problem": None, "kind": None}  # only the clean-up is checked here
    if error is not None:
        return _problem("exception", f"raised {describe_exception(error)}{_explain(error)}")
    if changed_flags:
        return _problem("side_effect", "the model's requires_grad flags were changed and not restored")
    if grads:
        return _problem("side_effect", "gradients leaked into the model's parameters (.grad is set); differentiate "
                        "with respect to the input only")
    names = case.get("arg_names", [])
    for i, (arg, (value, requires_grad)) in enumerate(zip(watched, before)):
        label = names[i] if i < len(names) else f"argument {i + 1}"
        if arg.shape != value.shape or not torch.equal(arg.detach(), value):
            return _problem("side_effect", f"{label} was modified in place; work on a copy (x.clone())")
        if arg.grad is not None and not requires_grad:
            return _problem("side_effect", f"{label} has a .grad left on it; compute gradients on a copy")
        if arg.requires_grad != requires_grad:
            return _problem("side_effect", f"{label}.requires_grad was changed from {requires_grad}; use a copy")
    try:
        parts = specs.collect(spec, result)
    except specs.FormError as err:
        return _problem("form", str(err))
    outputs = {}
    for name, value in parts.items():
        if value is None:
            return _problem("form", "returned None; did you forget the return statement?" if name == "output"
                            else f"the {name} part is None")
        if not isinstance(value, torch.Tensor):
            return _problem("form", f"returned {type(value).__name__}" + ("" if name == "output" else f" as {name}")
                            + ", expected a torch.Tensor")
        if value.requires_grad and not spec.attached_ok:
            return _problem("form", "the output still requires grad; return it with .detach()")
        expected_device = watched[0].device if watched else device
        if value.device.type != expected_device.type:
            return _problem("form", f"output is on {value.device.type}, expected {expected_device.type} (create new "
                            "tensors with device=x.device)")
        outputs[name] = value.detach().cpu()
    if case.get("rerun"):  # the result must not depend on torch's global random state
        torch.manual_seed(torch.initial_seed() + 1)
        again = compute_case(spec, module, {**case, "rerun": False}, device)
        if not again["problem"] and any(not torch.equal(outputs[k], again["outputs"][k]) for k in outputs):
            return _problem("side_effect", "the result changes with torch's global random seed: draw random numbers "
                            "from the generator made from `seed` (torch.rand(..., generator=generator))")
    return {"outputs": outputs, "problem": None, "kind": None}


def _problem(kind: str, message: str) -> dict:
    return {"outputs": {}, "problem": message, "kind": kind}


def _explain(err: BaseException) -> str:
    """The likely cause of errors that have a typical one."""
    text = str(err)
    if "BackwardHookFunction" in text:
        return ("; full backward hooks cannot handle in-place activations: use a forward hook that calls "
                "output.register_hook(...)")
    if "'RemovableHandle'" in text:
        return "; a forward hook's return value replaces the module's output: don't return output.register_hook(...)"
    return ""


def hook_count(model: nn.Module) -> int:
    """How many hooks are registered on ``model`` and its submodules."""
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS)


@contextlib.contextmanager
def _restored(model: nn.Module | None):
    """Afterwards, for the next case: remove hooks added meanwhile, restore flags, drop .grad."""
    if model is None:
        yield
        return
    hooks = {(id(m), attr): set(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS}
    inplace = {m: m.inplace for m in model.modules() if hasattr(m, "inplace")}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    finally:
        for m in model.modules():
            for attr in HOOK_DICTS:
                registry = getattr(m, attr, None)
                for key in [k for k in (registry or {}) if k not in hooks.get((id(m), attr), set())]:
                    del registry[key]
        for m, value in inplace.items():
            m.inplace = value
        for p, value in flags:
            p.requires_grad_(value)
            p.grad = None


@contextlib.contextmanager
def _inplace(model: nn.Module | None, on: bool):
    """Every nn.ReLU-type activation in-place for the duration (when ``on``)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)] if (on and model is not None) else []
    old = [m.inplace for m in relus]
    try:
        for m in relus:
            m.inplace = True
        yield
    finally:
        for m, value in zip(relus, old):
            m.inplace = value


@contextlib.contextmanager
def _swapped(module, replacements: dict):
    """The student's module with some of its functions replaced by stand-ins, for the duration."""
    saved = {name: getattr(module, name, None) for name in replacements}
    try:
        for name, fn in replacements.items():
            setattr(module, name, fn)
        yield
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


def _resolve(dotted: str):
    """The object at a dotted path (``captum.attr.Occlusion``), or None when it cannot be imported."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _code_objects(obj) -> list:
    """The code objects a call of ``obj`` (a function, or a class's own methods) runs; decorators are
    looked through, since a decorator's wrapper code is shared by many functions."""
    functions = [f for f in vars(obj).values() if callable(f)] if isinstance(obj, type) else [obj]
    return [inspect.unwrap(f).__code__ for f in functions if hasattr(inspect.unwrap(f), "__code__")]


@contextlib.contextmanager
def _watching(forbidden: tuple, called: list):
    """Record (in ``called``) the first forbidden library implementation entered while the student's code
    runs. A profile hook sees every Python call, however the student reached the function."""
    codes = {}
    for dotted in forbidden:
        obj = _resolve(dotted)
        for code in _code_objects(obj) if obj is not None else ():
            codes.setdefault(code, dotted)
    if not codes:
        yield
        return

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in codes and not called:
            called.append(codes[frame.f_code])

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(old)


@contextlib.contextmanager
def _deterministic():
    """TF32 off (it would add ~1e-3 relative error on Ampere and newer GPUs); gradients on."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
