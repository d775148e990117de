"""Folders the grader builds from the instructor's kit.

* :func:`build_child_folder`: what a submission's sandboxed child may read, and nothing else: the child
  program and the computing half of the checks (the package ``checks/child/`` whole, with ``checks/__init__.py``;
  no reference files, no judge), the part of the kit library the exercises may use (``convlens/``:
  the model, style settings, the device rule) and the submission's four
  exercise files as ``helpers/<topic>.py``. It is shown read-only inside the sandbox; the child works in a
  separate, empty scratch folder.
* :func:`build_kit` (``kit.py grade --prepare``): the instructor's kit with notebooks and one submission's
  exercise files in place, for nbval.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# The kit modules the exercises' contracts name (the model, style settings, the device rule): hidden from the
# child are the attribution methods, the explorer, the visualizations and everything else a submission could
# call instead of writing its exercise.
CHILD_LIBRARY = ("__init__.py", "model.py", "style.py", "runtime.py")
IGNORE = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc")


def build_child_folder(dest: Path, kit_root: Path, student_files: dict) -> Path:
    """Write the child's read-only folder (see the module docstring). ``student_files``: topic -> path of
    the submission's helpers/<topic>.py, or None (left out: that topic is not run)."""
    dest.mkdir(parents=True)
    (dest / "convlens").mkdir()
    for name in CHILD_LIBRARY:
        shutil.copyfile(kit_root / "convlens" / name, dest / "convlens" / name)
    (dest / "checks").mkdir()
    shutil.copyfile(kit_root / "checks" / "__init__.py", dest / "checks" / "__init__.py")
    shutil.copytree(kit_root / "checks" / "child", dest / "checks" / "child", ignore=IGNORE)
    (dest / "helpers").mkdir()
    shutil.copyfile(kit_root / "helpers" / "__init__.py", dest / "helpers" / "__init__.py")
    for topic, path in student_files.items():
        if path is not None:
            shutil.copyfile(path, dest / "helpers" / f"{topic}.py")
    # The sandbox user reads this folder as "others" (the grader's own files stay the grader's).
    for folder, dirs, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return dest


def stub_source(kit_root: Path, topic: str) -> str:
    """The student-build version of the instructor's helpers/<topic>.py (solutions replaced by stubs)."""
    from tools.release import stub_source as stubbed

    path = kit_root / "helpers" / f"{topic}.py"
    return stubbed(path.read_text(encoding="utf-8"), f"helpers/{topic}.py")


def build_kit(dest: Path, kit_root: Path, student_files: dict, notebooks: bool = False) -> None:
    """Write the instructor's kit to ``dest`` with the student's helpers/<topic>.py files in place.

    ``student_files``: topic -> path of the student's file, or None for a file the submission lacks (the
    instructor's stubbed version goes there, so the notebooks that import it still load).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("checks", "convlens", "datasets", "helpers") + (("notebooks",) if notebooks else ()):
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
