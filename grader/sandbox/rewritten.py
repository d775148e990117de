"""Folders to show the child in place of the Python installation's lib/ and of the environment's site-packages:
mirrors of them in which every file that records where Python or a package was installed names the place the
sandbox shows instead (:class:`~grader.sandbox.bubblewrap.Layout`), so that no file the child can read names a
folder of the host:

* compiled bytecode (``__pycache__``) records its source's path in every code object;
* ELF files of the installation (libpython, the standard library's extension modules, the interpreter) keep
  ``<prefix>/lib`` as their RUNPATH, and libpython its prefix: each such C string is rewritten in place,
  padded with NULs (whatever reads them stops at the first NUL, and no offset moves);
* ``_sysconfigdata`` records the paths Python was configured and installed with.

Every other file is a hard link to the original (a copy where the file system refuses one). A mirror is made
once per installation and environment (under 10 s and 250 MB of rewritten files for this kit's) and kept in the
user's cache folder (``~/.cache/convlens/sandbox``; mirrors unused for a week are removed). One bind mount
shows each.
"""
from __future__ import annotations

import functools
import hashlib
import marshal
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

ELF_MAGIC = b"\x7fELF"


def rewrite_c_strings(data: bytes, old: str, new: str) -> bytes:
    """Each NUL-delimited string of ``data`` that is ``old`` or begins with ``old/`` made to begin with ``new``
    instead (not longer than ``old``), padded with NULs to its length."""
    old_b, new_b = old.encode(), new.encode()
    out, start = bytearray(data), 0
    while len(new_b) <= len(old_b) and (i := data.find(old_b, start)) >= 0:
        start, end = i + 1, data.find(b"\0", i)
        rest = data[i + len(old_b):end]
        if end >= 0 and (i == 0 or data[i - 1] == 0) and (not rest or rest.startswith(b"/")):
            out[i:end] = (new_b + rest).ljust(end - i, b"\0")
    return bytes(out)


def rewrite_code(code: types.CodeType, renames: list[tuple[str, str]]) -> types.CodeType:
    """``code`` and the code objects it holds with their file names renamed, and the host folders in their
    string constants (``_sysconfigdata``'s values, a docstring's example)."""
    return code.replace(co_filename=_rewrite_constant(code.co_filename, renames),
                        co_consts=tuple(_rewrite_constant(c, renames) for c in code.co_consts))


def _rewrite_constant(value, renames: list[tuple[str, str]]):
    if isinstance(value, types.CodeType):
        return rewrite_code(value, renames)
    if isinstance(value, str):
        for host, shown in renames:
            value = value.replace(host, shown)
        return value
    if isinstance(value, (tuple, frozenset)):
        return type(value)(_rewrite_constant(v, renames) for v in value)
    return value


def _files(parts: tuple[tuple[str, str], ...], skip: frozenset[str]) -> list[tuple[str, str]]:
    """(host path, path in the mirror) of every file and link of ``parts`` ((host path, name) each)."""
    found = []
    for host, name in parts:
        if not os.path.isdir(host) or os.path.islink(host):
            found.append((host, name))
            continue
        for folder, dirs, files in os.walk(host):
            dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
            inner = os.path.join(name, os.path.relpath(folder, host))
            found.append((folder, os.path.normpath(inner)))
            found += [(os.path.join(folder, f), os.path.normpath(os.path.join(inner, f))) for f in files]
            found += [(os.path.join(folder, d), os.path.normpath(os.path.join(inner, d)))
                      for d in dirs if os.path.islink(os.path.join(folder, d))]
    return found


@functools.lru_cache(maxsize=None)
def mirror(parts: tuple[tuple[str, str], ...], renames: tuple[tuple[str, str], ...],
           skip: frozenset[str] = frozenset(), binaries: bool = False) -> str:
    """The host path of a folder holding each (host path, name) of ``parts`` under its name, with the folders of
    ``skip`` left out and the host folders of ``renames`` ((host, shown), longest first) rewritten as above, in
    ELF files too where ``binaries``."""
    files = _files(parts, skip)
    key = hashlib.sha256(repr((sys.version, parts, renames, sorted(skip), binaries)).encode())
    for host, _ in files:
        st = os.lstat(host)
        key.update(f"{host}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convlens" / "sandbox"
    done = root / key.hexdigest()[:24]
    if done.is_dir():
        os.utime(done)
        return str(done)
    root.mkdir(parents=True, exist_ok=True)
    _forget_unused(root)
    building = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
    try:
        for host, inner in files:
            _write(host, building / inner, list(renames), binaries)
        for folder, _, _ in os.walk(building):
            os.chmod(folder, 0o755)  # the sandbox user reads the mirror as "others", whatever the umask
        os.rename(building, done)  # whole or not at all; another process may have finished first
    except OSError:
        if not done.is_dir():
            raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return str(done)


def _write(host: str, dest: Path, renames: list[tuple[str, str]], binaries: bool) -> None:
    if os.path.isdir(host) and not os.path.islink(host):
        dest.mkdir(mode=0o755, parents=True, exist_ok=True)
        return
    dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if os.path.islink(host):
        if not os.path.isabs(os.readlink(host)):
            os.symlink(os.readlink(host), dest)  # inside the mirror, as inside the original
            return
        if not os.path.isfile(host):
            return  # a link to a folder elsewhere: nothing the child needs
    data = None
    if dest.parent.name == "__pycache__" and dest.suffix == ".pyc":
        if ".opt-" in dest.name:
            return  # for ``python -O``, which the child is not run with
        data = _rewrite_bytecode(Path(host).read_bytes(), renames)
        if data is None:
            return  # another Python's bytecode: this interpreter never reads it
    elif dest.name.startswith("_sysconfigdata") and dest.suffix == ".py":
        text = Path(host).read_text(encoding="utf-8")
        for old, new in renames:
            text = text.replace(old, new)
        data = text.encode("utf-8")
    elif binaries and _is_elf(host):
        data = original = Path(host).read_bytes()
        for old, new in renames:
            data = rewrite_c_strings(data, old, new)
        data = None if data == original else data
    if data is not None:
        dest.write_bytes(data)
        shutil.copystat(host, dest)
        return
    try:
        os.link(host, dest, follow_symlinks=True)
    except OSError:  # another file system, or a file this user may not link
        shutil.copy2(host, dest)


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ELF_MAGIC


def _rewrite_bytecode(data: bytes, renames: list[tuple[str, str]]) -> bytes | None:
    try:
        code = marshal.loads(data[16:])
    except (ValueError, EOFError, TypeError):
        return None
    return data[:16] + marshal.dumps(rewrite_code(code, renames)) if isinstance(code, types.CodeType) else None


def _forget_unused(root: Path, days: float = 7) -> None:
    """Remove the mirrors of an installation or environment not used for ``days``."""
    for entry in root.iterdir():
        try:
            if time.time() - entry.stat().st_mtime > days * 86400:
                shutil.rmtree(entry)
        except OSError:
            pass  # another process's, gone or in use
