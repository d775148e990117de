"""The child: runs one submission's functions inside the sandbox and sends back only what they computed.

The grader copies this file into a folder that holds nothing else but the kit library (``convlens/``), the
computing half of the checks (``checks/{__init__,core,specs,compute}.py``) and the submission's
``helpers/*.py``, and starts it there, unprivileged, as ``python -I child.py REQUEST_FD REPLY_FD MARKER``.
It never sees an expected output: a request carries a case's inputs, a reply the outputs and the
side-effect facts that ``checks.compute.compute_case`` measured. Judging happens in the grader's own
process (grader/grade.py), so nothing done here to checks/, classes or code objects changes a verdict.

Requests: ``{"op": "import", "topic"}``, ``{"op": "case", "check", "case"}``, ``{"op": "quit"}``.
Replies: ``{"ready": True}`` once at the start; ``{"error": str | None}`` for an import;
``{"outputs": {part: tensor}, "problem": str | None, "kind": str | None}`` for a case.
Framing both ways (:func:`write_message`, :func:`read_message`): an 8-byte big-endian length, then
``torch.save`` bytes, loaded with ``weights_only=True``. What a function prints goes to fds 1 and 2, which
the grader captures; after each request the child writes ``MARKER`` there to close that request's piece.
"""
from __future__ import annotations

import io
import os
import struct
import sys

HEADER = struct.Struct(">Q")
MAX_REQUEST_BYTES = 1 << 30  # the grader's own requests: a case's inputs


def encode(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    return HEADER.pack(len(data)) + data


def decode(payload: bytes):
    """A message's object; only tensors and plain Python values can come out (weights_only)."""
    import torch

    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def write_message(fd: int, obj) -> None:
    data = memoryview(encode(obj))
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, count: int) -> bytes | None:
    chunks, left = [], count
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, limit: int = MAX_REQUEST_BYTES):
    """The next message on ``fd`` (blocking), or None at end of file."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise ValueError(f"message of {size} bytes")
    payload = _read_exactly(fd, size)
    return None if payload is None else decode(payload)


# ------------------------------------------------------------------------------------------------ the child

def describe_import_error(err: BaseException, topic: str) -> str:
    from checks.core import describe_exception

    if isinstance(err, SystemExit):
        return f"the module called sys.exit({err.code!r}) while being imported"
    if isinstance(err, SyntaxError):
        return f"SyntaxError: {err.msg} (helpers/{os.path.basename(err.filename or topic + '.py')} line {err.lineno})"
    return describe_exception(err)


class Child:
    """The state one child keeps between requests: the model's layout and the student's imported modules."""

    def __init__(self):
        import torch

        from checks.compute import pretrained

        self.torch = torch
        self.model = pretrained("cpu")
        self.layout = self._layout()
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

        from checks import specs
        from checks.compute import compute_case

        spec = specs.SPECS[check]
        # Watch only forbidden names whose module is already imported: resolving the others would import
        # Captum and torchvision into every child (3 s and 150 MB). Code cannot call what it has not
        # imported; an import while it runs is caught by the grader's reading of the source (grader/scan.py).
        spec = dataclasses.replace(spec, forbidden=tuple(f for f in spec.forbidden
                                                         if f.rsplit(".", 1)[0] in sys.modules))
        self._reset()
        try:
            result = compute_case(spec, self.modules[spec.topic], case, self.torch.device("cpu"))
        except SystemExit as err:
            result = {"outputs": {}, "problem": f"called sys.exit({err.code!r}); return a value instead",
                      "kind": "exception"}
        except BaseException as err:  # KeyboardInterrupt and the like, raised on purpose by the code
            result = {"outputs": {}, "problem": f"raised {type(err).__name__}; return a value instead",
                      "kind": "exception"}
        # compute_case notices (and undoes) changed weights; a model whose layers were replaced is noticed
        # here and loaded afresh, so the next case gets the real one.
        if case.get("model") in ("pretrained", "inplace", "raising") and not self._model_intact():
            result = {"outputs": {}, "problem": "the model's layers were replaced; never modify the model",
                      "kind": "side_effect"}
        try:
            outputs = {k: self._plain(v) for k, v in (result.get("outputs") or {}).items()}
        except Exception as err:  # an output that is a tensor only by its class
            return {"outputs": {}, "problem": f"returned something that is not a plain tensor ({err!s:.80})",
                    "kind": "form"}
        return {"outputs": outputs, "problem": result.get("problem"), "kind": result.get("kind")}

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
        torch.set_num_threads(1)
        torch.manual_seed(0)

    def _layout(self) -> dict:
        return {k: tuple(v.shape) for k, v in self.model.state_dict().items()}

    def _model_intact(self) -> bool:
        try:
            if self._layout() == self.layout:
                return True
        except Exception:  # the code broke the model beyond listing its weights
            pass
        from checks import compute

        compute.pretrained.cache_clear()
        self.model = compute.pretrained("cpu")
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
    requests, replies, marker = int(argv[1]), int(argv[2]), argv[3].encode()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch

    torch.set_num_threads(1)
    child = Child()
    write_message(replies, {"ready": True})
    while True:
        request = read_message(requests)
        if request is None or request.get("op") == "quit":
            return 0
        if request["op"] == "import":
            reply = child.import_topic(request["topic"])
        else:
            reply = child.run_case(request["check"], request["case"])
        _end_piece(marker)
        write_message(replies, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
