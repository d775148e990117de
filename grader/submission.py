"""Finding a submission's files: a folder or a .zip holding the student's ``helpers/`` (and notebooks).

Only ``helpers/<topic>.py`` files are taken from a submission. Zips are read defensively: no absolute or
``..`` paths, no links, a cap on the number and total size of files, and only .py / .ipynb members.
"""
from __future__ import annotations

import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_MEMBERS = 5000
MAX_UNZIPPED_BYTES = 200 << 20
MAX_SOURCE_BYTES = 2 << 20  # a helpers/<topic>.py larger than this is treated as missing
SKIP_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__", ".git"}
MAX_NAME = 80
RESERVED_NAMES = {"roster.csv", "summary.txt", "class"}  # files the grader writes beside the submissions' folders


def safe_name(raw: str) -> str:
    """A name that is safe as a folder name and a roster cell: letters, digits, '.', '_' and '-' (anything else,
    undecodable bytes too, becomes '_'), at most MAX_NAME characters, never hidden or one of RESERVED_NAMES."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:MAX_NAME].lstrip(".-") or "submission"
    return f"sub-{name}" if name.lower() in RESERVED_NAMES else name


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
                              and (p.is_symlink() or p.is_dir() or p.suffix.lower() == ".zip"))
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
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError) as err:  # a name flagged UTF-8 that is not
        return [f"cannot open the zip: {type(err).__name__}: {err}"]
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
            try:
                with zf.open(info) as src:  # read at most a little more than allowed: headers can lie
                    data = src.read(MAX_SOURCE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as err:  # corrupt, encrypted
                problems.append(f"cannot extract {safe_name(info.filename)}: {err}")
                continue
            total += len(data)
            if total > MAX_UNZIPPED_BYTES:
                problems.append(f"{archive.name} unpacks to more than {MAX_UNZIPPED_BYTES >> 20} MB; rest ignored")
                break
            try:  # a name too long, or a file where a folder of the same name was written (or the reverse)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            except OSError as err:
                problems.append(f"cannot extract {safe_name(info.filename)[:60]}: {type(err).__name__}")
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


def _inside(root: Path, path: Path) -> bool:
    """True if no part of ``path`` below ``root`` is a link: its real path is root's real path plus the rest."""
    return os.path.realpath(path) == os.path.join(os.path.realpath(root), *path.relative_to(root).parts)


def _snapshot(source: Path, dest: Path) -> Path:
    """Copy one file once, refusing a link, into the grader's own folder: what is graded is what was read."""
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise ValueError(f"larger than {MAX_SOURCE_BYTES >> 20} MB")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def load(path: Path, topics, unzip_dir: Path) -> Submission:
    """Describe one submission (extracting a zip into ``unzip_dir``) and copy its topic files into
    ``unzip_dir``/snapshot/. Never raises for a bad submission: whatever goes wrong becomes a problem, and the
    name is made safe (the original is kept in ``source`` and in a problem line when it differs)."""
    path = Path(path)
    raw = path.stem if path.suffix.lower() == ".zip" else path.name
    name = safe_name(raw)
    problems = [] if name == raw else [f"name cleaned from {raw!r}"]
    try:
        return _load(path, name, topics, unzip_dir, problems)
    except Exception as err:  # noqa: BLE001 - one submission's failure must not stop the class
        problems.append(f"cannot read the submission ({type(err).__name__}: {str(err)[:120]})")
        return Submission(name, path, {t: None for t in topics}, [], problems)


def _load(path: Path, name: str, topics, unzip_dir: Path, problems: list[str]) -> Submission:
    none = {t: None for t in topics}
    if path.is_symlink():
        problems.append("is a symbolic link: not followed (submit the files themselves)")
        return Submission(name, path, none, [], problems)
    root = path
    if path.is_file() and path.suffix.lower() == ".zip":
        root = unzip_dir / "unzipped"
        root.mkdir(parents=True, exist_ok=True)
        problems += safe_extract(path, root, {f"{t}.py" for t in topics})
    elif not path.is_dir():
        problems.append("neither a folder nor a .zip file")
        return Submission(name, path, none, [], problems)
    helpers = _find_helpers(root, topics)
    files = {}
    for topic in topics:
        candidate = helpers / f"{topic}.py" if helpers is not None else None
        files[topic] = None
        if candidate is None or not (candidate.is_file() or candidate.is_symlink()):
            continue
        if candidate.is_symlink() or not _inside(root, candidate):
            problems.append(f"helpers/{topic}.py is a link or lies behind one: not followed")
            continue
        try:
            files[topic] = _snapshot(candidate, unzip_dir / "snapshot" / f"{topic}.py")
        except (OSError, ValueError) as err:
            problems.append(f"helpers/{topic}.py ignored: {err}")
    notebooks = sorted(safe_name(p.name) for folder in _folders(root) for p in folder.glob("*.ipynb"))
    return Submission(name, path, files, notebooks, problems)
