"""What a sandbox is: the mechanism that isolates a child, and the resource limits it runs under."""
from __future__ import annotations

from dataclasses import dataclass

SANDBOX_USER = "convlens-grader"
MECHANISMS = ("bubblewrap+user", "bubblewrap", "namespaces+user", "setuid-user")  # strongest first
MODES = ("auto", *MECHANISMS, "none")  # a mechanism's name: that one or none; "none" only when asked for


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

    name: str  # "bubblewrap+user", "bubblewrap", "namespaces+user", "setuid-user", "none"
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


NONE = Mechanism("none", "NO SANDBOX (--isolation none, for trusted code only): submissions run as the grader's "
                         "own user with resource limits only; they can read and write whatever it can and reach "
                         "the network")


@dataclass(frozen=True)
class Guard:
    """What a mechanism must guarantee before it is offered: under it, a child can read none of ``secret``
    (hidden cases, solutions), write into none of ``protected`` (the kit, the grades, the grader's home),
    and cannot import Captum."""

    secret: tuple = ()
    protected: tuple = ()


class SandboxUnavailable(RuntimeError):
    """``detect("auto")`` found no operating-system sandbox on this machine that gives the guarantee."""
