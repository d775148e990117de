#!/usr/bin/env python3
"""convlens command line. Needs Python 3.11 or newer (it says so if the interpreter is older); it builds its
own environment in .venv/.

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
# The oldest Python the pinned packages install on (numpy, scipy, matplotlib, pillow and scikit-learn at
# their pins need 3.11, and the grader reads TOML with the standard library's tomllib).
OLDEST_PYTHON = (3, 11)
LAB_SETTINGS = ".lab-settings"  # under notebooks/: JupyterLab's overrides.json for `kit.py lab`
# Markers of the tests that only `kit.py test --all` runs (pytest.ini says what each is).
FULL_TIER_ONLY = ("slow", "browser", "corpus", "rebuild")


class SetupError(RuntimeError):
    """The environment cannot be built or used; the message is one line that says what to do."""


def _python_version(python) -> tuple[int, int]:
    if Path(python).resolve() == Path(sys.executable).resolve():
        return sys.version_info[:2]
    out = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SetupError(f"cannot run {python}: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _require_version(python, what: str) -> None:
    found = _python_version(python)
    if found < OLDEST_PYTHON:
        need = ".".join(map(str, OLDEST_PYTHON))
        raise SetupError(f"{what} is Python {found[0]}.{found[1]}; the kit needs Python {need} or newer. Install "
                         f"Python {need} or newer (python.org, your package manager, or conda) and run kit.py "
                         f"with it: python{need} kit.py ...")


def kit_env() -> dict:
    """The environment every process of the kit runs in: this one, with the kit's root importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup() -> Path:
    """Create .venv/ and install requirements.txt into it, unless it is already up to date."""
    if os.environ.get("CONVLENS_PYTHON"):
        python = Path(os.environ["CONVLENS_PYTHON"])
        _require_version(python, f"CONVLENS_PYTHON ({python})")
        return python
    _require_version(sys.executable, f"this interpreter ({sys.executable})")
    python = _venv_python()
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return python
    if not python.exists():
        print(f"creating {VENV.name}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing requirements.txt (a few minutes the first time) ...", flush=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           "-r", str(REQUIREMENTS)])
    if done.returncode != 0:
        raise SetupError(f"pip could not install requirements.txt into {VENV.name}/ (its messages are above); "
                         "check the network or free disk space (about 6 GB), then run the command again")
    STAMP.write_text(digest)
    return python


def _in(python: Path, *args: str, cwd: Path | None = None) -> int:
    """Run ``python args`` with the kit importable; return its exit code. Paths the user gives stay
    relative to where they ran kit.py (``cwd=None``); the test suite runs from the kit's root."""
    return subprocess.call([str(python), *args], cwd=cwd, env=kit_env())


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
    # JupyterLab's own settings mechanism, in a folder the kit owns: its overrides.json turns off the news
    # pop-up and the update check for this JupyterLab only (the student's own JupyterLab is untouched).
    args += [f"--LabApp.app_settings_dir={ROOT / 'notebooks' / LAB_SETTINGS}",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    ip = _option(args, "--ip", "--ServerApp.ip")
    host = "localhost" if ip in (None, "", "0.0.0.0", "::") else ip
    print(f"kit.py lab: open http://{host}:{port}/lab" + (f"?token={token}" if token else "")
          + "  (Ctrl-C twice stops JupyterLab)", flush=True)
    # An absolute interpreter path: Jupyter runs in notebooks/, where a relative $CONVLENS_PYTHON would miss.
    # abspath, not resolve(): a virtual environment's python is a symlink that must stay one.
    process = subprocess.Popen([os.path.abspath(python), "-m", "jupyter", "lab", *args], cwd=ROOT / "notebooks",
                               env=kit_env())
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:  # Jupyter has the Ctrl-C too and shuts its kernels down: wait for it
            continue


def _workers(python: Path, args: list[str]) -> list[str]:
    """pytest-xdist's options for one worker per core when there are several and the user chose no worker
    count. The fast tier is one test after another otherwise: on 2 cores its CPU time equals its wall time,
    and one core idles. Work stealing: a worker that runs out takes tests from the other (on 2 cores 4.2 min,
    where one test file per worker took 4.6: a file's module fixture may then be built on both)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    chosen = any(a in ("-n", "--numprocesses", "no:xdist") or a.startswith(("-n", "--numprocesses=")) for a in args)
    if cores < 2 or chosen or subprocess.call([str(python), "-c", "import xdist"], stderr=subprocess.DEVNULL):
        return []
    return ["-n", str(cores), "--dist", "worksteal"]


def _test(python: Path, args: list[str]) -> int:
    """pytest on the fast tier (its tests spread over the cores), or with ``--all`` on everything: the fast
    tier so, then the browser, whole notebooks, the attack and sandbox corpora and the reference rebuild, spread
    over the cores too (on 2 cores 41 min, where one after another took 48.5: many of them wait on processes
    of their own)."""
    fast = ["-m", " and ".join(f"not {m}" for m in FULL_TIER_ONLY)]
    if any(a == "-m" or a.startswith("-m") for a in args):  # the user chose the tests
        return _in(python, "-m", "pytest", *[a for a in args if a != "--all"], cwd=ROOT)
    if "--all" not in args:
        return _in(python, "-m", "pytest", *fast, *_workers(python, args), *args, cwd=ROOT)
    args = [a for a in args if a != "--all"]
    first = _in(python, "-m", "pytest", *fast, *_workers(python, args), *args, cwd=ROOT)
    rest = _in(python, "-m", "pytest", "-m", " or ".join(FULL_TIER_ONLY), *_workers(python, args), *args, cwd=ROOT)
    failed = [code for code in (first, rest) if code not in (0, 5)]  # 5: a -k that selected nothing in one run
    return failed[0] if failed else min(first, rest)


# name: (the file or folder it needs, what it does, how it runs)
COMMANDS = {
    "lab": ("notebooks", "open the notebooks in JupyterLab (prints the address to open)",
            lambda py, rest: _lab(py, list(rest))),
    "check": ("checks/process/cli.py", "run the checks on your helpers/ (one line each): check [topic|function ...]",
              lambda py, rest: _in(py, "-m", "checks.process.cli", *rest)),
    "run": ("tools/run_notebooks.py", "execute the four notebooks with the solutions -> out/",
            lambda py, rest: _in(py, "-m", "tools.run_notebooks", *rest)),
    "test": ("tests", "run the fast tests (about 4 minutes on 2 cores); test --all runs every test (under an hour)",
             lambda py, rest: _test(py, list(rest))),
    "release": ("tools/release.py", "build the student kit -> build/student/",
                lambda py, rest: _in(py, "-m", "tools.release", *rest)),
    "references": ("tools/build_references.py",
                   "rebuild the reference files from the solutions and the exercises' records (tools/exercises/)",
                   lambda py, rest: _in(py, "-m", "tools.build_references", *rest)),
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
    try:
        python = setup()
    except SetupError as err:
        print(f"kit.py {argv[0]}: {err}", file=sys.stderr)
        return 1
    return command(python, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
