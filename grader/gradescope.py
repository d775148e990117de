"""``python3 kit.py gradescope [--out build/gradescope.zip]``: the Gradescope autograder bundle.

Gradescope unpacks the zip into /autograder/source, runs ``setup.sh`` there once (as root, with network),
then for each submission (put in /autograder/submission) runs ``run_autograder``, which must write
/autograder/results/results.json. The bundle holds the kit the grader needs: kit.py, requirements.txt,
convlens/, checks/ (with the public references), helpers/ (the reference solutions: time limits are
measured on them) and grader/ (with the hidden cases and points.toml); no tests, notebooks or tools.

How the references stay out of the submission's reach there: the grader runs as root, so it always
sandboxes the submission (no sandbox that keeps it from the kit, no grading, and results.json says why);
setup.sh installs bubblewrap, whose sandbox shows the submission nothing of /autograder but the Python
environment (built outside the source folder for that reason). Where the container refuses namespaces,
the grader falls back to running the child as a dedicated user, and offers that only because the bundle
makes its guarantee hold there too: run_autograder makes the source folder readable by root alone, and
setup.sh leaves Captum out of the environment (the grader does not need it; the exercises may not use it).

On Gradescope choose the Ubuntu 24.04 base image (Python 3.12; the kit needs 3.11 or later) and give the
autograder at least 2 CPUs and 3 GB of memory (the grader and its child each hold PyTorch).
``AUTOGRADER_ROOT`` (default /autograder) and ``CONVLENS_PYTHON`` (default its env/bin/python) let a test
run the bundle elsewhere, and ``CONVLENS_ISOLATION`` (default auto) force one mechanism, as a container
without bubblewrap or without namespaces would leave it.
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("kit.py", "requirements.txt", "convlens", "checks", "helpers", "grader")
SKIP = {"__pycache__", ".ipynb_checkpoints"}

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder: bubblewrap for the grader's sandbox,
# then a Python environment outside the source folder (the sandboxed submission may read the environment,
# never the source folder, which holds the hidden cases).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
apt-get update
apt-get install -y --no-install-recommends bubblewrap python3 python3-venv python3-pip
PYTHON="$(command -v python3.13 || command -v python3.12 || command -v python3.11 || command -v python3)"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "the kit needs Python 3.11+: use Ubuntu 24.04"'
"$PYTHON" -m venv "$ROOT/env"
"$ROOT/env/bin/pip" install --disable-pip-version-check -q -r "$ROOT/source/requirements.txt"
# The grader needs no Captum, and a submission may not use it: without bubblewrap's view of the files
# (a container that refuses namespaces), only its absence hides it.
"$ROOT/env/bin/pip" uninstall --disable-pip-version-check -y -q captum
chmod -R go-rwx "$ROOT/source"
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this as root for each submission: grade /autograder/submission in the grader's sandbox
# (refusing to grade without one that keeps it from the kit) and write /autograder/results/results.json.
set -uo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${CONVLENS_PYTHON:-$ROOT/env/bin/python}"
chmod -R go-rwx "$ROOT/source"  # root alone reads the kit and its hidden cases, whatever the sandbox
mkdir -p "$ROOT/results"
cd "$ROOT/source"
exec "$PYTHON" -m grader "$ROOT/submission" --isolation "${CONVLENS_ISOLATION:-auto}" --out "$ROOT/results/grades" \\
    --gradescope "$ROOT/results/results.json"
"""


def _files(kit_root: Path):
    for part in PARTS:
        path = kit_root / part
        if path.is_file():
            yield path
        else:
            for p in sorted(path.rglob("*")):
                if p.is_file() and not SKIP & set(p.relative_to(kit_root).parts) and p.suffix != ".pyc":
                    yield p


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = (0o755 if executable else 0o644) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def build(out: Path, kit_root: Path = ROOT) -> Path:
    """Write the autograder zip: setup.sh and run_autograder at its top, the kit beside them."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as zf:
        _add(zf, "setup.sh", SETUP.encode(), executable=True)
        _add(zf, "run_autograder", RUN.encode(), executable=True)
        for path in _files(kit_root):
            _add(zf, path.relative_to(kit_root).as_posix(), path.read_bytes(), executable=path.name == "kit.py")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 kit.py gradescope", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gradescope.zip")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(f"Gradescope autograder -> {path} ({path.stat().st_size >> 20} MB); upload it as the autograder "
          "(Ubuntu 24.04 base image, at least 2 CPUs and 3 GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
