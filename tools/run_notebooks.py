"""Execute notebooks top to bottom and save the executed copies and their figures:
``python kit.py run [NOTEBOOK ...] [--out out]``.

Writes out/<name>.ipynb (executed), out/figures/<name>-NN.png (every picture the notebook drew, in order)
and prints one line per notebook with its wall time. Exit code 1 if any notebook raised.

With ``--store-verdicts`` the source notebook is rewritten to hold only the outputs of its check cells
(cells starting with ``# NBVAL_CHECK_OUTPUT``): the expected verdicts that nbval compares.
"""
from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def store_verdicts(executed: nbformat.NotebookNode, source_path: Path) -> None:
    """Write the executed notebook back to ``source_path`` keeping only check-cell outputs."""
    nb = nbformat.from_dict(executed)
    nb.metadata.pop("widgets", None)  # progress bars' widget state: noise in the source, and stale in a browser
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code_cells, 1):
        # nbval refuses a cell that has outputs but no execution count ("unrun reference cell").
        cell.execution_count = count
        if cell.source.lstrip().startswith(CHECK_MARKER):
            cell.outputs = [o for o in cell.outputs if o.get("output_type") == "stream" and o.get("name") == "stdout"]
            for o in cell.outputs:
                o.pop("execution_count", None)
        else:
            cell.outputs = []
        cell.metadata.pop("execution", None)
    nbformat.write(nb, source_path)


def execute(path: Path, out_dir: Path, timeout: int = 600, store: bool = False) -> tuple[bool, float, int]:
    """Run one notebook with its folder as working directory. Returns (ok, seconds, figures saved)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ok = True
    # The kernel talks to us over a local socket file (IPC), not TCP: nothing to encrypt, nothing to warn about.
    # CONVLENS_BATCH: nobody watches, so progress bars print one final line and widgets leave a picture.
    with tempfile.TemporaryDirectory(prefix="convlens-kernel-") as sockets:
        manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(nb, km=manager, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
        batch = os.environ.get("CONVLENS_BATCH")
        os.environ["CONVLENS_BATCH"] = "1"
        try:
            client.execute()
        except CellExecutionError as err:
            ok = False
            print(f"{path.name}: {str(err).strip().splitlines()[-1]}", file=sys.stderr)
        finally:
            if batch is None:
                os.environ.pop("CONVLENS_BATCH")
            if manager.has_kernel:  # a manager we made is ours to shut down (nbclient only shuts down its own)
                manager.shutdown_kernel(now=False)
    seconds = time.perf_counter() - start
    if store and ok:
        store_verdicts(nb, path)
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    figures = out_dir / "figures"
    figures.mkdir(exist_ok=True)
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                count += 1
                (figures / f"{path.stem}-{count:02d}.png").write_bytes(base64.b64decode(png))
    return ok, seconds, count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--store-verdicts", action="store_true",
                        help="rewrite the source notebooks with only their check-cell outputs")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    failed = 0
    for path in paths:
        ok, seconds, count = execute(path.resolve(), args.out, args.timeout, args.store_verdicts)
        failed += not ok
        print(f"{'ok    ' if ok else 'FAILED'} {path.name}: {seconds:.1f} s, {count} figure(s) -> {args.out}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
