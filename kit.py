#!/usr/bin/env python3
"""convlens command line. Needs only Python 3.10+ to start; it builds its own environment in .venv/.

    python3 kit.py run          set up, then execute the four notebooks with the solutions -> out/
    python3 kit.py test         set up, then run the test suite
    python3 kit.py lab          open the notebooks in JupyterLab
    python3 kit.py check        run every check on the current helpers/ (one line each)
    python3 kit.py release      build the student kit -> build/student/
    python3 kit.py references   rebuild checks/references/*.pt from the reference solutions
    python3 kit.py grade SUB..  grade submissions (folders or .zip files); see README, "Instructors"
    python3 kit.py setup        only build or update .venv/

Set CONVLENS_PYTHON=/path/to/python to use an existing environment (a conda env, say) instead of .venv/.
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


COMMANDS = {
    "run": lambda py, rest: _in(py, str(ROOT / "tools" / "run_notebooks.py"), *rest),
    "test": lambda py, rest: _in(py, "-m", "pytest", *rest, cwd=ROOT),
    "lab": lambda py, rest: _in(py, "-m", "jupyter", "lab", *rest, cwd=ROOT / "notebooks"),
    "check": lambda py, rest: _in(py, "-m", "checks.run_all", *rest),
    "release": lambda py, rest: _in(py, str(ROOT / "tools" / "release.py"), *rest),
    "references": lambda py, rest: _in(py, "-m", "checks.make_references", *rest),
    "grade": lambda py, rest: _in(py, "-m", "grader", *rest),
    "setup": lambda py, rest: 0,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    python = setup()
    return COMMANDS[argv[0]](python, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
