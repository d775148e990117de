"""The committed reference files are what the reference solutions produce today (public and hidden cases,
reference outputs and stored mistakes). Each topic's solution is also checked against an independent
implementation in its own test file (Captum, formulas written out, finite differences)."""
import pytest
import torch

from checks.judge import references
from checks.child import specs
from checks.child.core import DEFAULT_TOL
from conftest import outside_pinned_environment, pin_differences
from tools.build_references import HIDDEN_DIR, build

pytestmark = pytest.mark.rebuild


def _tensors(value, prefix=""):
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _tensors(v, f"{prefix}[{i}]")


REBUILD_TOL = 1e-4  # inputs and reference outputs in the pinned environment: round-off only
# Elsewhere (other torch or numpy versions) kernels sum in another order: the rebuild then only has to agree
# within what the checks themselves allow, and says so once.
OUTSIDE = outside_pinned_environment() if pin_differences() else None


def _same(fresh: list, saved: list, where: str) -> None:
    assert [(c["check"], c["label"]) for c in fresh] == [(c["check"], c["label"]) for c in saved], where
    for new, old in zip(fresh, saved):
        name = f"{where} {new['check']} {new['label']!r}"
        # A stored mistake only has to be recognized within the check's mistake_tol; a mistaken L-BFGS run
        # from noise amplifies another CPU's round-off to ~2e-4, which a tenth of that tolerance allows.
        mistake_tol = specs.SPECS[new["check"]].mistake_tol / 10
        assert [v["cause"] for v in new["mistakes"]] == [v["cause"] for v in old["mistakes"]], name
        got, want = dict(_tensors(new)), dict(_tensors(old))
        assert got.keys() == want.keys(), name
        for key, tensor in got.items():
            ref = want[key]
            assert tensor.shape == ref.shape and tensor.dtype == ref.dtype, f"{name} {key}"
            if torch.is_floating_point(ref):
                scale = ref[torch.isfinite(ref)].abs().max().clamp_min(1e-12) if torch.isfinite(ref).any() else 1
                gap = torch.where(torch.isfinite(ref), tensor - ref, torch.zeros_like(ref)).abs().max()
                limit = mistake_tol if key.startswith("mistakes") else REBUILD_TOL
                if OUTSIDE and key.startswith("output."):
                    limit = specs.SPECS[new["check"]].tol.get(key.split(".")[1], DEFAULT_TOL)
                elif OUTSIDE and not key.startswith("mistakes"):
                    limit = DEFAULT_TOL
                assert (gap / scale).item() < limit, f"{name} {key}: {(gap / scale).item():.2g}"
                assert torch.equal(torch.isfinite(tensor), torch.isfinite(ref)), f"{name} {key}"
            else:
                assert torch.equal(tensor, ref), f"{name} {key}"


@pytest.fixture(scope="module")
def rebuilt() -> dict:
    """Every topic rebuilt, as many at a time as there are cores (at most one per topic): each build runs on
    one thread, so that the files are the same on any machine."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, min(len(specs.TOPICS), os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {topic: pool.submit(build, topic) for topic in specs.TOPICS}
        return {topic: future.result() for topic, future in futures.items()}


@pytest.mark.parametrize("topic", list(specs.TOPICS))
def test_rebuilt_references_match_the_committed_ones(rebuilt, topic):
    if OUTSIDE:
        print(f"{OUTSIDE}, versions {pin_differences()}: comparing within the checks' own tolerances")
    public, hidden = rebuilt[topic]
    _same(public, references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"], f"{topic} public")
    _same(hidden, references.load(HIDDEN_DIR / f"{topic}.pt")["cases"], f"{topic} hidden")

