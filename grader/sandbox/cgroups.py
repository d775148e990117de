"""A cgroup per sandbox: memory and process limits for the whole tree, and the list of its members (how a
tree without its own pid namespace is found and ended). Needs a writable cgroup hierarchy (root)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from grader.sandbox.mechanism import Limits


class Cgroup:
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
            group = Cgroup(Limits())
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
                            kill(pid)
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


def kill(pid: int) -> None:
    """SIGKILL ``pid``; one that is gone already (or not ours to kill) is left alone."""
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
