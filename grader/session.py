"""The grader's side of one sandboxed child (grader/child.py): start it, send requests, wait for replies
under a CPU-time limit, capture what it prints, and end its whole process tree.

CPU time, not wall time, is what a limit counts: the parent adds up the CPU time of every process of the
child's sandbox (``/proc/<pid>/stat``, the child's own threads and the children it waited for), so a busy
machine does not make a check time out. A wall-clock limit stays only as a backstop for code that waits
without computing (a sleep), set far above what the CPU limit allows.

Replies are checked before use (:func:`validate_case_reply`): only the expected keys, strings of bounded
length, plain CPU tensors of bounded size. Loading them (``torch.load(weights_only=True)``) cannot run code.
"""
from __future__ import annotations

import os
import queue
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader import sandbox
from grader.child import HEADER, decode, encode

OUTPUT_CAP = 8_000  # characters of printed output kept per request
MAX_REPLY_BYTES = 64 << 20  # far above any exercise's outputs
MAX_PROBLEM_CHARS = 600
KINDS = {"not_implemented", "exception", "side_effect", "form", "forbidden", "missing"}
STARTUP_CPU_SECONDS = 120.0  # importing torch and loading the model: about 4 s
STARTUP_WALL_SECONDS = 600.0
TICK = 0.2  # seconds between looks at the child's CPU time
_CLOCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Reply:
    """What came of one request. ``outcome``: "ok" (``value`` holds the reply), "timeout" or "died"
    (``why`` says how); ``cpu``/``wall``: seconds the request took; ``output``: what was printed."""

    outcome: str
    value: object = None
    why: str = ""
    cpu: float = 0.0
    wall: float = 0.0
    output: str = ""
    dropped: int = 0


class OutputCapture:
    """Drains the child's stdout/stderr pipe in a thread, cutting it into pieces at a marker and keeping at
    most ``cap`` characters of each (the rest is counted and dropped: a flood of prints costs no memory)."""

    def __init__(self, pipe, marker: bytes, cap: int = OUTPUT_CAP):
        self.pipe, self.marker, self.cap = pipe, marker, cap
        self.pieces: queue.Queue = queue.Queue()
        self._kept, self._dropped = bytearray(), 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _add(self, data: bytes) -> None:
        room = max(self.cap - len(self._kept), 0)
        self._kept += data[:room]
        self._dropped += max(len(data) - room, 0)

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

    def next_piece(self, timeout: float) -> tuple[str, int]:
        """(text, dropped characters) of the next closed piece, or what has arrived after ``timeout``."""
        try:
            return self.pieces.get(timeout=timeout)
        except queue.Empty:
            with self._lock:
                text, dropped = self._kept.decode("utf-8", "replace"), self._dropped
                self._kept, self._dropped = bytearray(), 0
            return text, dropped


def descendants(pid: int) -> set[int] | None:
    """``pid`` and every process below it (through /proc/<pid>/task/<tid>/children: a few reads, where
    scanning all of /proc would cost the grader more CPU than a small check), or None where the kernel
    has no such file. Processes that leave the tree (a daemon in a sandbox without a pid namespace) are
    not found this way; a cgroup finds them."""
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        return None
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in found:
            continue
        found.add(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return found


def tree_cpu_seconds(pids) -> float:
    """CPU time (user + system) of these processes, with that of the children each has waited for."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / _CLOCK


class Session:
    """One sandboxed child. Always end it with :meth:`close` (it ends the child's whole process tree).

    Create and use it from one thread that outlives the child (bubblewrap ends the sandbox when the thread
    that started it ends)."""

    def __init__(self, folder: Path, scratch: Path, mechanism: sandbox.Mechanism, limits: sandbox.Limits):
        self.marker = f"\n<<convlens-child-{secrets.token_hex(8)}>>\n".encode()
        request_r, self.requests = os.pipe()
        self.replies, reply_w = os.pipe()
        env = {"CONVLENS_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LANG": "C.UTF-8",
               "MPLCONFIGDIR": str(scratch), "XDG_CACHE_HOME": str(scratch), "TORCH_HOME": str(scratch)}
        # -I: no user site, no PYTHON* variables, no script folder on the path (child.py adds its own)
        argv = [sys.executable, "-I", "-B", "-X", "utf8", str(folder / "child.py"), str(request_r), str(reply_w),
                self.marker.decode()]
        try:
            self.child = sandbox.spawn(argv, scratch=scratch, readable=[folder], limits=limits, env=env,
                                       mechanism=mechanism, pass_fds=(request_r, reply_w),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except BaseException:
            os.close(self.requests)
            os.close(self.replies)
            raise
        finally:
            os.close(request_r)
            os.close(reply_w)
        self.output = OutputCapture(self.child.stdout, self.marker)
        self.buffer = b""
        self.closed = False
        self.writer: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- requests

    def start(self) -> Reply:
        """Wait for the child's "ready" (torch imported, model loaded)."""
        return self._wait(lambda: (STARTUP_CPU_SECONDS, STARTUP_WALL_SECONDS), time.perf_counter(),
                          self.cpu_seconds())

    def request(self, message: dict, limits) -> Reply:
        """Send one request and wait for its reply; the child is ended on a timeout. ``limits()``: the
        (CPU, wall-clock) seconds the request may take, asked again while it runs (they may tighten)."""
        start_wall, start_cpu = time.perf_counter(), self.cpu_seconds()
        data = encode(message)
        # From a thread: a child that stops reading must not block the grader in write().
        self.writer = threading.Thread(target=self._write, args=(data,), daemon=True)
        self.writer.start()
        return self._wait(limits, start_wall, start_cpu)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.requests, view):]
        except OSError:
            pass  # the child is gone; waiting for the reply says how

    def _wait(self, limits, start_wall: float, start_cpu: float) -> Reply:
        while True:
            message = self._take_message()
            if message is not None:
                cpu, wall = self.cpu_seconds() - start_cpu, time.perf_counter() - start_wall
                text, dropped = self.output.next_piece(5.0)
                if isinstance(message, Exception):
                    return Reply("malformed", why=str(message), cpu=cpu, wall=wall, output=text, dropped=dropped)
                return Reply("ok", message, cpu=max(cpu, 0.0), wall=wall, output=text, dropped=dropped)
            cpu, wall = self.cpu_seconds() - start_cpu, time.perf_counter() - start_wall
            cpu_limit, wall_limit = limits()
            why = ""
            if cpu > cpu_limit:
                why = "cpu"
            elif wall > wall_limit:
                why = "wall"
            elif self.child.poll() is not None or self._eof:
                try:  # its exit status says how it died; a killed tree would only say SIGKILL
                    self.child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                self.close()
                text, dropped = self.output.next_piece(1.0)
                return Reply("died", why=self._exit_description(), cpu=cpu, wall=wall, output=text, dropped=dropped)
            if why:
                self.close()
                text, dropped = self.output.next_piece(1.0)
                return Reply("timeout", why=why, cpu=cpu, wall=wall, output=text, dropped=dropped)
            ready, _, _ = select.select([self.replies], [], [], TICK)
            if ready:
                self._read_some()

    _eof = False

    def _read_some(self) -> None:
        try:
            chunk = os.read(self.replies, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            self._eof = True
        self.buffer += chunk

    def _take_message(self):
        """The next complete message (an Exception for one that cannot be used), or None."""
        if len(self.buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self.buffer)
        if size > MAX_REPLY_BYTES:
            self.buffer = b""
            self.close()
            return ValueError(f"a reply of {size} bytes, more than the {MAX_REPLY_BYTES >> 20} MB allowed")
        if len(self.buffer) < HEADER.size + size:
            return None
        payload, self.buffer = self.buffer[HEADER.size:HEADER.size + size], self.buffer[HEADER.size + size:]
        try:
            return decode(payload)
        except Exception as err:  # not a weights_only torch.save payload: something forged it
            return ValueError(f"unreadable reply ({type(err).__name__})")

    # ------------------------------------------------------------------------------------------ the tree

    def cpu_seconds(self) -> float:
        """CPU time of the sandbox's processes so far. Never less than before: a process that has ended
        but not been waited for yet counts nowhere for a moment, and a dead tree counts nothing."""
        pids = descendants(self.child.pid)
        pids = self.child.alive() if pids is None else pids | (self.child.cgroup.pids() if self.child.cgroup else set())
        now = tree_cpu_seconds(pids)
        self._cpu = max(now, self._cpu)
        return self._cpu

    _cpu = 0.0

    def _exit_description(self) -> str:
        code = self.child.returncode
        if code is None:
            return "it stopped answering"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
            hint = {"SIGKILL": " (out of memory?)", "SIGSEGV": " (a crash in native code)",
                    "SIGXCPU": " (CPU time used up)", "SIGXFSZ": " (it wrote a file larger than allowed)"}.get(name, "")
            return f"killed by {name}{hint}"
        return f"exit code {code}"

    def close(self) -> None:
        """End the child and everything it started (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.child.kill_tree()
        if self.writer is not None:  # it fails at once now that no process reads the pipe; its descriptor
            self.writer.join(10)     # must not be closed (and its number reused) under it before that
        for fd in (self.requests, self.replies):
            try:
                os.close(fd)
            except OSError:
                pass


# ------------------------------------------------------------------------------------------------ replies

def validate_case_reply(value, outputs: tuple) -> dict:
    """The reply to a case as ``compute_case`` returns it, or ValueError saying what is wrong with it."""
    import torch

    if not isinstance(value, dict) or set(value) != {"outputs", "problem", "kind"}:
        raise ValueError("not a reply to a case")
    parts, problem, kind = value["outputs"], value["problem"], value["kind"]
    if not isinstance(parts, dict) or not set(parts) <= set(outputs):
        raise ValueError("unexpected outputs")
    for name, tensor in parts.items():
        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided or tensor.is_quantized \
                or tensor.device.type != "cpu" or tensor.numel() > (64 << 20) // max(tensor.element_size(), 1):
            raise ValueError(f"output {name!r} is not a plain tensor of a sensible size")
    if problem is not None and not isinstance(problem, str):
        raise ValueError("the problem is not text")
    if kind is not None and kind not in KINDS:
        raise ValueError("unknown kind of problem")
    if (problem is None) != (kind is None):
        raise ValueError("a problem without a kind")
    if problem is not None:
        problem = " ".join(problem.split())
        problem = problem[:MAX_PROBLEM_CHARS] + ("..." if len(problem) > MAX_PROBLEM_CHARS else "")
    return {"outputs": dict(parts), "problem": problem, "kind": kind}


def validate_import_reply(value) -> str | None:
    """The import error (one line) or None; ValueError for anything else."""
    if not isinstance(value, dict) or set(value) != {"error"}:
        raise ValueError("not a reply to an import")
    error = value["error"]
    if error is not None and not isinstance(error, str):
        raise ValueError("the error is not text")
    return None if error is None else " ".join(error.split())[:MAX_PROBLEM_CHARS]
