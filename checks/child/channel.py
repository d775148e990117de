"""The messages between a process that judges and the child process that computes: an 8-byte big-endian
length, then ``torch.save`` bytes, loaded with ``weights_only=True`` (only tensors and plain Python values
come out: loading a message cannot run code)."""
from __future__ import annotations

import io
import os
import struct

HEADER = struct.Struct(">Q")
MAX_REQUEST_BYTES = 1 << 30  # the judging side's own requests: a case's inputs


def encode(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    return HEADER.pack(len(data)) + data


def decode(payload: bytes):
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
