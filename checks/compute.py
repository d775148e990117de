"""Run a student's function on one case and report what came out: the side that computes.

:func:`compute_case` is all that runs where the student's code runs (in the notebook, or in the child
process of ``kit.py check`` and of the grader). It gets a case's inputs, never its expected outputs, and
returns a :class:`checks.core.CaseResult`: the compared parts of the result (detached, on the CPU) or the
first problem it saw while running (an exception, an input changed in place, gradients or hooks left behind,
a forbidden library call, a result of the wrong form). A failure of the kit's own code while it prepares a
case is a ``KIT_ERROR``, never the student's. Judging happens elsewhere (checks/judge.py).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import inspect
import sys

import torch
from torch import nn

from checks import fixtures, specs
from checks.core import GRADIENT, CaseResult, Kind, describe_exception

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
    """Call ``module.<spec.name>`` on one case (``{"model", "args", "kwargs", "inputs", "label"}``)."""
    try:
        device = device or check_device()
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
        stand_ins = spec.stand_ins_for(inputs)
    except Exception as err:  # the kit's own code: never the student's fault
        return CaseResult.failure(Kind.KIT_ERROR, f"the kit could not run this check: {describe_exception(err)}")
    fn = getattr(module, spec.name, None)
    if fn is None:
        return CaseResult.failure(Kind.MISSING, f"helpers/{spec.topic}.py has no function {spec.name}")
    # arg_names name the tensor arguments in order (the model and plain numbers have none)
    names = iter(case.get("arg_names", []))
    watched = [item for i, a in enumerate(args) if not isinstance(a, nn.Module)
               for item in _tensors(a, next(names, None) if isinstance(a, torch.Tensor) else f"argument {i + 1}")]
    watched = [(label or f"argument {i + 1}", t) for i, (label, t) in enumerate(watched)]
    watched += [item for k, v in kwargs.items() for item in _tensors(v, k)]
    grad_case = spec.differentiable and case.get("grad", True)
    if grad_case:  # a loss gets inputs that require grad, as in the optimization loop
        for _, t in watched:
            if t.is_floating_point() and t.is_leaf:
                t.requires_grad_(True)
    before = [(t.detach().clone(), t.requires_grad) for _, t in watched]
    rng = torch.get_rng_state()
    net = model
    budget = case.get("budget") if net is not None else None
    meter = fixtures.metered(net, budget) if budget else contextlib.nullcontext([0, 0.0, 0.0, 0])
    flags = [p.requires_grad for p in net.parameters()] if net is not None else []
    modes = [m.training for m in net.modules()] if net is not None else []
    hooks = hook_count(net) if net is not None else 0
    raises = fixture is not None and fixture.raises
    called: list[str] = []
    try:
        with meter as seen, _restored(net) as found, _inplace(net, fixture is not None and fixture.inplace), \
                (fixtures.raising_forward(net) if raises else contextlib.nullcontext()) as raising, \
                _swapped(module, stand_ins), _watching(spec.forbidden, called), _deterministic():
            try:
                result = fn(*args, **kwargs)
                error = None
            except NotImplementedError:
                return CaseResult.failure(Kind.NOT_IMPLEMENTED, "not implemented yet: fill in the TODO in "
                                          f"helpers/{spec.topic}.py ({spec.name})")
            except Exception as err:  # any student error becomes one line
                result, error = None, err
            rng_changed = not torch.equal(torch.get_rng_state(), rng)
            torch.set_rng_state(rng)
            if raising:
                raising["on"] = False
            follow = _follow_up(net, args, inputs) if case.get("follow_up") and net is not None else {}
            # Measured before the blocks above undo what the call left behind (for the next case).
            left = net is not None and hook_count(net) != hooks + raises + bool(budget)
            grads = net is not None and any(p.grad is not None for p in net.parameters())
            changed_flags = net is not None and [p.requires_grad for p in net.parameters()] != flags
            changed_modes = net is not None and [m.training for m in net.modules()] != modes
            if changed_modes:  # undone for the next case; reported below
                for m, mode in zip(net.modules(), modes):
                    m.training = mode
    except RecursionError as err:
        return CaseResult.failure(Kind.EXCEPTION, f"raised {describe_exception(err)}", "raises RecursionError")
    weights_changed = fixture is not None and fixture.pretrained and _weights_changed(net, device)  # undone
    when = " when the forward pass raises" if raises else ""
    # What the call left behind, in the order a student should hear of it: before its own exception (a
    # clean-up that fails on a raising forward pass is the point of that case), then after it.
    first = _first([
        (called, Kind.FORBIDDEN, f"calls {called[0] if called else ''}: the exercise is to write it yourself"),
        (left, Kind.SIDE_EFFECT, f"hooks stay registered on the model{when}; remove every handle you registered "
                                 "(handle.remove()) whatever happens: try: ... finally:"),
        (changed_modes, Kind.SIDE_EFFECT, "the model was left in another mode (model.train() or .eval() on it or a "
                                          "layer; in training mode BatchNorm also changes its running statistics); "
                                          "leave the model as it was given"),
        (weights_changed, Kind.SIDE_EFFECT, "the model's weights were changed in place; never modify the model"),
        (found.get("inplace"), Kind.SIDE_EFFECT, "the model's inplace flag was changed and not restored; put back "
                                                 "every setting you change on the model (try: ... finally:)"),
        (isinstance(error, fixtures.OverBudget), Kind.EXCEPTION,
         f"the loop did not stop: it went on past {budget} forward passes of the model, more than "
         f"{case.get('budget_argument', 'its step budget')} allows; count the steps and stop at the budget",
         "ignores its step budget"),
        (error is not None and not (raises and isinstance(error, fixtures.Interrupted)), Kind.EXCEPTION,
         f"raised {describe_exception(error)}{_explain(error)}" if error is not None else "",
         f"raises {type(error).__name__}"),
    ])
    if first is not None or raises:
        return first or CaseResult(follow)  # a raising forward pass: only the clean-up is checked
    first = _first([
        (changed_flags, Kind.SIDE_EFFECT, "the model's requires_grad flags were changed and not restored"),
        (rng_changed, Kind.SIDE_EFFECT, "torch's global random state was changed (torch.manual_seed, or random "
                                        "numbers drawn without a generator); leave it as it was: draw from a "
                                        "torch.Generator made from `seed`"),
        (grads, Kind.SIDE_EFFECT, "gradients leaked into the model's parameters (.grad is set); differentiate "
                                  "with respect to the input only"),
    ])
    if first is not None:
        return first
    first = _first([finding for (label, arg), (value, requires_grad) in zip(watched, before) for finding in (
        (arg.shape != value.shape or not torch.equal(arg.detach(), value), Kind.SIDE_EFFECT,
         f"{label} was modified in place; work on a copy (x.clone())"),
        (arg.grad is not None and not requires_grad, Kind.SIDE_EFFECT,
         f"{label} has a .grad left on it; compute gradients on a copy"),
        (arg.requires_grad != requires_grad, Kind.SIDE_EFFECT,
         f"{label}.requires_grad was changed from {requires_grad}; use a copy"))])
    if first is not None:
        return first
    try:
        parts = spec.collect(result)
    except specs.FormError as err:
        return CaseResult.failure(Kind.FORM, str(err))
    if "evaluated" in spec.outputs:  # what the model saw: (passes, lowest pixel, highest pixel, evaluations)
        parts["evaluated"] = torch.tensor(seen, dtype=torch.float64)
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
        if grad_case and not value.requires_grad:
            return CaseResult.failure(Kind.FORM, "the result carries no gradient back to the inputs (detached, "
                                      ".item(), numpy, or torch.no_grad()?): the optimizer differentiates this loss",
                                      "no gradient")
        expected_device = watched[0][1].device if watched else device
        if value.device.type != expected_device.type:
            return CaseResult.failure(Kind.FORM, f"output is on {value.device.type}, expected "
                                      f"{expected_device.type} (create new tensors with device=x.device)",
                                      "wrong device")
        expected_dtype = next((t.dtype for _, t in watched if t.is_floating_point()), None)
        if (name not in KIT_PARTS and value.is_floating_point() and expected_dtype is not None
                and value.dtype != expected_dtype):
            what = "output" if name == "output" else f"the {name} part"
            return CaseResult.failure(Kind.FORM, f"{what} is {_dtype(value.dtype)}, expected {_dtype(expected_dtype)}"
                                      " like the input: make new tensors like the input (torch.zeros_like(x), "
                                      "or dtype=x.dtype, device=x.device), and do not convert it", "wrong dtype")
        outputs[name] = value.detach().cpu()
    outputs.update(follow)
    if grad_case and "output" in outputs:
        outputs.update(_input_gradients(spec, parts["output"], watched))
    if case.get("rerun"):  # the result must not depend on torch's global random state
        torch.manual_seed(torch.initial_seed() + 1)
        again = compute_case(spec, module, {**case, "rerun": False}, device)
        if again.ok and any(not torch.equal(outputs[k], again.outputs[k]) for k in outputs):
            return CaseResult.failure(Kind.SIDE_EFFECT, "the result changes with torch's global random seed: draw "
                                      "random numbers from the generator made from `seed` "
                                      "(torch.rand(..., generator=generator))")
    return CaseResult(outputs)


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
KIT_PARTS = ("history", "evaluated")


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


def _first(findings: list) -> CaseResult | None:
    """The failure of the first (condition, kind, message[, words for reports]) whose condition holds, or
    None."""
    return next((CaseResult.failure(*finding[1:]) for finding in findings if finding[0]), None)


# Messages of errors with a typical cause in these exercises: (part of the message, the cause).
_CAUSES = (
    ("BackwardHookFunction", "full backward hooks cannot handle in-place activations: use a forward hook that "
                             "calls output.register_hook(...)"),
    ("'RemovableHandle'", "a forward hook's return value replaces the module's output: don't return "
                          "output.register_hook(...)"),
    ("does not require grad and does not have a grad_fn", "the tensor you differentiate with respect to needs "
     "requires_grad_(True) (on a detached copy); the model's parameters are frozen, so only the input can"),
    ("One of the differentiated Tensors appears to not have been used in the graph", "differentiate with respect "
     "to the very tensor the model was called on (not a copy made after the forward pass)"),
    ("Trying to backward through the graph a second time", "each backward needs its own forward pass: compute the "
     "loss again inside the loop or the closure"),
    ("a leaf Variable that requires grad is being used in an in-place operation", "change a tensor that requires "
     "grad inside torch.no_grad() (the update and the clamp), or work on a copy"),
    ("grad can be implicitly created only for scalar outputs", "sum the selected scores to one number before "
     "differentiating"),
    ("Expected all tensors to be on the same device", "create new tensors on the input's device "
     "(device=x.device, torch.zeros_like)"),
    ("must have the same dtype", "create new tensors with the input's dtype (torch.zeros_like, dtype=x.dtype)"),
    ("Can't call numpy() on Tensor that requires grad", "detach before leaving torch: .detach().cpu().numpy()"),
    ("view size is not compatible with input tensor's size and stride", "use .reshape(...) (the tensor is not "
     "contiguous), or .contiguous() before .view(...)"),
    ("is out of bounds", "an index is past the end of its axis: check which axis you index (classes are dim 1)"),
)


def _explain(err: BaseException) -> str:
    """'; <the likely cause>' for errors that have a typical one, else ''."""
    text = str(err)
    return next((f"; {cause}" for part, cause in _CAUSES if part in text), "")


def hook_count(model: nn.Module) -> int:
    """How many hooks are registered on ``model`` and its submodules."""
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS)


@contextlib.contextmanager
def _restored(model: nn.Module | None):
    """Afterwards, for the next case: remove hooks added meanwhile, restore flags, drop .grad. Yields a dict
    that says, once the block is over, which module flag the code changed (``{"inplace": "inplace"}``)."""
    found: dict = {}
    if model is None:
        yield found
        return
    hooks = {(id(m), attr): set(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS}
    inplace = {m: m.inplace for m in model.modules() if hasattr(m, "inplace")}
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield found
    finally:
        for m in model.modules():
            for attr in HOOK_DICTS:
                registry = getattr(m, attr, None)
                for key in [k for k in (registry or {}) if k not in hooks.get((id(m), attr), set())]:
                    del registry[key]
        for m, value in inplace.items():
            if getattr(m, "inplace", value) != value:
                found["inplace"] = "inplace"
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
