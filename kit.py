#!/usr/bin/env python3
"""convlens command line. Needs only Python 3.10+ to start; it builds its own environment in .venv/.

Run ``python3 kit.py`` for the commands this copy of the kit has (the student kit has fewer). Set
CONVLENS_PYTHON=/path/to/python to use an existing environment (a conda env, say) instead of .venv/.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements.sha256"


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup() -> Path:
    """Create .venv/ and install requirements.txt into it, unless it is already up to date."""
    if os.environ.get("CONVLENS_PYTHON"):
        return Path(os.environ["CONVLENS_PYTHON"])
    python = _venv_python()
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return python
    if not python.exists():
        print(f"creating {VENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing requirements.txt (a few minutes the first time) ...", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(digest)
    return python


def _in(python: Path, *args: str, cwd: Path | None = None) -> int:
    """Run ``python args`` with the kit importable; return its exit code. Paths the user gives stay
    relative to where they ran kit.py (``cwd=None``); the test suite runs from the kit's root."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.call([str(python), *args], cwd=cwd, env=env)


# name: (the file or folder it needs, what it does, how it runs)
COMMANDS = {
    "lab": ("notebooks", "open the notebooks in JupyterLab",
            lambda py, rest: _in(py, "-m", "jupyter", "lab", *rest, cwd=ROOT / "notebooks")),
    "check": ("checks/cli.py", "run the checks on your helpers/ (one line each): check [topic|function ...]",
              lambda py, rest: _in(py, "-m", "checks.cli", *rest)),
    "run": ("tools/run_notebooks.py", "execute the four notebooks with the solutions -> out/",
            lambda py, rest: _in(py, str(ROOT / "tools" / "run_notebooks.py"), *rest)),
    "test": ("tests", "run the test suite",
             lambda py, rest: _in(py, "-m", "pytest", *rest, cwd=ROOT)),
    "release": ("tools/release.py", "build the student kit -> build/student/",
                lambda py, rest: _in(py, str(ROOT / "tools" / "release.py"), *rest)),
    "references": ("tools/references.py", "rebuild the reference files from the solutions (tools/cases.toml)",
                   lambda py, rest: _in(py, str(ROOT / "tools" / "references.py"), *rest)),
    "grade": ("grader", "grade submissions (folders or .zip files); see README, \"Instructors\"",
              lambda py, rest: _in(py, "-m", "grader", *rest)),
    "gradescope": ("grader/gradescope.py", "build the Gradescope autograder zip -> build/gradescope.zip",
                   lambda py, rest: _in(py, "-m", "grader.gradescope", *rest)),
    "setup": ("requirements.txt", "only build or update .venv/", lambda py, rest: 0),
}


def available() -> list[str]:
    """The commands whose files this copy of the kit has (the student kit lacks the instructor's)."""
    return [name for name, (needs, _, _) in COMMANDS.items() if (ROOT / needs).exists()]


def usage() -> str:
    lines = ["usage: python3 kit.py COMMAND [ARGS...]", ""]
    lines += [f"    {name:<12}{COMMANDS[name][1]}" for name in available()]
    lines += ["", "CONVLENS_PYTHON=/path/to/python uses that environment instead of building .venv/."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(usage())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    needs, _, command = COMMANDS[argv[0]]
    if argv[0] not in available():
        print(f"kit.py {argv[0]}: not part of this copy of the kit (it has no {needs}); "
              f"it has {', '.join(available())}")
        return 2
    return command(setup(), argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
