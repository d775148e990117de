"""Starting a sandboxed child and ending its whole process tree, whatever it started."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.sandbox.bubblewrap import Layout, bwrap_args, layout
from grader.sandbox.cgroups import Cgroup, kill
from grader.sandbox.mechanism import SANDBOX_UIDS, Limits, Mechanism

_TRAMPOLINE = (Path(__file__).with_name("trampoline.py")).read_text(encoding="utf-8")


@dataclass
class Child:
    """A sandboxed process and whatever it starts. :meth:`kill_tree` always ends all of it."""

    popen: subprocess.Popen
    mechanism: Mechanism
    ns_init: int | None = None  # the pid namespace's first process, as the caller's namespace numbers it
    ns_id: str | None = None  # "pid:[inode]" of that namespace, to check ns_init is still ours
    cgroup: Cgroup | None = None
    _ended: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdin(self):
        return self.popen.stdin

    @property
    def stdout(self):
        return self.popen.stdout

    @property
    def stderr(self):
        return self.popen.stderr

    @property
    def returncode(self) -> int | None:
        return self._convert(self.popen.returncode)

    def _convert(self, code: int | None) -> int | None:
        # bubblewrap reports a command killed by signal N as exit code 128 + N; give subprocess's -N.
        if code is not None and self.mechanism.pid_namespace and 128 < code < 128 + 65:
            return -(code - 128)
        return code

    def poll(self) -> int | None:
        return self._convert(self.popen.poll())

    def wait(self, timeout: float | None = None) -> int:
        """The child's exit code (negative: killed by that signal); raises subprocess.TimeoutExpired."""
        return self._convert(self.popen.wait(timeout))

    def communicate(self, input: bytes | None = None, timeout: float | None = None):
        return self.popen.communicate(input, timeout)

    def alive(self) -> set[int]:
        """Pids (as the caller sees them) of the processes of this sandbox still running."""
        found = set(self.cgroup.pids()) if self.cgroup else set()
        if self.ns_id:
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        if os.readlink(f"/proc/{entry.name}/ns/pid") == self.ns_id:
                            found.add(int(entry.name))
                    except OSError:
                        pass
        if self.popen.poll() is None:
            found.add(self.popen.pid)
        return {p for p in found if not _is_zombie(p)}

    def kill_tree(self) -> None:
        """Kill the child and every process it started, and wait until they are gone. Idempotent."""
        if self._ended:
            return
        if self.ns_init and self.popen.poll() is None and _ns_of(self.ns_init) == self.ns_id:
            # The kernel kills every process of a pid namespace when its first process dies.
            kill(self.ns_init)
        if self.cgroup:
            for _ in range(100):  # repeat: a fork may have raced the previous round
                members = self.cgroup.pids()
                if not members:
                    break
                for p in members:
                    kill(p)
                time.sleep(0.01)
        if not self.ns_init and not self.cgroup:
            try:  # "none": best effort only; a descendant that left the session survives this
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        deadline = time.monotonic() + 10
        while self.ns_id and time.monotonic() < deadline and self.alive():
            time.sleep(0.01)  # the namespace's processes are reaped a moment after their init
        if self.cgroup:
            self.cgroup.remove()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream:
                stream.close()
        self._ended = True

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.kill_tree()


def _ns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _rlimits(limits: Limits, mechanism: Mechanism, cgroup: Cgroup | None) -> list[tuple[str, int, int]]:
    found = [("RLIMIT_CORE", 0, 0), ("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 1),
             ("RLIMIT_DATA", limits.memory_bytes, limits.memory_bytes),
             ("RLIMIT_AS", limits.address_bytes, limits.address_bytes),
             ("RLIMIT_FSIZE", limits.file_bytes, limits.file_bytes)]
    if not (cgroup and cgroup.bounds_processes):  # a pids cgroup bounds this sandbox alone; RLIMIT_NPROC
        # counts the uid: the sandbox's own (as root), the user namespace's (bubblewrap unprivileged), else the
        # caller's
        nproc = limits.processes
        if mechanism.name == "none":  # the caller's uid, whose own processes count as well
            nproc += _tasks_of(os.getuid())
        found.append(("RLIMIT_NPROC", nproc, nproc))
    return found


_next_uid = [os.getpid() * 7919]


def sandbox_uid() -> int:
    """A uid of SANDBOX_UIDS that no running process has: this sandbox's own."""
    for _ in range(len(SANDBOX_UIDS)):
        _next_uid[0] += 1
        uid = SANDBOX_UIDS[_next_uid[0] % len(SANDBOX_UIDS)]
        if _tasks_of(uid) == 0:
            return uid
    raise OSError("every sandbox uid is in use")


def _tasks_of(uid: int) -> int:
    """Processes plus threads whose real uid is ``uid`` (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                status = Path(f"/proc/{entry.name}/status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if int(fields.get("Uid", "-1 ").split()[0]) == uid:
                count += int(fields.get("Threads", "1"))
    return count


def spawn(argv: list[str], *, scratch: Path, readable: list[Path], limits: Limits, env: dict,
          mechanism: Mechanism, pass_fds=(), stdin=subprocess.DEVNULL, stdout=None, stderr=None) -> Child:
    """Start ``argv`` in a sandbox; return at once. Always end it with :meth:`Child.kill_tree`.

    ``argv[0]`` should be the calling interpreter (``sys.executable``): its installation is the only Python
    made visible. ``scratch`` becomes the working directory, HOME and TMPDIR, read-write (as root, the
    folder itself is given to the sandbox user; what the caller put inside stays the caller's). ``readable``
    paths are shown read-only; as root the sandbox user reads them as "others", so they need the usual
    world-read bits. Under bubblewrap every such path is shown under a neutral name (bubblewrap.Layout), and
    ``argv`` and ``env`` are given with the names the child sees; elsewhere at their real paths. ``env`` is the whole environment (HOME, TMPDIR, TMP, TEMP are set
    to ``scratch``; PATH is added when missing). ``pass_fds``: descriptors the child keeps (its pipes).
    The process that calls spawn must outlive the child: bubblewrap kills the sandbox when the thread that
    started it ends (PR_SET_PDEATHSIG), so call it from the main thread or a long-lived one.
    """
    scratch = Path(os.path.realpath(scratch))
    if not scratch.is_dir():
        raise FileNotFoundError(f"scratch folder {scratch} does not exist")
    readable = [os.path.realpath(p) for p in readable]
    for p in readable:
        if not os.path.exists(p):
            raise FileNotFoundError(f"readable path {p} does not exist")
    # USER and LOGNAME: as root the child's uid has no passwd entry, and getpass.getuser() would raise
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "USER": "sandbox", "LOGNAME": "sandbox", **env}
    env.update({k: str(scratch) for k in ("HOME", "TMPDIR", "TMP", "TEMP")})
    uid, gid = _give_scratch(scratch, mechanism)
    cgroup = _own_cgroup(limits, mechanism)
    shown = layout(str(scratch), readable) if mechanism.bwrap else None
    inside = shown.inside if shown else str
    spec = {"cgroup_fds": cgroup.fds if cgroup else [], "rlimits": _rlimits(limits, mechanism, cgroup),
            "init": bool(mechanism.unshare),
            "uid": uid, "gid": gid, "userns": mechanism.isolated,
            "no_new_privs": mechanism.bwrap is None,  # bubblewrap sets it itself
            "cwd": inside(str(scratch))}
    command = [inside(a) for a in [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, json.dumps(spec), *argv]]
    env = {k: inside(v) for k, v in env.items()} | (shown.environment() if shown else {})
    if mechanism.unshare:
        # --kill-child: the namespace's first process dies with unshare; no --user (as root it would map the
        # child to root outside): the drop to the sandbox user happens in the trampoline.
        command = [mechanism.unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--ipc", "--uts",
                   "--"] + command
    popen_args = dict(env=env, cwd=scratch, pass_fds=list(pass_fds) + list(spec["cgroup_fds"]), stdin=stdin,
                      stdout=stdout, stderr=stderr, start_new_session=True)
    try:
        if shown:
            return _start_bubblewrap(command, mechanism, shown, limits, cgroup, popen_args)
        child = Child(subprocess.Popen(command, **popen_args), mechanism, cgroup=cgroup)
    except BaseException:
        if cgroup:
            cgroup.remove()
        raise
    if cgroup:
        cgroup.close_fds()
    if mechanism.unshare:
        child.ns_init, child.ns_id = _forked_init(child.popen)
    return child


def _give_scratch(scratch: Path, mechanism: Mechanism) -> tuple[int | None, int | None]:
    """(uid, gid) the child runs as (None: the caller's); as root, scratch becomes that uid's alone."""
    if mechanism.user is None:
        return None, None
    uid, gid = sandbox_uid(), mechanism.user[1]
    os.chown(scratch, uid, gid)
    scratch.chmod(0o700)
    return uid, gid


def _own_cgroup(limits: Limits, mechanism: Mechanism) -> Cgroup | None:
    if not mechanism.cgroups:
        return None
    cgroup = None
    try:
        cgroup = Cgroup(limits)
        if not cgroup.dirs:
            raise OSError("no cgroup hierarchy is writable any more")
        return cgroup
    except OSError as err:
        if cgroup:
            cgroup.remove()
        if not mechanism.pid_namespace:  # the cgroup is how setuid-user finds the whole tree
            raise OSError(f"the sandbox's cgroup could not be created: {err}") from None
        return None


def _start_bubblewrap(command: list[str], mechanism: Mechanism, shown: Layout, limits: Limits, cgroup, popen_args) -> Child:
    """bubblewrap with two pipes: the child's pyvenv.cfg in, and bubblewrap's report of the pid namespace out."""
    info_r, info_w = os.pipe()
    pyvenv_r, pyvenv_w = os.pipe()
    try:
        with os.fdopen(pyvenv_w, "w") as cfg:  # a few dozen bytes: the pipe holds them
            cfg.write(shown.pyvenv_cfg())
        popen_args["pass_fds"] += [info_w, pyvenv_r]
        popen = subprocess.Popen(bwrap_args(mechanism, shown, limits, info_w, pyvenv_r) + command, **popen_args)
    except BaseException:
        os.close(info_r)
        raise
    finally:
        os.close(info_w)
        os.close(pyvenv_r)
    child = Child(popen, mechanism, cgroup=cgroup)
    if cgroup:
        cgroup.close_fds()
    info = _read_info(info_r, popen)
    os.close(info_r)
    if info.get("child-pid"):
        child.ns_init = int(info["child-pid"])
        child.ns_id = f"pid:[{info['pid-namespace']}]" if info.get("pid-namespace") else None
    return child


def _forked_init(popen: subprocess.Popen, timeout: float = 30.0) -> tuple[int | None, str | None]:
    """(pid, "pid:[inode]") of the process unshare forked into the new pid namespace, once it is there."""
    ours, deadline = _ns_of(os.getpid()), time.monotonic() + timeout
    while time.monotonic() < deadline and popen.poll() is None:
        try:
            kids = Path(f"/proc/{popen.pid}/task/{popen.pid}/children").read_text().split()
        except FileNotFoundError:
            return None, None  # a kernel without that file: --kill-child still ends the namespace
        except OSError:
            kids = []
        if kids:
            ns = _ns_of(int(kids[0]))
            if ns and ns != ours:
                return int(kids[0]), ns
        time.sleep(0.002)
    return None, None


def _read_info(fd: int, popen: subprocess.Popen, timeout: float = 30.0) -> dict:
    """bubblewrap's --info-fd JSON (it names the pid namespace's first process), or {} if it failed."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
            try:
                return json.loads(data)
            except ValueError:
                continue
        elif popen.poll() is not None:
            break
    return {}
