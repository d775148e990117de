"""Build the corpus of broken submissions from the current reference solutions (helpers/<topic>.py).

Each case in cases.toml names one mistake as a list of edits applied to copies of the solution files, so the
corpus follows the solutions as they change. Edit kinds (one key each, plus ``file`` = the topic):

    wrap = "FUNC", code = "..."       replace FUNC by a wrapper whose body is ``code``; inside it ``original``
                                      is the solution's FUNC and ``args`` / ``kwargs`` the call's arguments
    replace = "old", with = "new"     textual replacement; ``old`` must occur exactly once
    prepend = "code"                  code at the top of the module (after any ``from __future__`` line)
    append = "code"                   code at the end of the module
    delete = true                     leave the file out of the submission
    stub = true                       the student build of the file (every exercise raises NotImplementedError)

A case may also carry ``[[case.extra]]`` files (``path``, ``text``) copied into the submission as they are,
and ``zip = true`` to hand the submission in as a zip holding a nested folder.
"""
from __future__ import annotations

import fnmatch
import re
import shutil
import textwrap
import tomllib
import zipfile
from pathlib import Path

from tools.release import stub_source

CASES_FILE = Path(__file__).resolve().parent / "cases.toml"


class CorpusError(ValueError):
    """An edit that no longer fits the solution (e.g. ``replace`` text not found): update cases.toml."""


def load_cases(path: Path = CASES_FILE) -> list[dict]:
    """The corpus, each case's ``fail`` patterns (``topic/check``, ``topic/*``, ``*``) made a list of checks."""
    from checks.child.specs import SPECS

    names = [f"{spec.topic}/{check}" for check, spec in SPECS.items()]
    cases = tomllib.loads(path.read_text(encoding="utf-8"))["case"]
    for case in cases:
        case["fail"] = [name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in case["fail"])]
    return cases


def _after_future(text: str, code: str) -> str:
    lines = text.splitlines(keepends=True)
    last = max((i for i, line in enumerate(lines) if line.startswith("from __future__")), default=-1)
    return "".join(lines[:last + 1]) + code.rstrip("\n") + "\n" + "".join(lines[last + 1:])


def apply_edit(text: str, edit: dict) -> str | None:
    """The file's new text after one edit (None: the file is removed)."""
    topic = edit["file"]
    if edit.get("delete"):
        return None
    if edit.get("stub"):
        return stub_source(text, f"helpers/{topic}.py")
    if "replace" in edit:
        count = text.count(edit["replace"])
        if count != 1:
            raise CorpusError(f"helpers/{topic}.py: {edit['replace']!r} occurs {count} times (expected once)")
        return text.replace(edit["replace"], edit["with"])
    if "prepend" in edit:
        return _after_future(text, edit["prepend"])
    if "append" in edit:
        return text.rstrip("\n") + "\n\n" + edit["append"].rstrip("\n") + "\n"
    if "wrap" in edit:
        func = edit["wrap"]
        if not re.search(rf"^def {re.escape(func)}\(", text, re.MULTILINE):
            raise CorpusError(f"helpers/{topic}.py has no top-level function {func}")
        wrapper = (f"\n\nimport functools as _corpus_functools\n_corpus_original_{func} = {func}\n\n\n"
                   f"@_corpus_functools.wraps(_corpus_original_{func})\n"
                   f"def {func}(*args, **kwargs):\n    original = _corpus_original_{func}\n"
                   + textwrap.indent(textwrap.dedent(edit["code"]).strip("\n"), "    ") + "\n")
        return text.rstrip("\n") + "\n" + wrapper
    raise CorpusError(f"unknown edit {edit}")


def topics_touched(case: dict, all_topics) -> list[str]:
    """The topics whose grading this case can change (every topic for a whole-kit edit)."""
    touched = {e["file"] for e in case.get("edit", [])}
    touched |= {e["topic"] for e in case.get("extra", []) if "topic" in e}
    if not touched or "*" in touched:
        return list(all_topics)
    return [t for t in all_topics if t in touched]


def build(case: dict, kit_root: Path, dest_dir: Path, topics) -> Path:
    """Write the case's submission under ``dest_dir`` (a folder, or a zip when ``zip = true``)."""
    folder = dest_dir / case["name"]
    (folder / "helpers").mkdir(parents=True)
    sources = {t: (kit_root / "helpers" / f"{t}.py").read_text(encoding="utf-8") for t in topics}
    for edit in case.get("edit", []):
        if edit.get("stub") and edit["file"] == "*":
            sources = {t: stub_source(s, f"helpers/{t}.py") for t, s in sources.items()}
            continue
        sources[edit["file"]] = apply_edit(sources[edit["file"]], edit)
    for topic, text in sources.items():
        if text is not None:
            (folder / "helpers" / f"{topic}.py").write_text(text, encoding="utf-8")
    for extra in case.get("extra", []):
        target = folder / extra["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(extra["text"], encoding="utf-8")
    if not case.get("zip"):
        return folder
    archive = dest_dir / f"{case['name']}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, Path(case["name"]) / "convlens" / path.relative_to(folder))
    shutil.rmtree(folder)
    return archive
