"""An operating-system sandbox for running a submission's code: the parent judges, an unprivileged child
computes.

    mech = sandbox.detect("auto")          # once; print mech.description
    child = sandbox.spawn([sys.executable, "-m", "grader.worker", ...], scratch=ws.scratch,
                          readable=[ws.kit], limits=sandbox.Limits(), env=env, mechanism=mech,
                          pass_fds=(cmd_r, rep_w))
    try:
        ...talk to it over the pipes...; child.wait(timeout)
    finally:
        child.kill_tree()                  # no process of the child is left, whatever it started

What the child gets under bubblewrap: ``scratch`` (read-write; its working directory, HOME and TMPDIR),
the ``readable`` paths (read-only), the system's /usr and shared libraries, and the calling interpreter's
prefixes (the venv and its base Python) read-only, all at their real paths; a fresh /proc showing only its
own processes, a minimal /dev, a small private /tmp, no network, and the resource limits in
:class:`Limits`. Nothing else of the machine's file system exists for it: not the kit checkout, reference
answers, other submissions or the grader's output folder. Guards written in Python inside the child would
count for nothing (the student's code runs in the same interpreter), so every barrier here is the
kernel's. The mechanisms, strongest first (:func:`detect` takes the first that works):

* ``bubblewrap+user`` (the grader runs as root): bubblewrap builds new mount, pid, network, IPC and UTS
  namespaces; inside them a small trampoline sets the rlimits and drops to a dedicated system user
  (``convlens-grader``, created if missing) with no capabilities and no_new_privs. The user must be a real
  uid, not a user namespace: bubblewrap run by root maps a namespace's uid to root outside, whose files the
  child could then own and for which the kernel never enforces RLIMIT_NPROC.
* ``bubblewrap`` (an ordinary user): the same view through an unprivileged user namespace; the child keeps
  the caller's uid, has no capabilities, and may not create further user namespaces.
* ``namespaces+user`` (root, no bubblewrap) and ``user-namespace`` (an ordinary user, no bubblewrap):
  util-linux ``unshare`` gives new pid, network and IPC namespaces, but the file system is the machine's:
  the dedicated user reads what others may read; in ``user-namespace`` the child is the caller's own uid
  and can read and write all of the caller's files.
* ``setuid-user`` (root without usable namespaces): only the dedicated user, the rlimits and a cgroup; it
  also shares the network and sees every process. Offered only when a cgroup can be made, because that is
  how its whole process tree is found and ended.
* ``none``: a plain child process with the rlimits.

Ending the tree: a pid namespace dies with its first process (the kernel kills everything else in it), so
:meth:`Child.kill_tree` kills that process; a ``setsid``/double-forked descendant is still inside the
namespace, and it also dies when the child's main process exits. Where the cgroup hierarchy is writable
(root), each sandbox also gets its own cgroup with a memory and a process limit, and every process listed
there is killed too. ``none`` can only kill the child's session: a daemonized descendant survives it.
"""
from __future__ import annotations

import functools
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "Mechanism", "Child", "SandboxUnavailable", "detect", "spawn", "SANDBOX_USER"]

SANDBOX_USER = "convlens-grader"
MODES = ("auto", "required", "none")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox.

    cpu_seconds: CPU time of each process (RLIMIT_CPU: SIGXCPU, then SIGKILL a second later).
    memory_bytes: private writable memory of each process (RLIMIT_DATA; importing torch needs about 0.9 GB
        of it but 3.5 GB of address space, so RLIMIT_AS would have to be set far above what the code may
        use), and of the whole tree where a memory cgroup can be made.
    processes: processes plus threads (torch starts one thread per core). A pids cgroup bounds the sandbox
        by itself; without one RLIMIT_NPROC does, which the kernel counts per uid (in a user namespace: per
        uid inside that namespace, so per sandbox; for the dedicated user as root without a cgroup: across
        all sandboxes running at once).
    file_bytes: largest file the child may write (RLIMIT_FSIZE: SIGXFSZ), also the size of its /tmp.
    """

    cpu_seconds: int = 300
    memory_bytes: int = 4 << 30
    processes: int = 256
    file_bytes: int = 256 << 20


@dataclass(frozen=True)
class Mechanism:
    """How :func:`spawn` isolates a child; ``description`` is one line for the console or a report."""

    name: str  # "bubblewrap+user", "bubblewrap", "namespaces+user", "user-namespace", "setuid-user", "none"
    description: str
    bwrap: str | None = None  # path of the bwrap program: a minimal file system and every namespace
    unshare: str | None = None  # path of util-linux's unshare: pid, network, IPC namespaces only
    user: tuple[int, int] | None = None  # (uid, gid) the child drops to (the grader runs as root)
    cgroups: bool = False  # a cgroup per sandbox (memory and process limits, the member list)

    @property
    def isolated(self) -> bool:
        return self.name != "none"

    @property
    def pid_namespace(self) -> bool:
        """Whether the child's tree lives in its own pid namespace (ended with its first process)."""
        return bool(self.bwrap or self.unshare)


NONE = Mechanism("none", "no sandbox: submissions run as the grader's own user with resource limits only; "
                         "they can read and write whatever it can and reach the network")


class SandboxUnavailable(RuntimeError):
    """``detect("required")`` found no operating-system sandbox on this machine."""


# ----------------------------------------------------------------------------------------------- detection

def detect(requested: str = "auto", user: str = SANDBOX_USER) -> Mechanism:
    """The strongest mechanism that works here, found by running a tiny sandbox with each in turn.

    ``requested``: "auto" (the strongest; :data:`NONE` when there is none: tell the user), "required" (the
    same, but raise :class:`SandboxUnavailable` instead of returning NONE) or "none". As root, ``user`` is
    the dedicated system user the child runs as; it is created (no home, no login shell) when missing.
    """
    if requested not in MODES:
        raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, not {requested!r}")
    if requested == "none":
        return NONE
    tried = []
    for mechanism in _candidates(user):
        problem = _probe(mechanism)
        if problem is None:
            return mechanism
        tried.append(f"{mechanism.name}: {problem}")
    if requested == "required":
        raise SandboxUnavailable(
            "no operating-system sandbox works on this machine (" + ("; ".join(tried) or "nothing to try")
            + "). Install bubblewrap (the 'bubblewrap' package) and allow user namespaces, or run as root.")
    return NONE


def _candidates(user: str) -> list[Mechanism]:
    """Mechanisms worth probing, strongest first (tests replace this to simulate a bare machine)."""
    bwrap, unshare = shutil.which("bwrap"), shutil.which("unshare")
    weak = "; it sees every file that user can read (install bubblewrap for a minimal file system)"
    found = []
    if os.geteuid() == 0:
        uid, gid, name = _system_user(user)
        cg = _Cgroup.available()
        who = f"as user {name} (uid {uid})" + ("; cgroup memory and process limits" if cg else "")
        if bwrap:
            found.append(Mechanism("bubblewrap+user", f"bubblewrap sandbox (own mount, pid, network, IPC "
                                   f"namespaces; minimal file system) {who}", bwrap, None, (uid, gid), cg))
        if unshare:
            found.append(Mechanism("namespaces+user", f"namespace sandbox (own pid, network, IPC namespaces) "
                                   f"{who}{weak}", None, unshare, (uid, gid), cg))
        if cg:  # without a pid namespace, only a cgroup finds every descendant
            found.append(Mechanism("setuid-user", f"weak sandbox {who}; it shares the network and sees all "
                                   f"processes, other sandboxes' too{weak}", None, None, (uid, gid), True))
    else:
        if bwrap:
            found.append(Mechanism("bubblewrap", "bubblewrap sandbox (own user, mount, pid, network, IPC "
                                   "namespaces; minimal file system)", bwrap))
        if unshare:
            found.append(Mechanism("user-namespace", "namespace sandbox (own user, pid, network, IPC "
                                   "namespaces) as this same user: it can read AND WRITE this user's files "
                                   "(install bubblewrap for a minimal file system)", None, unshare))
    return found


def _system_user(name: str) -> tuple[int, int, str]:
    """(uid, gid, name) of the dedicated user, created if missing; 'nobody' where it cannot be created."""
    for attempt in range(2):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid, name
        except KeyError:
            pass
        if attempt == 0 and shutil.which("useradd"):
            shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                            "/nonexistent", "--shell", shell, name], capture_output=True)
    entry = pwd.getpwnam("nobody")  # shared with other services, but still nobody the grader trusts
    return entry.pw_uid, entry.pw_gid, "nobody"


def _probe(mechanism: Mechanism) -> str | None:
    """None if a tiny sandboxed Python runs under ``mechanism`` and finds this environment (not merely
    some Python: the sandbox user may be unable to read it), else why not (one line)."""
    expected = json.dumps([sys.prefix, sys.base_prefix])
    with tempfile.TemporaryDirectory(prefix="convlens-probe-") as tmp:
        os.chmod(tmp, 0o711)  # the sandbox user must reach it without bubblewrap
        try:
            child = spawn([sys.executable, "-I", "-c", "import json, sys; "
                           "print(json.dumps([sys.prefix, sys.base_prefix]))"], scratch=Path(tmp), readable=[],
                          limits=Limits(cpu_seconds=10, memory_bytes=1 << 30, processes=64, file_bytes=1 << 20),
                          env={}, mechanism=mechanism, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as err:
            return str(err)
        try:
            out, err = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            return "the probe did not finish within 60 s"
        finally:
            child.kill_tree()
        if child.returncode == 0 and out.decode().strip() == expected:
            return None
        if child.returncode == 0:
            return f"the sandboxed interpreter does not find this environment ({out.decode().strip()[:200]})"
        last = [line for line in err.decode(errors="replace").splitlines() if line.strip()][-1:]
        return f"exit code {child.returncode}" + (f": {last[0].strip()[:200]}" if last else "")


# ------------------------------------------------------------------------------------------------- cgroups

class _Cgroup:
    """One cgroup per sandbox in each writable hierarchy with the memory or pids controller (v1), or in the
    unified (v2) hierarchy when the caller's own cgroup already delegates both controllers to children."""

    def __init__(self, limits: Limits):
        self.dirs: list[Path] = []
        self.fds: list[int] = []
        self.bounds_processes = False
        name = f"convlens-sandbox-{os.getpid()}-{time.monotonic_ns()}"
        try:
            for base, controllers in _cgroup_bases():
                path = base / name
                try:
                    path.mkdir()
                except OSError:
                    continue
                self.dirs.append(path)
                settings = []
                if "memory" in controllers:  # v1 names, then v2 names; no swapping out of the limit
                    settings += [("memory.limit_in_bytes", limits.memory_bytes),
                                 ("memory.memsw.limit_in_bytes", limits.memory_bytes),
                                 ("memory.max", limits.memory_bytes), ("memory.swap.max", 0)]
                if "pids" in controllers:
                    settings.append(("pids.max", limits.processes))
                    self.bounds_processes = True
                for key, value in settings:
                    if (path / key).exists():
                        (path / key).write_text(str(value))
                # Opened here, written by the trampoline inside the sandbox ("0": move myself) before
                # anything of the submission runs, so every later process starts inside.
                self.fds.append(os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            self.remove()
            raise

    @staticmethod
    def available() -> bool:
        try:
            group = _Cgroup(Limits())
        except OSError:
            return False
        ok = bool(group.dirs)
        group.remove()
        return ok

    def pids(self) -> set[int]:
        found = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def remove(self) -> None:
        self.close_fds()
        for d in self.dirs:
            for attempt in range(250):  # members that were just killed leave the cgroup a moment later
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt % 50 == 49:
                        for pid in self.pids():
                            _kill(pid)
                    time.sleep(0.02)
        self.dirs = []


def _cgroup_bases() -> list[tuple[Path, set[str]]]:
    """(folder of this process's own cgroup, controllers usable there) for each writable hierarchy."""
    try:
        own = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    bases = []
    for line in mountinfo:
        pre, _, post = line.partition(" - ")
        fields, post = pre.split(), post.split()
        if len(post) < 3 or len(fields) < 5 or post[0] not in ("cgroup", "cgroup2"):
            continue
        root, mountpoint, options = fields[3], fields[4], set(post[2].split(","))
        for _, controllers, path in own:
            if post[0] == "cgroup" and controllers and set(controllers.split(",")) <= options:
                wanted = options & {"memory", "pids"}
            elif post[0] == "cgroup2" and controllers == "":
                wanted = {"memory", "pids"}  # usable only where our cgroup already delegates both
            else:
                continue
            if root != "/" and path.startswith(root):
                path = path[len(root):]  # the mount shows a sub-tree (a container's own cgroup)
            base = Path(mountpoint) / path.lstrip("/")
            if post[0] == "cgroup2":
                try:
                    if not wanted <= set((base / "cgroup.subtree_control").read_text().split()):
                        continue
                except OSError:
                    continue
            if wanted and os.access(base, os.W_OK):
                bases.append((base, wanted))
    return bases


# ---------------------------------------------------------------------------------------------- spawning

# Runs first inside the sandbox, as the same interpreter: joins the sandbox's cgroup, sets the rlimits,
# drops to the sandbox user (root only) and execs the command. Standard library only, no site (-I -S).
_TRAMPOLINE = r"""
import json, os, resource, sys
spec = json.loads(sys.argv[1])
if spec["no_new_privs"]:
    import ctypes  # now: after the drop below, the interpreter's own files may be out of reach
try:
    for fd in spec["cgroup_fds"]:
        os.write(fd, b"0")
        os.close(fd)
    if spec["init"]:
        # First process of a new pid namespace (as bubblewrap's is): reap orphans, and when the command
        # ends, exit with its status; the kernel then kills whatever is left in the namespace.
        command = os.fork()
        while command:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                os._exit(125)
            if pid == command:
                os._exit(status >> 8 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
        os.setsid()
    for name, soft, hard in spec["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    if spec["uid"] is not None:
        os.setgroups([])
        os.setresgid(spec["gid"], spec["gid"], spec["gid"])
        os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    if spec["no_new_privs"]:
        if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.chdir(spec["cwd"])
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as err:
    os.write(2, f"sandbox: cannot start {sys.argv[2]}: {err}\n".encode())
    os._exit(126)
"""

# System folders shown read-only (where they exist); /bin, /lib... are usually links into /usr.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files of /etc that programs read to start (the dynamic linker's cache, names of uids, time zone).
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd",
              "/etc/group", "/etc/nsswitch.conf", "/etc/fonts")


def _python_prefixes() -> list[str]:
    """The calling interpreter's installation and environment (a venv and its base Python)."""
    found = []
    for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix):
        for q in (os.path.abspath(p), os.path.realpath(p)):
            if q not in found and q != "/":
                found.append(q)
    return found


@dataclass
class Child:
    """A sandboxed process and whatever it starts. :meth:`kill_tree` always ends all of it."""

    popen: subprocess.Popen
    mechanism: Mechanism
    ns_init: int | None = None  # the pid namespace's first process, as the caller's namespace numbers it
    ns_id: str | None = None  # "pid:[inode]" of that namespace, to check ns_init is still ours
    cgroup: _Cgroup | None = None
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
            _kill(self.ns_init)
        if self.cgroup:
            for _ in range(100):  # repeat: a fork may have raced the previous round
                members = self.cgroup.pids()
                if not members:
                    break
                for p in members:
                    _kill(p)
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


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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


def _rlimits(limits: Limits, mechanism: Mechanism, cgroup: _Cgroup | None) -> list[tuple[str, int, int]]:
    found = [("RLIMIT_CORE", 0, 0), ("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 1),
             ("RLIMIT_DATA", limits.memory_bytes, limits.memory_bytes),
             ("RLIMIT_FSIZE", limits.file_bytes, limits.file_bytes)]
    if not (cgroup and cgroup.bounds_processes):  # a pids cgroup bounds this sandbox alone; RLIMIT_NPROC
        # counts the uid: in a user namespace the uid there (this sandbox), else the whole machine's
        nproc = limits.processes
        if mechanism.name == "none":  # the caller's uid, whose own processes count as well
            nproc += _tasks_of(os.getuid())
        found.append(("RLIMIT_NPROC", nproc, nproc))
    return found


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

    ``argv[0]`` should be the calling interpreter (``sys.executable``): its prefixes are the only Python
    made visible. ``scratch`` becomes the working directory, HOME and TMPDIR, read-write (as root, the
    folder itself is given to the sandbox user; what the caller put inside stays the caller's). ``readable``
    paths are shown read-only at their real paths; as root the sandbox user reads them as "others", so
    they need the usual world-read bits. ``env`` is the whole environment (HOME, TMPDIR, TMP, TEMP are set
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
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **env}
    env.update({k: str(scratch) for k in ("HOME", "TMPDIR", "TMP", "TEMP")})
    if mechanism.user is not None:
        os.chown(scratch, *mechanism.user)
        scratch.chmod(0o700)
    cgroup = None
    if mechanism.cgroups:
        try:
            cgroup = _Cgroup(limits)
            if not cgroup.dirs:
                raise OSError("no cgroup hierarchy is writable any more")
        except OSError as err:
            if cgroup:
                cgroup.remove()
            cgroup = None
            if not mechanism.pid_namespace:  # the cgroup is how setuid-user finds the whole tree
                raise OSError(f"the sandbox's cgroup could not be created: {err}") from None
    spec = {"cgroup_fds": cgroup.fds if cgroup else [], "rlimits": _rlimits(limits, mechanism, cgroup),
            "init": bool(mechanism.unshare),
            "uid": mechanism.user[0] if mechanism.user else None,
            "gid": mechanism.user[1] if mechanism.user else None,
            "no_new_privs": mechanism.bwrap is None,  # bubblewrap sets it itself
            "cwd": str(scratch)}
    command = [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, json.dumps(spec), *argv]
    if mechanism.unshare:
        # --kill-child: the namespace's first process dies with unshare; no --user as root (it would map
        # the child to root outside), and the drop to the sandbox user happens in the trampoline.
        command = [mechanism.unshare, *(() if mechanism.user else ("--user", "--map-current-user")),
                   "--pid", "--fork", "--kill-child", "--mount-proc", "--net", "--ipc", "--uts", "--"] + command
    fds = list(pass_fds) + list(spec["cgroup_fds"])
    info_r = info_w = None
    try:
        if mechanism.bwrap:
            info_r, info_w = os.pipe()
            command = _bwrap_args(mechanism, scratch, readable, limits, info_w) + command
            fds.append(info_w)
        popen = subprocess.Popen(command, env=env, cwd=scratch, pass_fds=fds, stdin=stdin, stdout=stdout,
                                 stderr=stderr, start_new_session=True)
    except BaseException:
        if cgroup:
            cgroup.remove()
        for fd in (info_r, info_w):
            if fd is not None:
                os.close(fd)
        raise
    child = Child(popen, mechanism, cgroup=cgroup)
    if cgroup:
        cgroup.close_fds()
    if info_w is not None:
        os.close(info_w)
        info = _read_info(info_r, popen)
        os.close(info_r)
        if info.get("child-pid"):
            child.ns_init = int(info["child-pid"])
            child.ns_id = f"pid:[{info['pid-namespace']}]" if info.get("pid-namespace") else None
    elif mechanism.unshare:
        child.ns_init, child.ns_id = _forked_init(popen)
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


@functools.lru_cache(maxsize=None)
def _bwrap_help(path: str) -> str:
    try:
        return subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _bwrap_has(path: str, option: str) -> bool:
    return f"{option} " in _bwrap_help(path)


def _bwrap_args(mechanism: Mechanism, scratch: Path, readable: list[str], limits: Limits, info_fd: int) -> list[str]:
    """bubblewrap's command line: namespaces, then the file system, built up from an empty tmpfs."""
    args = [mechanism.bwrap, "--die-with-parent", "--new-session", "--info-fd", str(info_fd),
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox"]
    if mechanism.user is None:
        # Unprivileged: a user namespace is what lets bubblewrap build the others; forbid nesting more
        # (bubblewrap 0.8 and later can).
        args.append("--unshare-user")
        if _bwrap_has(mechanism.bwrap, "--disable-userns"):
            args.append("--disable-userns")
    else:
        # As root, no user namespace (it would map to root outside). bubblewrap run by root keeps every
        # capability unless told otherwise: keep only the two the trampoline needs to drop to the sandbox
        # user (setresuid clears them; bubblewrap's no_new_privs keeps setuid programs from giving any back).
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    args += ["--perms", "0755", "--dir", "/etc"]
    for f in _ETC_FILES:
        args += ["--ro-bind-try", f, f]
    # bubblewrap's /dev is an unbounded tmpfs: give /dev/shm a size like /tmp's (bubblewrap 0.7 and later;
    # a memory cgroup bounds both anyway)
    size = ["--size", str(max(limits.file_bytes, 1 << 20))] if _bwrap_has(mechanism.bwrap, "--size") else []
    args += ["--proc", "/proc", "--dev", "/dev", *size, "--tmpfs", "/dev/shm",
             "--perms", "1777", *size, "--tmpfs", "/tmp"]
    binds = [("--ro-bind", p) for p in _python_prefixes()] + [("--bind", str(scratch))]
    binds += [("--ro-bind", p) for p in readable]
    # Outer folders first, so that a readable folder inside scratch stays read-only, and scratch inside a
    # readable folder stays writable (sorted() keeps the order above among equals).
    binds = sorted(binds, key=lambda b: len(Path(b[1]).parts))
    made = set()
    for _, p in binds:  # bubblewrap would create missing parents mode 0700 (root's): make them traversable
        for parent in reversed(Path(p).parents):
            s = str(parent)
            if s != "/" and s not in made and not any(s == d or s.startswith(d + "/") for d in _SYSTEM_DIRS):
                made.add(s)
                args += ["--perms", "0755", "--dir", s]
    for kind, p in binds:
        args += [kind, p, p]
    # The trampoline enters scratch once it is the sandbox user (root without capabilities could not).
    args += ["--remount-ro", "/", "--chdir", "/"]
    return args + ["--"]
