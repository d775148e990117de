"""The child process that runs a student's functions and sends back only what they computed.

Started by :class:`checks.process.session.ChildChecks`, for ``kit.py check`` as ``python -m checks.child.worker``
and for the grader as ``python -I checks/child/worker.py`` inside its sandbox (a folder that holds only the kit
library, the computing half of checks/ and the submission's files). It never sees an expected output: a request
carries a case's inputs, a reply the :class:`~checks.child.core.CaseResult` of
:func:`checks.child.compute.compute_case`. Judging happens in the parent, so nothing done here to checks/, classes
or code objects changes a verdict.

    python -m checks.child.worker REQUEST_FD REPLY_FD MARKER [--device NAME] [--threads N] [--watch imported|all]

Requests: ``{"op": "import", "topic"}``, ``{"op": "case", "check", "case"}``, ``{"op": "quit"}``. Replies:
``{"ready": True}`` once at the start; ``{"error": str | None}`` for an import; ``CaseResult.to_message()``
for a case (checks/child/channel.py frames them). What a function prints goes to fds 1 and 2, which the parent
captures; after each request the worker writes ``MARKER`` there to close that request's piece.
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__" and __package__ in (None, ""):  # run as a file: import the kit from the folder above
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from checks.child.channel import read_message, write_message  # noqa: E402


def describe_import_error(err: BaseException, topic: str) -> str:
    from checks.child.core import describe_exception

    if isinstance(err, SystemExit):
        return f"the module called sys.exit({err.code!r}) while being imported"
    if isinstance(err, SyntaxError):
        return f"SyntaxError: {err.msg} (helpers/{os.path.basename(err.filename or topic + '.py')} line {err.lineno})"
    return describe_exception(err)


class Worker:
    """The state one child keeps between requests: the model's layout and the student's imported modules.

    The pretrained model is loaded by the first case that uses it (1.4 s), so a check that needs none
    (``kit.py check tv_loss``) never waits for it."""

    def __init__(self, device: str, threads: int, watch: str):
        import torch

        self.torch, self.device, self.threads, self.watch = torch, torch.device(device), threads, watch
        self.layout = None  # the pretrained model's {weight: shape}, taken before any student code runs
        self.modules = {}

    def import_topic(self, topic: str) -> dict:
        import importlib

        try:
            self.modules[topic] = importlib.import_module(f"helpers.{topic}")
        except BaseException as err:  # a syntax or import error, sys.exit() or anything else at import time
            return {"error": describe_import_error(err, topic)}
        return {"error": None}

    def run_case(self, check: str, case: dict) -> dict:
        import dataclasses

        from checks.child import fixtures, specs
        from checks.child.compute import compute_case
        from checks.child.core import CaseResult, Kind

        spec = specs.SPECS[check]
        if self.watch == "imported":
            # Watch only forbidden names whose module is already imported: resolving the others would import
            # Captum and torchvision into every child (3 s and 150 MB). Code cannot call what it has not
            # imported; the grader reads the source for imports (grader/scan.py) and hides the libraries.
            spec = dataclasses.replace(spec, forbidden=tuple(f for f in spec.forbidden
                                                             if f.rsplit(".", 1)[0] in sys.modules))
        fixture = fixtures.MODELS.get(case.get("model"))
        if fixture is not None and fixture.pretrained and self.layout is None:
            self.layout = self._layout()
        self._reset()
        try:
            result = compute_case(spec, self.modules[spec.topic], case, self.device)
        except SystemExit as err:
            result = CaseResult.failure(Kind.EXCEPTION, f"called sys.exit({err.code!r}); return a value instead")
        except BaseException as err:  # KeyboardInterrupt and the like, raised on purpose by the code
            result = CaseResult.failure(Kind.EXCEPTION, f"raised {type(err).__name__}; return a value instead")
        # compute_case notices (and undoes) changed weights; a model whose layers were replaced is noticed
        # here and loaded afresh, so the next case gets the real one.
        if fixture is not None and fixture.pretrained and not self._model_intact():
            result = CaseResult.failure(Kind.SIDE_EFFECT, "the model's layers were replaced; never modify the model")
        try:
            result = dataclasses.replace(result, outputs={k: self._plain(v) for k, v in result.outputs.items()})
        except Exception as err:  # an output that is a tensor only by its class
            result = CaseResult.failure(Kind.FORM, f"returned something that is not a plain tensor ({err!s:.80})")
        return result.to_message()

    def _plain(self, value):
        """A compact plain tensor: no subclass, no storage beyond its own elements."""
        torch = self.torch
        if type(value) is not torch.Tensor:
            value = value.as_subclass(torch.Tensor)
        return value.detach().cpu().contiguous().clone()

    def _reset(self) -> None:
        """Undo global switches an earlier call may have flipped; the references were built from seed 0."""
        torch = self.torch
        torch.set_grad_enabled(True)
        torch.set_default_dtype(torch.float32)
        torch.autograd.set_detect_anomaly(False)
        torch.set_num_threads(self.threads)
        torch.manual_seed(0)

    def _layout(self) -> dict:
        from checks.child.compute import pretrained

        return {k: tuple(v.shape) for k, v in pretrained(str(self.device)).state_dict().items()}

    def _model_intact(self) -> bool:
        try:
            if self._layout() == self.layout:
                return True
        except Exception:  # the code broke the model beyond listing its weights
            pass
        from checks.child import compute

        compute.pretrained.cache_clear()
        return False


def _end_piece(marker: bytes) -> None:
    """Flush what was printed, then write the marker that closes this request's output."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # the code may have replaced or closed sys.stdout
            pass
    os.write(2, marker)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="checks.child.worker")
    parser.add_argument("requests", type=int)
    parser.add_argument("replies", type=int)
    parser.add_argument("marker")
    parser.add_argument("--device", help="default: the kit's device rule (convlens.runtime.choose_device)")
    parser.add_argument("--threads", type=int, help="default: the kit's rule (convlens.runtime.choose_threads)")
    parser.add_argument("--watch", choices=("imported", "all"), default="imported")
    args = parser.parse_args(argv)
    import torch

    from convlens.runtime import choose_device, choose_threads

    threads = args.threads or choose_threads()
    torch.set_num_threads(threads)
    worker = Worker(args.device or str(choose_device()), threads, args.watch)
    marker = args.marker.encode()
    _end_piece(marker)  # what starting printed is a piece of its own: the parent need not wait for it
    write_message(args.replies, {"ready": True})
    while True:
        request = read_message(args.requests)
        if request is None or request.get("op") == "quit":
            return 0
        if request["op"] == "import":
            reply = worker.import_topic(request["topic"])
        else:
            reply = worker.run_case(request["check"], request["case"])
        _end_piece(marker)
        write_message(args.replies, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
