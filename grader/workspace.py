"""The folder a submission's code runs in: the instructor's kit with only the student's topic modules swapped
in, plus a scratch folder that is the working directory, HOME and TMPDIR.

Everything the checks trust (checks/, reference tensors, datasets/, helpers/model.py, images.py,
plotting.py) is copied from the instructor's kit, never from the submission. Because the grader may run as
root, file permissions protect nothing; instead :meth:`Workspace.changes` notices any file of the kit that
was added, removed or rewritten, and :meth:`Workspace.restore` puts the instructor's copy back.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

MAX_FILE_BYTES = 256 << 20  # a worker may not write a file larger than this (RLIMIT_FSIZE)
KIT_PARTS = ("checks", "datasets", "helpers")
IGNORE = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")


def describe_changes(before: dict, now: dict, kinds: bool = True) -> str:
    """'' if two :func:`snapshot` dicts agree, else the first three differences and ' and N more': with
    ``kinds`` 'path modified', 'path removed', 'path added' (in that order), else the bare paths, sorted."""
    if kinds:
        found = [f"{p} modified" for p in before if p in now and now[p] != before[p]]
        found += [f"{p} removed" for p in before if p not in now]
        found += [f"{p} added" for p in now if p not in before]
    else:
        found = sorted(p for p in now.keys() | before.keys() if now.get(p) != before.get(p))
    return ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")


def topics_of(kit_root: Path) -> dict[str, str]:
    """checks/topics.py's TOPICS (topic -> notebook path) of the instructor's kit."""
    path = kit_root / "checks" / "topics.py"
    return dict(_load_file_module(path, f"_grader_topics_{abs(hash(str(path)))}").TOPICS)


def _load_file_module(path: Path, name: str):
    """Import a .py file by path under a private name (registered, as dataclasses need)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def stub_source(kit_root: Path, topic: str) -> str:
    """The student-build version of the instructor's helpers/<topic>.py (solutions replaced by stubs)."""
    path = kit_root / "tools" / "release.py"
    release = _load_file_module(path, f"_grader_release_{abs(hash(str(path)))}")
    path = kit_root / "helpers" / f"{topic}.py"
    return release.stub_source(path.read_text(encoding="utf-8"), f"helpers/{topic}.py")


def build_kit(dest: Path, kit_root: Path, student_files: dict, notebooks: bool = False) -> None:
    """Write the instructor's kit to ``dest`` with the student's helpers/<topic>.py files in place.

    ``student_files``: topic -> path of the student's file, or None for a file the submission lacks (the
    instructor's stubbed version goes there, so other modules that import it still load).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for part in KIT_PARTS + (("notebooks",) if notebooks else ()):
        if (kit_root / part).is_dir():
            shutil.copytree(kit_root / part, dest / part, ignore=IGNORE, dirs_exist_ok=True)
    for topic, path in student_files.items():
        target = dest / "helpers" / f"{topic}.py"
        if path is not None:
            shutil.copyfile(path, target)
        elif (kit_root / "helpers" / f"{topic}.py").is_file():
            try:
                target.write_text(stub_source(kit_root, topic), encoding="utf-8")
            except Exception:  # no release tool in this kit: leave the module out (importing it fails clearly)
                target.unlink(missing_ok=True)


def snapshot(root: Path) -> dict[str, tuple]:
    """relative path -> (size, mtime, ctime, inode) for every file under ``root``. ctime changes on every
    write and cannot be set back by the writer, so a rewrite is noticed even if the mtime is restored."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            state[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    return state


def sandbox_env(scratch: Path, threads: int) -> dict[str, str]:
    """Environment for a worker: home, temp and caches inside ``scratch``; no PYTHONPATH into the real kit."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    scratch_s = str(scratch)
    env.update({
        "HOME": scratch_s, "TMPDIR": scratch_s, "TMP": scratch_s, "TEMP": scratch_s,
        "MPLCONFIGDIR": scratch_s, "XDG_CACHE_HOME": scratch_s, "TORCH_HOME": scratch_s,
        "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
        "PYTHONHASHSEED": "0", "CONVLENS_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
    })
    return env


class Workspace:
    """``<work_dir>/kit`` (instructor files + student topic modules) and ``<work_dir>/scratch``."""

    def __init__(self, kit_root: Path, work_dir: Path, student_files: dict):
        self.kit_root, self.student_files = Path(kit_root), dict(student_files)
        self.dir = Path(tempfile.mkdtemp(prefix="ws-", dir=work_dir))
        self.kit = self.dir / "kit"
        self.scratch = self.dir / "scratch"
        self.restore()

    def restore(self) -> None:
        """(Re)build the kit from the instructor's files and empty the scratch folder."""
        for path in (self.kit, self.scratch):
            shutil.rmtree(path, ignore_errors=True)
        build_kit(self.kit, self.kit_root, self.student_files)
        self.scratch.mkdir()
        self._state = snapshot(self.kit)

    def changes(self) -> str:
        """'' if the kit is untouched, else a short list like 'checks/core.py modified, helpers/x.txt added'."""
        return describe_changes(self._state, snapshot(self.kit))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
