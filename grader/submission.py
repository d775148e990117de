"""Finding a submission's files: a folder or a .zip holding the student's ``helpers/`` (and notebooks).

Only ``helpers/<topic>.py`` files are taken from a submission. Zips are read defensively: no absolute or
``..`` paths, no links, a cap on the number and total size of files, and only .py / .ipynb members.
"""
from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 5000
MAX_UNZIPPED_BYTES = 200 << 20
MAX_SOURCE_BYTES = 2 << 20  # a helpers/<topic>.py larger than this is treated as missing
SKIP_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git"}


@dataclass
class Submission:
    """name: shown in tables and the roster; files: topic -> path of helpers/<topic>.py or None."""

    name: str
    source: Path
    files: dict[str, Path | None]
    notebooks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_submission_dir(path: Path, topics) -> bool:
    """A folder that itself holds helpers/ or topic modules (as opposed to a folder of submissions)."""
    return (path / "helpers").is_dir() or any((path / f"{t}.py").is_file() for t in topics)


def expand(paths: list[Path], topics) -> list[Path]:
    """Submission paths from the command line: a folder of submissions becomes its zips and subfolders."""
    found = []
    for path in paths:
        if path.is_dir() and not is_submission_dir(path, topics):
            children = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.name not in SKIP_DIRS
                              and (p.is_dir() or p.suffix.lower() == ".zip"))
            found += children or [path]
        else:
            found.append(path)
    return found


def safe_extract(archive: Path, dest: Path, names=None) -> list[str]:
    """Extract the .py and .ipynb members of ``archive`` into ``dest`` (only files called one of ``names``
    and notebooks, if given); returns the problems noticed."""
    problems = []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        return [f"cannot open {archive.name} as a zip: {err}"]
    with zf:
        total, count = 0, 0
        for info in zf.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.is_dir() or not parts or info.filename.startswith("/") or ".." in parts:
                continue
            if stat.S_ISLNK(info.external_attr >> 16) or SKIP_DIRS & set(parts):
                continue
            if not parts[-1].endswith((".py", ".ipynb")) or (names is not None and not (
                    parts[-1] in names or parts[-1].endswith(".ipynb"))):
                continue
            count += 1
            if count > MAX_MEMBERS:
                problems.append(f"{archive.name} has more than {MAX_MEMBERS} files to extract; rest ignored")
                break
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src:  # read at most a little more than allowed: headers can lie
                    data = src.read(MAX_SOURCE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as err:  # corrupt, encrypted
                problems.append(f"cannot extract {info.filename}: {err}")
                continue
            total += len(data)
            if total > MAX_UNZIPPED_BYTES:
                problems.append(f"{archive.name} unpacks to more than {MAX_UNZIPPED_BYTES >> 20} MB; rest ignored")
                break
            target.write_bytes(data)
    return problems


def _folders(root: Path, max_depth: int = 5):
    """``root`` and the folders below it (not following links; skipping hidden, cache and environment ones)."""
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                             and d not in ("site-packages", "node_modules") and depth < max_depth)
        yield here


def _find_helpers(root: Path, topics) -> Path | None:
    """The folder holding the student's topic modules: the helpers/ with most of them (shallowest first),
    else ``root`` itself if the files sit at the top."""
    best, best_key = None, None
    for candidate in _folders(root):
        if candidate != root and candidate.name != "helpers":
            continue
        count = sum((candidate / f"{t}.py").is_file() for t in topics)
        key = (-count, len(candidate.relative_to(root).parts), candidate != root)
        if count and (best_key is None or key < best_key):
            best, best_key = candidate, key
    return best


def load(path: Path, topics, unzip_dir: Path) -> Submission:
    """Describe one submission (extracting a zip into ``unzip_dir``). Never raises for a bad submission."""
    path = Path(path)
    name = path.stem if path.suffix.lower() == ".zip" else path.resolve().name
    problems = []
    root = path
    if path.is_file() and path.suffix.lower() == ".zip":
        root = unzip_dir / "unzipped"
        root.mkdir(parents=True, exist_ok=True)
        problems += safe_extract(path, root, {f"{t}.py" for t in topics})
    elif not path.is_dir():
        problems.append(f"{path} is neither a folder nor a .zip file")
        return Submission(name, path, {t: None for t in topics}, [], problems)
    helpers = _find_helpers(root, topics)
    files = {}
    for topic in topics:
        candidate = helpers / f"{topic}.py" if helpers is not None else None
        if candidate is not None and candidate.is_file() and not candidate.is_symlink():
            if candidate.stat().st_size > MAX_SOURCE_BYTES:
                problems.append(f"helpers/{topic}.py is larger than {MAX_SOURCE_BYTES >> 20} MB; ignored")
                candidate = None
        else:
            candidate = None
        files[topic] = candidate
    notebooks = sorted(p.name for folder in _folders(root) for p in folder.glob("*.ipynb"))
    return Submission(name, path, files, notebooks, problems)
