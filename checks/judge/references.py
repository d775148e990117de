"""Reading and writing the reference files: ``checks/references/<topic>.pt`` (public cases, shipped to
students) and the instructor's hidden cases (``grader/hidden/<topic>.pt``, never shipped).

A file holds ``{"meta": {...}, "cases": [case, ...]}``. A case is a dict::

    check      the exercise it belongs to
    label      what distinguishes it, put before a FAIL line (e.g. "objective='loss'"); may be ""
    model      the network it runs on (see checks/child/specs.py)
    args       positional arguments: "@model", "@<name of an input>", or literal values
    kwargs     keyword arguments, the same way
    arg_names  the names of the tensor arguments, for messages about inputs changed in place
    inputs     the tensors (and small networks' weights) the arguments refer to
    output     {part: tensor}: the reference solution's outputs
    mistakes   [{"cause": text, "output": {part: tensor}}]: outputs of known mistakes, for the hints
    mutants    [{"words": text, "sketch": {part: tensor}}]: sketches (checks/judge/sketch.py) of the outputs of
               mistakes generated from the solution (tools/mutants.py), for the hints no stored mistake gives
    terms      [{"label": text, "output": tensor}]: for a sum over parallel lists, the reference's value of
               each element alone (checks/judge/relations.py names the elements a wrong sum left out)

Only ``inputs`` and the call reach the student's code; ``output``, ``mistakes``, ``mutants`` and ``terms`` stay with the
judge.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

REFERENCES_DIR = Path(__file__).resolve().parents[1] / "references"
ANSWER_KEYS = ("output", "mistakes", "mutants", "terms")


def library_versions() -> dict[str, str]:
    import captum
    import numpy
    import torchvision

    # Plain str: torch.__version__ is a TorchVersion object, which weights_only loading refuses.
    return {"python": platform.python_version(), "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "captum": str(captum.__version__),
            "numpy": str(numpy.__version__)}


def save(path: Path, cases: list[dict], meta: dict) -> Path:
    """Write one topic's cases (tensors contiguous, on the CPU)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": {**meta, "versions": library_versions()}, "cases": [_to_cpu(c) for c in cases]}, path)
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
def _load(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"reference file {path.name} is missing; rebuild it with: python3 kit.py references")
    return torch.load(path, map_location="cpu", weights_only=True)


def load(path: Path) -> dict:
    """A reference file's ``{"meta", "cases"}`` (read once per process, CPU tensors)."""
    return _load(Path(path))


def public_cases(check: str, topic: str, directory: Path = REFERENCES_DIR) -> list[dict]:
    """The shipped cases of one check, in file order."""
    return [c for c in load(Path(directory) / f"{topic}.pt")["cases"] if c["check"] == check]


def without_answers(case: dict) -> dict:
    """What the student's side may see of a case: everything but the outputs."""
    return {k: v for k, v in case.items() if k not in ANSWER_KEYS}
