"""The process that runs one topic's checks on one submission, forked by ``grader.runner`` from a
forkserver that has already imported torch and friends (so a worker starts in well under a second).

:func:`serve` first cuts the process off from the grader: its own session (so the grader can kill it with
everything it spawns), the scratch folder as working directory, HOME and TMPDIR, resource limits, and a
``sys.path`` that finds ``checks`` and ``helpers`` only in the prepared workspace. Channels:

  * commands (JSON): ``{"import": true}``, ``{"check": NAME}``, ``{"quit": true}``;
  * replies (JSON), one per command; only the worker's own code writes there;
  * fds 1 and 2: whatever anything prints, captured by the grader. After each command the worker writes a
    marker there, so the grader can cut the stream into one piece per check.

Replies are JSON, never pickles: the grader must not unpickle anything a submission could have shaped.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
import traceback

# Modules whose attributes the student's code must not replace while it runs.
GUARDED_PREFIXES = ("checks", "helpers.model", "helpers.images", "helpers.plotting", "grader")


def serve(kit: str, topic: str, scratch: str, env: dict, marker: str, threads: int, memory: int,
          max_file: int, commands, replies, output) -> None:
    """Entry point of a worker process (see the module docstring). Arguments are picklable for forkserver."""
    start = time.perf_counter()
    _isolate(kit, scratch, env, memory, max_file, output)

    def send(message: dict) -> None:
        replies.send_bytes(json.dumps(message).encode())

    try:
        state = Session(topic, threads)
    except BaseException:  # a broken instructor kit: the grader reports it as a grader error
        send({"event": "fatal", "error": traceback.format_exc(limit=5)})
        return
    send({"event": "ready", "seconds": round(time.perf_counter() - start, 3)})
    while True:
        try:
            command = json.loads(commands.recv_bytes())
        except EOFError:
            return
        if command.get("quit"):
            return
        reply = state.import_student() if "import" in command else state.run_check(command["check"])
        _end_piece(marker)
        send(reply)


def _isolate(kit: str, scratch: str, env: dict, memory: int, max_file: int, output) -> None:
    import resource
    import tempfile

    try:
        os.setsid()
    except OSError:
        pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # forget a temp folder chosen before TMPDIR changed
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Only the workspace may provide checks/ and helpers/: drop the grader's own kit and the working folder.
    sys.path[:] = [kit] + [p for p in sys.path if p and not os.path.isdir(os.path.join(p, "checks"))]
    for name in [m for m in sys.modules if m.split(".")[0] in ("checks", "helpers")]:
        del sys.modules[name]


def _end_piece(marker: str) -> None:
    """Flush what the student printed, then write the marker that closes this command's output."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a student may have replaced or closed sys.stdout
            pass
    os.write(2, marker.encode())


class Session:
    """One topic's checks, the model they share and the guards around each student call."""

    def __init__(self, topic: str, threads: int):
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.torch = torch
        self.topic = topic
        from checks.core import where_raised  # imported before any student code runs, so it is the kit's own
        import checks.references

        self.where_raised = where_raised
        try:  # read the reference tensors before any student code runs: later edits to the file do not matter
            checks.references.load(topic)
        except Exception:
            pass  # a missing or unreadable file: the check itself reports it
        self.model = None
        try:
            from helpers.model import load_model
        except ImportError:
            load_model = None
        if load_model is not None:
            self.model = load_model("cpu")
            self.pristine = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.checks_module = None
        self.guarded = self._guard_snapshot()

    # ----- the student's module

    def import_student(self) -> dict:
        """Import helpers.<topic> (the student's file), then checks.<topic>."""
        import importlib

        start = time.perf_counter()
        try:
            importlib.import_module(f"helpers.{self.topic}")
        except BaseException as err:
            return {"event": "imported", "error": describe_import_error(err, self.topic, self.where_raised),
                    "seconds": time.perf_counter() - start}
        try:
            self.checks_module = importlib.import_module(f"checks.{self.topic}")
        except BaseException as err:  # checks/<topic>.py may import names the student's file lacks
            return {"event": "imported", "error": "the checks could not load it: "
                    + describe_import_error(err, self.topic, self.where_raised), "seconds": time.perf_counter() - start}
        tampered = self._guard_changes()
        self.guarded = self._guard_snapshot()  # now also covers checks.<topic>
        return {"event": "imported", "error": None, "tampered": tampered, "seconds": time.perf_counter() - start,
                "checks": list(getattr(self.checks_module, "CHECKS", {}))}

    # ----- one check

    def run_check(self, name: str) -> dict:
        checks = getattr(self.checks_module, "CHECKS", {})
        if name not in checks:
            return {"event": "result", "check": name, "passed": False, "status": "grader_error",
                    "line": f"FAIL {name}: no check of that name in checks/{self.topic}.py", "seconds": 0.0}
        check = checks[name]
        self._reset_global_state()
        start = time.perf_counter()
        status = None
        try:
            kwargs = {"model": self.model} if self.model is not None and _accepts(check, "model") else {}
            verdict = check(**kwargs)
            passed = bool(verdict)
            line = str(getattr(verdict, "line", verdict))
        except SystemExit as err:
            passed, status = False, "exception"
            line = f"FAIL {name}: the code called sys.exit({err.code!r}); return a value instead"
        except BaseException as err:  # escaped the check: raised by student code it called, or by the check
            passed, status = False, "exception"
            message = f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
            location = self.where_raised(err)
            if location:
                line = f"FAIL {name}: raised {message}{location}"
            else:
                line = (f"FAIL {name}: the check could not judge the result ({message}); the output probably has "
                        "an unexpected type or shape")
        seconds = time.perf_counter() - start
        tampered = self._guard_changes()
        if tampered:
            passed, status = False, "tampered"
            line = f"FAIL {name}: the code replaced part of the checking code at run time ({tampered}); not graded"
        elif self.model is not None and not self._model_intact():
            passed, status = False, "model_changed"
            line = f"FAIL {name}: the model's weights were changed in place; never modify the model"
            self.model.load_state_dict(self.pristine)
        status = status or ("pass" if passed else _status_of(line))
        return {"event": "result", "check": name, "passed": passed, "status": status, "line": line,
                "seconds": seconds}

    def _reset_global_state(self) -> None:
        """Undo global switches an earlier check's student code may have flipped."""
        torch = self.torch
        torch.set_grad_enabled(True)
        torch.set_default_dtype(torch.float32)
        torch.use_deterministic_algorithms(False)
        torch.autograd.set_detect_anomaly(False)
        torch.manual_seed(0)

    def _model_intact(self) -> bool:
        state = self.model.state_dict()
        return state.keys() == self.pristine.keys() and all(
            state[k].shape == v.shape and bool((state[k] == v).all()) for k, v in self.pristine.items())

    def _guard_snapshot(self) -> dict:
        snapshot = {}
        for mod_name, module in list(sys.modules.items()):
            if module is not None and mod_name.startswith(GUARDED_PREFIXES):
                for attr, value in list(vars(module).items()):
                    if not attr.startswith("__"):
                        snapshot[(mod_name, attr)] = id(value)
        return snapshot

    def _guard_changes(self) -> str:
        """Names of guarded module attributes that now point elsewhere (first three), or ''."""
        changed = []
        for (mod_name, attr), ident in self.guarded.items():
            module = sys.modules.get(mod_name)
            if module is None or id(vars(module).get(attr)) != ident:
                changed.append(f"{mod_name}.{attr}")
        return ", ".join(changed[:3])


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _status_of(line: str) -> str:
    if "not implemented" in line:
        return "not_implemented"
    if " raised " in line:
        return "exception"
    return "fail"


def describe_import_error(err: BaseException, topic: str, where_raised) -> str:
    """One line naming what went wrong while importing the student's module (``where_raised``: the kit's
    checks.core.where_raised)."""
    if isinstance(err, SyntaxError):
        file = os.path.basename(err.filename or f"{topic}.py")
        return f"SyntaxError: {err.msg} (helpers/{file} line {err.lineno})"
    if isinstance(err, SystemExit):
        return f"the module called sys.exit({err.code!r}) while being imported"
    message = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
    return f"{type(err).__name__}{': ' + message if message else ''}{where_raised(err)}"
