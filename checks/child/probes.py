"""What a student's call may change besides its result, one probe per thing (hooks, modes, weights, flags,
the random state, the inputs, forbidden calls, a step budget, its own exception).

A probe looks before the call (when it is made), may hold something in place while the call runs
(:meth:`Probe.during`), looks again right after the call, before anything is undone (:meth:`Probe.look`),
and then says what it found (:meth:`Probe.finding`): None, or (kind, message, words for reports). Whatever
it changed or saw changed it puts back, so the next case starts from the same state.
:func:`checks.child.compute.compute_case` runs :data:`PROBES` in the order a student should hear of their
findings; adding a side-effect check is adding one probe here.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from checks.child import fixtures, specs
from checks.child.core import Kind, describe_exception

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


@dataclass
class Call:
    """One call of a student's function: what it gets, and once it has run, what it returned or raised."""

    spec: specs.Spec
    module: object
    case: dict
    device: torch.device
    fixture: fixtures.ModelFixture | None
    net: nn.Module | None  # the model the call gets (None for the losses)
    args: list
    kwargs: dict
    watched: list  # (label, tensor) of every tensor argument
    stand_ins: dict  # the other exercises' reference implementations, put in the student's module
    result: object = None
    error: BaseException | None = None
    seen: list = field(default_factory=lambda: [0, 0.0, 0.0, 0])  # the meter: passes, lowest, highest, evals

    result_parts: dict = field(default_factory=dict)

    @property
    def inputs(self) -> dict:
        return self.case.get("inputs", {})

    @property
    def grad_case(self) -> bool:  # a loss: its inputs require grad, as in the optimization loop
        return self.spec.differentiable and self.case.get("grad", True)

    @property
    def raises(self) -> bool:  # the case's model raises in its forward pass: only the clean-up is checked
        return self.fixture is not None and self.fixture.raises

    @property
    def budget(self):
        return self.case.get("budget") if self.net is not None else None


class Probe:
    """Looks at one thing before and after the call. ``early``: heard of before the call's own exception
    (a clean-up that fails when the forward pass raises is the point of that case). A probe that only sees
    whether something changed sets ``changed`` and says ``message``."""

    early = False
    message = ""

    def __init__(self, call: Call):
        self.call = call
        self.changed = False

    def during(self):
        return contextlib.nullcontext()

    def look(self) -> None:
        """Right after the call, before any probe undoes anything."""

    def finding(self):
        """None, or (kind, message[, words for reports])."""
        return (Kind.SIDE_EFFECT, self.message) if self.changed else None


def hook_count(model: nn.Module) -> int:
    """How many hooks are registered on ``model`` and its submodules."""
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS)


class Forbidden(Probe):
    """A library implementation of the exercise, entered however the student reached it."""

    early = True

    def __init__(self, call: Call):
        super().__init__(call)
        self.called: list[str] = []

    def during(self):
        return watching(self.call.spec.forbidden, self.called)

    def finding(self):
        if self.called:
            return Kind.FORBIDDEN, f"calls {self.called[0]}: the exercise is to write it yourself"


class Hooks(Probe):
    """Hooks left registered on the model (the kit's own meter and raising forward pass keep one each)."""

    early = True

    def __init__(self, call: Call):
        super().__init__(call)
        net = call.net
        self.count = hook_count(net) if net is not None else 0
        self.registered = {} if net is None else {(id(m), attr): set(getattr(m, attr, {}) or {})
                                                  for m in net.modules() for attr in HOOK_DICTS}
        self.left = False

    @contextlib.contextmanager
    def during(self):
        try:
            yield
        finally:  # removed for the next case
            for m in self.call.net.modules() if self.call.net is not None else ():
                for attr in HOOK_DICTS:
                    registry = getattr(m, attr, None)
                    for key in [k for k in (registry or {}) if k not in self.registered.get((id(m), attr), set())]:
                        del registry[key]

    def look(self):
        call = self.call
        self.left = call.net is not None and hook_count(call.net) != self.count + call.raises + bool(call.budget)

    def finding(self):
        if self.left:
            when = " when the forward pass raises" if self.call.raises else ""
            return (Kind.SIDE_EFFECT, f"hooks stay registered on the model{when}; remove every handle you "
                                      "registered (handle.remove()) whatever happens: try: ... finally:")


class Modes(Probe):
    """The model or a layer left in another mode (train/eval)."""

    message = ("the model was left in another mode (model.train() or .eval() on it or a "
               "layer; in training mode BatchNorm also changes its running statistics); "
               "leave the model as it was given")

    early = True

    def __init__(self, call: Call):
        super().__init__(call)
        self.modes = [m.training for m in call.net.modules()] if call.net is not None else []

    def look(self):
        net = self.call.net
        self.changed = net is not None and [m.training for m in net.modules()] != self.modes
        if self.changed:  # undone for the next case
            for m, mode in zip(net.modules(), self.modes):
                m.training = mode


class Weights(Probe):
    """The kit's pretrained weights changed in place (undone: the next case gets them back)."""

    early = True

    def finding(self):
        from checks.child.compute import weights_changed

        call = self.call
        if call.fixture is not None and call.fixture.pretrained and weights_changed(call.net, call.device):
            return Kind.SIDE_EFFECT, "the model's weights were changed in place; never modify the model"


class InplaceFlag(Probe):
    """A module's ``inplace`` setting changed and not restored. For the "inplace" model, every ReLU is
    in-place while the call runs (as a student's own model may be)."""

    message = ("the model's inplace flag was changed and not restored; put back every "
               "setting you change on the model (try: ... finally:)")

    early = True

    def __init__(self, call: Call):
        super().__init__(call)
        net = call.net
        self.saved = {m: m.inplace for m in net.modules() if hasattr(m, "inplace")} if net is not None else {}
        self.forced = [m for m in net.modules() if isinstance(m, nn.ReLU)] \
            if (net is not None and call.fixture is not None and call.fixture.inplace) else []

    @contextlib.contextmanager
    def during(self):
        try:
            for m in self.forced:
                m.inplace = True
            yield
        finally:
            for m in self.forced:
                m.inplace = self.saved[m]
            for m, value in self.saved.items():
                if getattr(m, "inplace", value) != value:
                    self.changed = True
                m.inplace = value


class Budget(Probe):
    """A loop that goes on past the forward passes its step budget allows; also the meter that counts the
    passes and the pixel range the model saw (the ``evaluated`` part)."""

    early = True

    @contextlib.contextmanager
    def during(self):
        if not self.call.budget:
            yield
            return
        with fixtures.metered(self.call.net, self.call.budget) as seen:
            self.call.seen = seen
            yield

    def finding(self):
        if isinstance(self.call.error, fixtures.OverBudget):
            return (Kind.EXCEPTION, f"the loop did not stop: it went on past {self.call.budget} forward passes of "
                                    f"the model, more than {self.call.case.get('budget_argument', 'its step budget')} "
                                    "allows; count the steps and stop at the budget", "ignores its step budget")


class RaisingForward(Probe):
    """For the "raising" model: its forward pass raises while the call runs (and only then)."""

    def __init__(self, call: Call):
        super().__init__(call)
        self.switch = None

    @contextlib.contextmanager
    def during(self):
        if not self.call.raises:
            yield
            return
        with fixtures.raising_forward(self.call.net) as switch:
            self.switch = switch
            yield

    def look(self):
        if self.switch:
            self.switch["on"] = False  # the follow-up pass after the call must run


class Raised(Probe):
    """The call's own exception (the raising model's interruption is expected)."""

    early = True

    def finding(self):
        error = self.call.error
        if error is None or isinstance(error, fixtures.OverBudget) or (
                self.call.raises and isinstance(error, fixtures.Interrupted)):
            return None
        return Kind.EXCEPTION, f"raised {describe_exception(error)}{explain(error)}", f"raises {type(error).__name__}"


class Flags(Probe):
    """The model's ``requires_grad`` flags changed; restored, and every ``.grad`` dropped, afterwards."""

    message = "the model's requires_grad flags were changed and not restored"

    def __init__(self, call: Call):
        super().__init__(call)
        self.flags = [(p, p.requires_grad) for p in call.net.parameters()] if call.net is not None else []

    @contextlib.contextmanager
    def during(self):
        try:
            yield
        finally:
            for p, value in self.flags:
                p.requires_grad_(value)
                p.grad = None

    def look(self):
        net = self.call.net
        self.changed = net is not None and [p.requires_grad for p in net.parameters()] != [v for _, v in self.flags]


class RandomState(Probe):
    """torch's global random state changed (restored at once: the follow-up pass draws nothing from it)."""

    message = ("torch's global random state was changed (torch.manual_seed, or random "
               "numbers drawn without a generator); leave it as it was: draw from a "
               "torch.Generator made from `seed`")

    def __init__(self, call: Call):
        super().__init__(call)
        self.state = torch.get_rng_state()

    def look(self):
        self.changed = not torch.equal(torch.get_rng_state(), self.state)
        torch.set_rng_state(self.state)


class Gradients(Probe):
    """Gradients left in the model's parameters (dropped by :class:`Flags`)."""

    message = ("gradients leaked into the model's parameters (.grad is set); differentiate "
               "with respect to the input only")

    def look(self):
        net = self.call.net
        self.changed = net is not None and any(p.grad is not None for p in net.parameters())


class Inputs(Probe):
    """An input changed in place, given a ``.grad``, or its ``requires_grad`` changed."""

    def __init__(self, call: Call):
        super().__init__(call)
        self.before = [(t.detach().clone(), t.requires_grad) for _, t in call.watched]

    def finding(self):
        for (label, arg), (value, requires_grad) in zip(self.call.watched, self.before):
            if arg.shape != value.shape or not torch.equal(arg.detach(), value):
                return Kind.SIDE_EFFECT, f"{label} was modified in place; work on a copy (x.clone())"
            if arg.grad is not None and not requires_grad:
                return Kind.SIDE_EFFECT, f"{label} has a .grad left on it; compute gradients on a copy"
            if arg.requires_grad != requires_grad:
                return Kind.SIDE_EFFECT, f"{label}.requires_grad was changed from {requires_grad}; use a copy"
        return None


class StandIns(Probe):
    """The other exercises the function calls, replaced by their reference implementations while it runs
    (one function, one check)."""

    @contextlib.contextmanager
    def during(self):
        module, replacements = self.call.module, self.call.stand_ins
        saved = {name: getattr(module, name, None) for name in replacements}
        try:
            for name, fn in replacements.items():
                setattr(module, name, fn)
            yield
        finally:
            for name, fn in saved.items():
                setattr(module, name, fn)


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


def explain(err: BaseException) -> str:
    """'; <the likely cause>' for errors that have a typical one, else ''."""
    text = str(err)
    return next((f"; {cause}" for part, cause in _CAUSES if part in text), "")


def hook_count(model: nn.Module) -> int:
    """How many hooks are registered on ``model`` and its submodules."""
    return sum(len(getattr(m, attr, {}) or {}) for m in model.modules() for attr in HOOK_DICTS)


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
def watching(forbidden: tuple, called: list):
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


# In the order a student should hear of their findings: what the call left behind, then its own exception
# (the ``early`` ones), then the rest. Their ``during`` blocks nest in this order (the first is outermost).
PROBES = (Forbidden, Hooks, Modes, Weights, InplaceFlag, Budget, RaisingForward, StandIns, Raised,
          Flags, RandomState, Gradients, Inputs)
