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

from grader.sandbox.bubblewrap import shown_prefixes
from grader.sandbox.cgroups import Cgroup
from grader.sandbox.mechanism import MODES, NONE, SANDBOX_USER, Guard, Limits, Mechanism, SandboxUnavailable
from grader.sandbox.process import spawn


def detect(requested: str = "auto", user: str = SANDBOX_USER, guard: Guard = Guard()) -> Mechanism:
    """The strongest mechanism that works here AND gives the guarantee, found by running a tiny sandbox with
    each in turn: under it a child cannot import Captum, read ``guard.secret`` or write into
    ``guard.protected``.

    ``requested``: "auto" (the strongest such mechanism; :class:`SandboxUnavailable`, naming what to install,
    when there is none), a mechanism's name (that one, with the same probe: for testing a platform's
    fallback) or "none" (no sandbox: only when asked for by name, for trusted code). As root,
    ``user`` is the dedicated system user the child runs as; it is created (no home, no login shell) when
    missing.
    """
    if requested not in MODES:
        raise ValueError(f"isolation must be one of {', '.join(MODES)}, not {requested!r}")
    if requested == "none":
        return NONE
    tried = []
    candidates = [m for m in _candidates(user) if requested in ("auto", m.name)]
    if not candidates:
        tried.append(f"{requested}: not available on this machine as this user")
    for mechanism in candidates:
        problem = _probe(mechanism, guard)
        if problem is None:
            return mechanism
        tried.append(f"{mechanism.name}: {problem}")
    advice = ("install bubblewrap (the 'bubblewrap' package; as an ordinary user, unprivileged user namespaces "
              "must be allowed)" if os.geteuid() != 0 else
              "install bubblewrap (the 'bubblewrap' package), or make the hidden cases and solutions readable by "
              "root alone and remove Captum from the environment the submissions run in")
    raise SandboxUnavailable("no sandbox here keeps a submission away from the kit, the grades and Captum ("
                             + ("; ".join(tried) or "nothing to try") + f"): {advice}. --isolation none grades "
                             "without one, for trusted code only.")


def _candidates(user: str) -> list[Mechanism]:
    """Mechanisms worth probing, strongest first (tests replace this to simulate a bare machine). Without
    bubblewrap the file system is the machine's: the root mechanisms are offered only where the probe finds
    the kit's secrets unreadable and Captum absent for the dedicated user; an ordinary user without
    bubblewrap has nothing that keeps a child from the user's own files."""
    bwrap, unshare = shutil.which("bwrap"), shutil.which("unshare")
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
                                   f"{who}; it sees the machine's files as that user does (checked: not the "
                                   "kit's secrets, not Captum)", None, unshare, (uid, gid), cg))
        if cg:  # without a pid namespace, only a cgroup finds every descendant
            found.append(Mechanism("setuid-user", f"user sandbox {who}; it shares the network and sees all "
                                   "processes; it sees the machine's files as that user does (checked: not the "
                                   "kit's secrets, not Captum)", None, None, (uid, gid), True))
    elif bwrap:
        found.append(Mechanism("bubblewrap", "bubblewrap sandbox (own user, mount, pid, network, IPC "
                               "namespaces; minimal file system)", bwrap))
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


# Run inside the probe sandbox: what the guarantee forbids, tried for real. Prints [prefix, base prefix,
# [problems]].
_PROBE = """
import json, os, sys
secret, protected = json.loads(sys.argv[1])
problems = []
try:
    import captum
    problems.append("Captum can be imported")
except ImportError:
    pass
for path in secret:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").close()
        problems.append(f"{path} can be read")
    except OSError:
        pass
for folder in protected:
    name = os.path.join(folder, ".convlens-probe")
    try:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        continue
    os.unlink(name)
    problems.append(f"{folder} can be written")
print(json.dumps([sys.prefix, sys.base_prefix, problems]))
"""


def _probe(mechanism: Mechanism, guard: Guard = Guard()) -> str | None:
    """None if a tiny sandboxed Python runs under ``mechanism``, finds this environment (not merely some
    Python: the sandbox user may be unable to read it) and can neither import Captum, read ``guard.secret``
    nor write into ``guard.protected``; else why not (one line)."""
    with tempfile.TemporaryDirectory(prefix="convlens-probe-") as tmp:
        os.chmod(tmp, 0o711)  # the sandbox user must reach it without bubblewrap
        paths = json.dumps([[str(p) for p in guard.secret], [str(p) for p in guard.protected]])
        try:
            child = spawn([sys.executable, "-I", "-c", _PROBE, paths], scratch=Path(tmp), readable=[],
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
        if child.returncode != 0:
            last = [line for line in err.decode(errors="replace").splitlines() if line.strip()][-1:]
            return f"exit code {child.returncode}" + (f": {last[0].strip()[:200]}" if last else "")
        try:
            prefix, base, problems = json.loads(out.decode())
        except ValueError:
            return f"the probe's answer cannot be read ({out.decode(errors='replace').strip()[:200]})"
        if [prefix, base] != (shown_prefixes() if mechanism.bwrap else [sys.prefix, sys.base_prefix]):
            return f"the sandboxed interpreter does not find this environment ({prefix}, {base})" + (
                _unreachable(mechanism) or "")
        if problems:
            return "no guarantee: " + ", ".join(problems[:4]) + (" ..." if len(problems) > 4 else "")
        return None


def _unreachable(mechanism: Mechanism) -> str | None:
    """Why the sandbox user cannot reach this Python (': the Python lives in <prefix>, inside a folder others
    cannot enter ...'), or None.
    Without bubblewrap the child sees the machine's files with its own uid, as "others"."""
    if mechanism.user is None or mechanism.bwrap:
        return None
    for prefix in dict.fromkeys(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)):
        for folder in [*reversed(Path(prefix).parents), Path(prefix)]:
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if not mode & 0o001:
                return (f": the Python lives in {prefix}, inside {folder} (mode {mode & 0o777:o}), which the sandbox "
                        "user cannot enter; install the environment where every user can read it (under /opt or "
                        "/usr/local), or install bubblewrap, which shows it to the sandbox itself")
    return None
