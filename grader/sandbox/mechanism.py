"""What a sandbox is: the mechanism that isolates a child, and the resource limits it runs under."""
from __future__ import annotations

from dataclasses import dataclass

SANDBOX_USER = "convlens-grader"
MECHANISMS = ("bubblewrap+user", "bubblewrap", "namespaces+user", "setuid-user")  # strongest first
MODES = ("auto", *MECHANISMS, "none")  # a mechanism's name: that one or none; "none" only when asked for
# As root, each sandbox runs as a uid of its own from this range (no user has one: a child is "others" to every
# file, like the dedicated user), so that RLIMIT_NPROC, which the kernel counts per uid, bounds one sandbox and
# one sandbox cannot signal or trace another's processes.
SANDBOX_UIDS = range(1_900_000_000, 1_900_000_000 + (1 << 20))


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandbox. Each holds without a cgroup; a cgroup, where one can be made, also
    bounds the whole tree.

    cpu_seconds: CPU time of each process (RLIMIT_CPU: SIGXCPU, then SIGKILL a second later).
    memory_bytes: private writable memory of each process (RLIMIT_DATA), and of the whole tree where a
        memory cgroup can be made.
    address_overhead: what the interpreter, PyTorch's libraries and the model map without writing to it
        (about 2.5 GB of the 3.5 GB address space of a worker with the model loaded and one thread, beside
        1.0 GB of data). The address space of each process (RLIMIT_AS, which also counts shared mappings,
        unlike RLIMIT_DATA) is limited to memory_bytes + address_overhead: shared memory a submission maps
        comes out of the same budget as its private memory.
    processes: processes plus threads (torch starts one thread per core). A pids cgroup bounds the sandbox
        by itself; without one RLIMIT_NPROC does, which the kernel counts per uid: as root each sandbox runs
        as a uid of its own (:func:`sandbox_uid`), in a user namespace the uid is the namespace's, so a
        submission's processes never count against a classmate's.
    file_bytes: largest file the child may write (RLIMIT_FSIZE: SIGXFSZ), also the size of its /tmp.
    """

    cpu_seconds: int = 300
    memory_bytes: int = 4 << 30
    processes: int = 256
    file_bytes: int = 256 << 20
    address_overhead: int = 3 << 30

    @property
    def address_bytes(self) -> int:
        return self.memory_bytes + self.address_overhead


@dataclass(frozen=True)
class Mechanism:
    """How :func:`spawn` isolates a child; ``description`` is one line for the console or a report."""

    name: str  # "bubblewrap+user", "bubblewrap", "namespaces+user", "setuid-user", "none"
    description: str
    bwrap: str | None = None  # path of the bwrap program: a minimal file system and every namespace
    unshare: str | None = None  # path of util-linux's unshare: pid, network, IPC namespaces only
    user: tuple[int, int] | None = None  # the dedicated user's (uid, gid) (the grader runs as root): the child
    # drops to a uid of its own (SANDBOX_UIDS) and that user's group
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
