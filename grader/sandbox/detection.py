"""Finding the strongest mechanism that works on this machine, by running a tiny sandbox with each."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grader.sandbox.cgroups import Cgroup
from grader.sandbox.mechanism import MODES, NONE, SANDBOX_USER, Limits, Mechanism, SandboxUnavailable
from grader.sandbox.process import spawn


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
        cg = Cgroup.available()
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
