"""Rebuild the reference tensors from the reference solutions: ``python kit.py references [topic ...]``.

Always on CPU, float32, one thread, fixed seeds and deterministic algorithms, so the files are reproducible
on any number of cores (a sum split over threads rounds differently, and the loss saliency of a confident
image cancels down to that rounding). The test suite rebuilds them in memory and compares with the committed
ones. Run it only in the solution tree (the student build's helpers are stubs).
"""
from __future__ import annotations

import argparse
import importlib
import sys

import torch

from checks import references
from checks.topics import TOPICS
from helpers.model import load_model

SEED = 0


def build(topic: str, model: torch.nn.Module) -> tuple[dict, dict]:
    """(cases, meta) for one topic, built deterministically on CPU."""
    module = importlib.import_module(f"checks.{topic}")
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cases = module.build_references(model)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    meta = {"topic": topic, "seed": SEED, "device": "cpu", "dtype": "float32", "threads": 1,
            "inputs": getattr(module, "REFERENCE_INPUTS", ""), "model": "efficientnet_lite0"}
    return cases, meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", default=list(TOPICS), help=f"default: all of {list(TOPICS)}")
    args = parser.parse_args(argv)
    unknown = [t for t in args.topics if t not in TOPICS]
    if unknown:
        parser.error(f"unknown topic(s) {unknown}; known: {list(TOPICS)}")
    model = load_model("cpu")
    for topic in args.topics:
        cases, meta = build(topic, model)
        path = references.save(topic, cases, meta)
        print(f"{path.name}: {len(cases)} case(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
