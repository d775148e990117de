"""Reading and writing the saved reference tensors (checks/references/<topic>.pt).

One file per notebook topic: ``{"meta": {...}, "cases": {case_name: {"inputs": {...}, "output": tensor}}}``.
``meta`` records how the file was made (seed, device, dtype, library versions, input description) so a
reference can be traced and rebuilt with ``python kit.py references``.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

REFERENCES_DIR = Path(__file__).resolve().parent / "references"


def library_versions() -> dict[str, str]:
    import captum
    import numpy
    import torchvision

    # Plain str: torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "captum": str(captum.__version__),
            "numpy": str(numpy.__version__)}


def save(topic: str, cases: dict, meta: dict, directory: Path = REFERENCES_DIR) -> Path:
    """Write one topic's cases. Tensors are stored contiguous, on CPU."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{topic}.pt"
    cpu_cases = {name: _to_cpu(case) for name, case in cases.items()}
    torch.save({"meta": {**meta, "versions": library_versions()}, "cases": cpu_cases}, path)
    return path


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


@functools.lru_cache(maxsize=None)
def _load_cpu(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path.name} is missing; rebuild it with: python kit.py references")
    return torch.load(path, map_location="cpu", weights_only=True)


def load(topic: str, directory: Path = REFERENCES_DIR) -> dict:
    """The saved ``{"meta", "cases"}`` of one topic (read once per process, CPU tensors)."""
    return _load_cpu(Path(directory) / f"{topic}.pt")


def case(topic: str, name: str, device=None, directory: Path = REFERENCES_DIR) -> dict:
    """One case's ``{"inputs": {...}, "output": ...}``, tensors moved to ``device`` (default: CPU)."""
    data = load(topic, directory)["cases"]
    if name not in data:
        raise KeyError(f"no case {name!r} in {topic}.pt; rebuild with: python kit.py references")
    return _to(data[name], device or "cpu")


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value
