"""The committed reference files are what the reference solutions produce today (public and hidden cases,
reference outputs and stored mistakes). Each topic's solution is also checked against an independent
implementation in its own test file (Captum, formulas written out, finite differences)."""
import os
import random

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


# The rebuild draws a share of each check's public and hidden cases (at least one of each) afresh on every run,
# and prints its seed: CONVLENS_REBUILD_SHARE=1 rebuilds every case, CONVLENS_REBUILD_SEED=N draws again as a run
# did. Every case's outputs and stored mistakes are also run by the fast tier (the solution passes it, each stored
# mistake is named), and a fast test compares the mutants each file was built with against today's.
SHARE = float(os.environ.get("CONVLENS_REBUILD_SHARE", "0.2"))
DRAW = int(os.environ.get("CONVLENS_REBUILD_SEED", random.SystemRandom().randrange(10**6)))


def drawn(cases: list[dict], share: float, seed: int) -> dict[str, list[int]]:
    """{check: positions in ``cases`` of its drawn cases}: ``share`` of its public cases and of its hidden ones,
    at least one of each, drawn by ``seed``."""
    generator = random.Random(seed)
    chosen: dict[str, list[int]] = {}
    for name in specs.SPECS:
        for hidden in (False, True):
            places = [i for i, c in enumerate(cases) if c["check"] == name and bool(c.get("hidden")) == hidden]
            count = min(len(places), max(1, round(share * len(places))))
            chosen.setdefault(name, []).extend(sorted(generator.sample(places, count)))
    return {name: sorted(places) for name, places in chosen.items()}


@pytest.fixture(scope="module")
def rebuilt() -> dict:
    """{topic: (drawn public cases, their committed twins, drawn hidden cases, their committed twins)}: one
    build per check, as many at a time as there are cores; each build runs on one thread, so that the files are
    the same on any machine."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tools import exercises

    cases = exercises.cases()
    chosen = drawn(cases, SHARE, DRAW)
    print(f"rebuilding {sum(map(len, chosen.values()))} of {len(cases)} cases "
          f"(CONVLENS_REBUILD_SHARE={SHARE}, CONVLENS_REBUILD_SEED={DRAW})")
    workers = max(1, min(len(chosen), os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(build, specs.SPECS[name].topic, None, places) for name, places in chosen.items()}
        built = {name: future.result() for name, future in futures.items()}
    found = {}
    for topic in specs.TOPICS:
        mine = [i for i, c in enumerate(cases) if specs.SPECS[c["check"]].topic == topic]
        committed = {False: references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"],
                     True: references.load(HIDDEN_DIR / f"{topic}.pt")["cases"]}
        fresh = {False: [], True: []}
        twins = {False: [], True: []}
        for name in [n for n, spec in specs.SPECS.items() if spec.topic == topic]:
            public, hidden = built[name]
            fresh[False] += public
            fresh[True] += hidden
            for i in chosen[name]:  # the k-th public (hidden) case of the topic is the file's k-th case
                hidden_case = bool(cases[i].get("hidden"))
                k = [j for j in mine if bool(cases[j].get("hidden")) == hidden_case].index(i)
                twins[hidden_case].append(committed[hidden_case][k])
        found[topic] = (fresh[False], twins[False], fresh[True], twins[True])
    return found


@pytest.mark.parametrize("topic", list(specs.TOPICS))
def test_rebuilt_references_match_the_committed_ones(rebuilt, topic):
    if OUTSIDE:
        print(f"{OUTSIDE}, versions {pin_differences()}: comparing within the checks' own tolerances")
    public, saved_public, hidden, saved_hidden = rebuilt[topic]
    where = f"(CONVLENS_REBUILD_SEED={DRAW})"
    _same(public, saved_public, f"{topic} public {where}")
    _same(hidden, saved_hidden, f"{topic} hidden {where}")


def test_the_draw_takes_a_share_of_each_checks_public_and_hidden_cases():
    from tools import exercises

    cases = exercises.cases()
    chosen = drawn(cases, 0.3, 1)
    assert chosen == drawn(cases, 0.3, 1) and chosen != drawn(cases, 0.3, 2)
    for name, places in chosen.items():
        assert {bool(cases[i].get("hidden")) for i in places} == {False, True}, name
        assert all(cases[i]["check"] == name for i in places), name
    assert sum(map(len, drawn(cases, 1.0, 1).values())) == len(cases)
