"""The committed reference tensors are what the reference solutions produce today, and every check passes
on the reference solutions."""
import importlib

import pytest
import torch

from checks import references
from checks.make_references import build
from checks.topics import TOPICS


def _tensors(value, prefix=""):
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{prefix}[{i}]")


@pytest.mark.parametrize("topic", list(TOPICS))
def test_regenerated_references_match_the_committed_ones(topic, model):
    fresh, meta = build(topic, model)
    saved = references.load(topic)
    assert saved["meta"]["seed"] == meta["seed"] and saved["meta"]["device"] == "cpu"
    assert set(fresh) == set(saved["cases"])
    for name in fresh:
        got, want = dict(_tensors(fresh[name])), dict(_tensors(saved["cases"][name]))
        assert got.keys() == want.keys(), name
        for key, tensor in got.items():
            ref = want[key]
            assert tensor.shape == ref.shape and tensor.dtype == ref.dtype, f"{name}.{key}"
            if torch.is_floating_point(ref):
                scale = ref.abs().max().clamp_min(1e-12)
                assert ((tensor.cpu() - ref).abs().max() / scale).item() < 1e-4, f"{name}.{key}"
            else:
                assert torch.equal(tensor.cpu(), ref), f"{name}.{key}"


@pytest.mark.parametrize("topic", list(TOPICS))
def test_every_check_passes_on_the_reference_solution(topic, capsys):
    module = importlib.import_module(f"checks.{topic}")
    verdicts = [check() for check in module.CHECKS.values()]
    printed = capsys.readouterr().out.strip().splitlines()
    assert [v.line for v in verdicts] == printed
    assert all(v.passed for v in verdicts), printed
