"""The judging side of a child process that computes (checks/child/worker.py): start it, send requests, wait for
replies under time limits, capture what it prints, and end its whole process tree. ``kit.py check`` and the
grader both run checks through :class:`ChildChecks`; they differ only in how the process is started (a
plain process group here, the grader's sandbox there) and in the limits they set.

CPU time, not wall time, is what a limit counts: the parent adds up the CPU time of every process of the
child's tree (``/proc/<pid>/stat``, the child's own threads and the children it waited for), so a busy
machine does not make a check time out. A wall-clock limit stays only as a backstop for code that waits
without computing (a sleep), set far above what the CPU limit allows.

This module imports no torch, so that ``kit.py check`` can start its child before the parent imports torch
(the two imports then overlap); :class:`ChildChecks` imports what it judges with when it is first used.

Replies are checked before use (:meth:`checks.child.core.CaseResult.from_message`). Loading them
(``torch.load(weights_only=True)``) cannot run code.
"""
from __future__ import annotations

import os
import queue
import secrets
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable

from checks.child.channel import HEADER, decode, encode

OUTPUT_CAP = 8_000  # characters of printed output kept per request
MAX_REPLY_BYTES = 64 << 20  # far above any exercise's outputs
STARTUP_CPU_SECONDS = 120.0  # importing torch and loading the model: about 4 s
STARTUP_WALL_SECONDS = 600.0
TICK = 0.2  # seconds between looks at the child's CPU time
_CLOCK = os.sysconf("SC_CLK_TCK")


class ChildError(RuntimeError):
    """The child process could not be started: a broken kit or sandbox, never a submission."""


class LocalProcess:
    """A plain child process in its own process group (``kit.py check`` on the student's own machine)."""

    def __init__(self, argv: list[str], pass_fds, env: dict | None = None, cwd=None):
        self.popen = subprocess.Popen(argv, pass_fds=pass_fds, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        self.pid, self.stdout = self.popen.pid, self.popen.stdout

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        return self.popen.poll()

    def wait(self, timeout=None):
        return self.popen.wait(timeout)

    def alive(self) -> set[int]:
        return {self.pid} if self.popen.poll() is None else set()

    def kill_tree(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()
        self.popen.stdout.close()


@dataclass
class Reply:
    """What came of one request. ``ended``: "ok" (``value`` holds the reply), "malformed", "timeout" or "died"
    (``why`` says how); ``cpu``/``wall``: seconds the request took; ``output``: what was printed."""

    ended: str
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

    def __init__(self, launch, command: list[str], options: list[str] = ()):
        """``launch(argv, pass_fds)`` starts the process (a :class:`LocalProcess`, or the grader's sandbox)
        with its stdout and stderr on one pipe; ``command`` starts the worker (checks/child/worker.py), which gets
        its pipes, the marker and ``options`` after it."""
        self.marker = f"\n<<convlens-child-{secrets.token_hex(8)}>>\n".encode()
        request_r, self.requests = os.pipe()
        self.replies, reply_w = os.pipe()
        argv = [*command, str(request_r), str(reply_w), self.marker.decode(), *options]
        try:
            self.child = launch(argv, (request_r, reply_w))
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
        cgroup = getattr(self.child, "cgroup", None)
        pids = self.child.alive() if pids is None else pids | (cgroup.pids() if cgroup else set())
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



# ------------------------------------------------------------------------------------------------ checks

IMPORT_HINT = "a loop or a long computation at module level?"  # what an import's CPU limit usually meets


class Budget:
    """The time one request may take (an import, or one check's cases), and the line that says which clock ran
    out. ``kit.py check`` and the grader both make one per import and per check.

    ``cpu()``: the CPU seconds allowed, asked again while the request runs (the grader learns a check's limit
    while the reference solution is measured). The wall clock allows twice that plus 20 s: a backstop for
    code that waits without computing. ``explain()``: what the CPU limit is, for the timeout line."""

    def __init__(self, cpu, explain):
        self.cpu = cpu if callable(cpu) else (lambda: cpu)
        self.explain = explain if callable(explain) else (lambda: explain)
        self.child: ChildChecks | None = None
        self.cpu0 = self.wall0 = 0.0

    def start(self, child: "ChildChecks") -> "Budget":
        """Count from now: what ``child`` has used so far is not this budget's."""
        self.child, self.cpu0, self.wall0 = child, child.cpu, child.wall
        return self

    def used(self) -> tuple[float, float]:
        """(CPU, wall-clock) seconds used since :meth:`start`."""
        return self.child.cpu - self.cpu0, self.child.wall - self.wall0

    def left(self) -> tuple[float, float]:
        """(CPU, wall-clock) seconds the request may still take: the ``limits`` of :meth:`Session.request`."""
        cpu, wall = self.used()
        limit = self.cpu()
        return limit - cpu, 2 * limit + 20 - wall

    def spent(self) -> bool:
        """More CPU used than allowed (a limit that became known only after the request had started)."""
        return self.used()[0] > self.cpu()

    def timeout(self, clock: str = "cpu") -> str:
        """The line for a request stopped by ``clock`` ("cpu" or "wall")."""
        reason = self.explain()  # first: the grader's explanation waits until the limit is known
        limit = self.cpu()
        if clock == "cpu":
            return f"did not finish within {limit:.3g} s of CPU time ({reason})"
        return (f"did not finish within {2 * limit + 20:.3g} s of wall-clock time, using only {self.used()[0]:.2g} s "
                "of CPU: it waits for something (sleep, input, a lock?)")


class ChildChecks:
    """One child process that imports a student's files and computes cases; after a timeout or a crash the
    next request starts a fresh one (and imports the files again). What the code printed is kept, per
    request, in :attr:`output` until :meth:`take_output`."""

    def __init__(self, start: Callable[[], Session]):
        self.start, self.session, self.imported = start, None, set()
        self.output: list[str] = []
        self.dropped = 0
        self.cpu = self.wall = 0.0  # seconds used by the requests so far

    def _session(self) -> Session:
        if self.session is None:
            try:
                session = self.start()
            except OSError as err:
                raise ChildError(f"the child process could not start: {err}") from None
            reply = session.start()
            if reply.ended != "ok" or reply.value != {"ready": True}:
                session.close()
                last = [line for line in reply.output.splitlines() if line.strip()][-1:] or [reply.why or reply.ended]
                raise ChildError(f"the child process did not start ({reply.ended}): {last[0].strip()[:300]}")
            self.session = session
        return self.session

    def _request(self, message: dict, limits) -> Reply:
        reply = self._session().request(message, limits)
        self.cpu, self.wall = self.cpu + reply.cpu, self.wall + reply.wall
        self.output.append(reply.output)
        self.dropped += reply.dropped
        if reply.ended != "ok":
            self.close()
        return reply

    def import_topic(self, topic: str, budget: Budget) -> CaseResult | None:
        """Import helpers/<topic>.py in the child: None, or the failure every check of the topic gets."""
        from checks.child.core import CaseResult, Kind, one_line

        reply = self._request({"op": "import", "topic": topic}, budget.left)
        what = f"helpers/{topic}.py"
        if reply.ended == "ok":
            value = reply.value
            if not (isinstance(value, dict) and set(value) == {"error"}
                    and (value["error"] is None or isinstance(value["error"], str))):
                self.close()
                return CaseResult.failure(Kind.MALFORMED, f"the process importing {what} sent a reply that cannot be "
                                          "used (not a reply to an import)")
            if value["error"] is None:
                self.imported.add(topic)
                return None
            return CaseResult.failure(Kind.IMPORT_ERROR, f"{what} cannot be imported: {one_line(value['error'])}")
        if reply.ended == "timeout":
            return CaseResult.failure(Kind.TIMEOUT, f"importing {what} {budget.timeout(reply.why)}")
        if reply.ended == "died":
            return CaseResult.failure(Kind.CRASHED, f"the process importing {what} died ({reply.why})")
        return CaseResult.failure(Kind.MALFORMED, f"the process importing {what} sent a reply that cannot be used "
                                  f"({reply.why})")

    def compute(self, spec, budget: Budget):
        """A ``compute`` for :func:`checks.judge.run_check`: each case runs in the child, all of them within
        ``budget`` (started by the caller)."""
        from checks.child.core import FOLLOW_UP, CaseResult, Kind

        def compute(case: dict) -> CaseResult:
            if spec.topic not in self.imported:  # a fresh child after a timeout or a crash
                failure = self.import_topic(spec.topic, budget)
                if failure is not None:
                    return failure
            reply = self._request({"op": "case", "check": spec.name, "case": case}, budget.left)
            if reply.ended == "ok":
                try:
                    return CaseResult.from_message(reply.value, spec.outputs + FOLLOW_UP)
                except ValueError as err:
                    self.close()
                    return CaseResult.failure(Kind.MALFORMED, "the process running it sent a reply that cannot be "
                                              f"used ({err})")
            if reply.ended == "timeout":
                return CaseResult.failure(Kind.TIMEOUT, budget.timeout(reply.why))
            if reply.ended == "died":
                return CaseResult.failure(Kind.CRASHED, f"the process running it died ({reply.why}): os._exit, a "
                                          "crash, or memory exhausted")
            return CaseResult.failure(Kind.MALFORMED, f"the process running it sent a reply that cannot be used "
                                      f"({reply.why})")
        return compute

    def take_output(self) -> tuple[str, int]:
        """(what was printed since the last call, characters dropped beyond the cap)."""
        text, dropped = "".join(self.output), self.dropped
        self.output, self.dropped = [], 0
        return text, dropped

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        self.imported = set()  # a fresh child imports the files again
