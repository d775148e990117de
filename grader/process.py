"""A worker process seen from the grader: :class:`Worker` forks ``grader.worker.serve`` from a forkserver
that has torch and friends imported already, sends it commands, waits for replies with a time limit, and
kills it (with everything it started) when it overruns; :class:`OutputCapture` collects what it prints."""
from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader import workspace

STARTUP_TIMEOUT = 300.0  # importing torch and loading the model; minutes only on a badly overloaded machine
OUTPUT_CAP = 8_000  # characters of printed output kept per check
MARKER_WAIT = 10.0


@dataclass
class Limits:
    """Per-check time limit (s), memory limit of a worker (bytes of address space; 0: none), torch threads."""

    timeout: float = 60.0
    memory: int = 8 << 30
    threads: int = 1


class OutputCapture:
    """Drains a worker's output pipe in a thread, cutting it into pieces at a marker and keeping at most
    ``cap`` characters of each (the rest is counted and dropped, so a flood of prints costs no memory)."""

    def __init__(self, pipe, marker: bytes, cap: int = OUTPUT_CAP):
        self.pipe, self.marker, self.cap = pipe, marker, cap
        self.pieces: queue.Queue = queue.Queue()
        self._kept, self._dropped = bytearray(), 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _add(self, data: bytes) -> None:
        room = self.cap - len(self._kept)
        self._kept += data[:max(room, 0)]
        self._dropped += max(len(data) - max(room, 0), 0)

    def _close_piece(self) -> None:
        self.pieces.put((self._kept.decode("utf-8", "replace"), self._dropped))
        self._kept, self._dropped = bytearray(), 0

    def _drain(self) -> None:
        carry, keep = b"", len(self.marker) - 1
        fd = self.pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf = carry + chunk
            with self._lock:
                while (i := buf.find(self.marker)) >= 0:
                    self._add(buf[:i])
                    self._close_piece()
                    buf = buf[i + len(self.marker):]
                self._add(buf[:max(len(buf) - keep, 0)])
            carry = buf[max(len(buf) - keep, 0):]
        with self._lock:
            self._add(carry)
            self._close_piece()
        self.pipe.close()

    def next_piece(self, timeout: float) -> tuple[str, int]:
        """(text, dropped characters) of the next closed piece, or what has arrived so far after ``timeout``."""
        try:
            return self.pieces.get(timeout=timeout)
        except queue.Empty:
            with self._lock:
                text, dropped = self._kept.decode("utf-8", "replace"), self._dropped
                self._kept, self._dropped = bytearray(), 0
            return text, dropped


class WorkerDied(Exception):
    """The worker process ended while a command was running."""


_CONTEXT = None


def _context():
    """The forkserver context whose server has torch, captum, numpy and matplotlib imported already."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["grader._preload"])
        _CONTEXT = ctx
    return _CONTEXT


class Worker:
    """Parent side of one worker process (``grader.worker.serve``), forked from the forkserver."""

    def __init__(self, kit: Path, scratch: Path, topic: str, limits: Limits):
        from grader.worker import serve

        ctx = _context()
        self.marker = f"\n<<convlens-grader-{secrets.token_hex(8)}>>\n"
        cmd_r, self.commands = ctx.Pipe(duplex=False)
        self.replies, rep_w = ctx.Pipe(duplex=False)
        out_r, out_w = ctx.Pipe(duplex=False)
        env = workspace.sandbox_env(scratch, limits.threads)
        self.proc = ctx.Process(target=serve, daemon=True, args=(
            str(kit), topic, str(scratch), env, self.marker, limits.threads, limits.memory,
            workspace.MAX_FILE_BYTES, cmd_r, rep_w, out_w))
        self.proc.start()
        for end in (cmd_r, rep_w, out_w):  # the child has its own copies; EOF must reach us when it dies
            end.close()
        self.output = OutputCapture(out_r, self.marker.encode())
        try:
            ready = self._reply(STARTUP_TIMEOUT)
        except WorkerDied as err:
            ready = {"error": err.args[0]}
        if ready is None or ready.get("event") != "ready":
            text, _ = self.output.next_piece(1.0)
            self.kill()
            detail = (ready or {}).get("error") or text or "no reply"
            last = [line for line in detail.splitlines() if line.strip()][-1:] or ["no reply"]
            raise RuntimeError(f"the grader's worker for {topic!r} did not start: {last[0].strip()[:300]}")

    def _send(self, command: dict) -> None:
        try:
            self.commands.send_bytes(json.dumps(command).encode())
        except (BrokenPipeError, OSError):
            pass  # the process is gone; waiting for the reply reports it

    def _reply(self, timeout: float) -> dict | None:
        """The next reply; None after ``timeout`` seconds; raises WorkerDied if the process ended."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self.replies.poll(max(deadline - time.monotonic(), 0)):
                    return None
                reply = json.loads(self.replies.recv_bytes())
            except (EOFError, OSError):
                raise WorkerDied(self._exit_description()) from None
            except ValueError:
                continue
            if isinstance(reply, dict):
                return reply

    def request(self, command: dict, timeout: float) -> tuple[dict | None, str, int]:
        """Send a command; return (reply or None on timeout, printed output, dropped characters)."""
        self._send(command)
        try:
            reply = self._reply(timeout)
        except WorkerDied as err:
            text, dropped = self.output.next_piece(MARKER_WAIT)
            raise WorkerDied(err.args[0], text, dropped) from None
        if reply is None:
            self.kill()
        text, dropped = self.output.next_piece(MARKER_WAIT if reply is not None else 2.0)
        return reply, text, dropped

    def _exit_description(self) -> str:
        self.proc.join(10)
        code = self.proc.exitcode
        if code is None:
            self.kill()
            return "it stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = {"SIGKILL": " (out of memory?)", "SIGSEGV": " (a crash in native code)",
                    "SIGXFSZ": " (it wrote a file larger than allowed)"}.get(name, "")
            return f"killed by {name}{hint}"
        return f"exit code {code}"

    def close(self) -> None:
        if self.proc.is_alive():
            self._send({"quit": True})
            self.proc.join(5)
        self.kill()

    def kill(self) -> None:
        """Kill the worker and everything it started (it leads its own session)."""
        if self.proc.pid is not None and self.proc.exitcode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except Exception:
                pass
        self.proc.join(10)
        for conn in (self.commands, self.replies):
            conn.close()
