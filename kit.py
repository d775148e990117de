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


def _option(args: list[str], *names: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in ``args`` for any of ``names``, else None."""
    for i, arg in enumerate(args):
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
            if arg == name and i + 1 < len(args):
                return args[i + 1]
    return None


def _lab(python: Path, args: list[str]) -> int:
    """``jupyter lab`` in notebooks/, printing one line with the address (and token) to open: Jupyter's own
    line is lost among its log lines. The port and token are chosen here unless given."""
    import secrets
    import socket

    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
        print("kit.py lab: running as root (as in a container or a cloud notebook), so passing --allow-root; "
              "Jupyter refuses to start as root without it", flush=True)
        args.append("--allow-root")
    port = _option(args, "--port", "--ServerApp.port")
    if port is None:
        port = 8888  # Jupyter's default, else the next free one
        while port < 8988:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) != 0:
                    break
            port += 1
        args.append(f"--port={port}")
    token = _option(args, "--IdentityProvider.token", "--ServerApp.token", "--NotebookApp.token")
    if token is None:
        token = secrets.token_hex(24)
        args.append(f"--IdentityProvider.token={token}")
    ip = _option(args, "--ip", "--ServerApp.ip")
    host = "localhost" if ip in (None, "", "0.0.0.0", "::") else ip
    print(f"kit.py lab: open http://{host}:{port}/lab" + (f"?token={token}" if token else "")
          + "  (Ctrl-C twice stops JupyterLab)", flush=True)
    # An absolute interpreter path: Jupyter runs in notebooks/, where a relative $CONVLENS_PYTHON would miss.
    # abspath, not resolve(): a virtual environment's python is a symlink that must stay one.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([os.path.abspath(python), "-m", "jupyter", "lab", *args], cwd=ROOT / "notebooks",
                               env=env)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # Jupyter has the Ctrl-C too and shuts its kernels down: wait for it
            continue


# name: (the file or folder it needs, what it does, how it runs)
COMMANDS = {
    "lab": ("notebooks", "open the notebooks in JupyterLab (prints the address to open)",
            lambda py, rest: _lab(py, list(rest))),
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
