"""How general the generated mistakes are: the share of the kit's hand-written mistakes (the exercises'
records, tools/exercises/) that the generated mutants alone reproduce, measured on the stored files.

A hand-written mistake counts as reproduced when, on some case where it fails, a mutant lies near enough to
its outputs for a FAIL line to name that mutant (the judge's own rule: within the check's ``mistake_tol``, a
step compared by its change). Printed per
check and in all, with the number of mutants stored. Loops judged by outcomes have no mutants (their stored
mistakes name their causes). Then the pairs of mutants with different words that no case separates: a FAIL
line cannot tell them apart, and a case that separates them would, unless the contract makes them equivalent
(``EQUIVALENT`` says why). (How mistakes never stored are named:
bench/bench_naming.py.)

    python bench/bench_mutants.py
"""
from __future__ import annotations

from collections import defaultdict

import _common  # noqa: F401  (the kit's root on sys.path)

from checks.judge import _mutant_cause, references, relations, sketch
from checks.child import specs
from tools.build_references import HIDDEN_DIR


# Pairs no case can separate, and why: within the contract they compute the same thing.
EQUIVALENT = [
    (("`layer` ignored", "`layer` not passed on"), "both call grad_cam with its default layer"),
    (("log-probabilities", "probabilities (a softmax)"), "the gradient of log p is that of p divided by p, a "
     "factor per image that the step's normalization removes"),
    (("a subtraction where the reference adds", "the two sides of a difference swapped"), "both reverse the step"),
    (("a value that is not squared", "an absolute value where the reference squares"), "images lie in [0, 1], "
     "where |x| = x"),
    (("the gradient times the input image", "the result multiplied by the input image"), "integrated gradients "
     "is (image - baseline) times a sum of gradients: the image multiplies the sum or each of its terms alike"),
    (("1.0 used where the reference uses the argument `stdev`", "a factor of a product left out"), "the only "
     "product with stdev is stdev times the noise: 1.0 in its place and no factor are the same"),
]


def why_equivalent(a: str, b: str) -> str:
    for (one, other), why in EQUIVALENT:
        if (one in a and other in b) or (one in b and other in a):
            return why
    return ""


def coinciding(cases_by_check: dict) -> dict[str, set]:
    """{check: {(words, other words)}}: generated mutants with different words that no case separates (their
    sketches agree to round-off on every case where both differ from the reference). A FAIL line cannot
    tell such mutants apart; a case that separates them can."""
    found: dict[str, set] = {}
    for name, cases in cases_by_check.items():
        together: dict[tuple, bool] = {}
        for case in cases:
            mutants = case.get("mutants", [])
            for i, a in enumerate(mutants):
                for b in mutants[i + 1:]:
                    if a["words"] == b["words"]:
                        continue
                    key = tuple(sorted((a["words"], b["words"])))
                    same = max(sketch.distance(a["sketch"][p], b["sketch"][p]) for p in a["sketch"]) <= relations.FIT
                    together[key] = together.get(key, True) and same
        found[name] = {key for key, same in together.items() if same}
    return found


def main() -> None:
    reproduced, total, stored = defaultdict(set), defaultdict(set), defaultdict(int)
    by_check = defaultdict(list)
    for topic in specs.TOPICS:
        cases = (references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"]
                 + references.load(HIDDEN_DIR / f"{topic}.pt")["cases"])
        for case in cases:
            spec = specs.SPECS[case["check"]]
            if spec.measure is not None:
                continue
            stored[spec.name] += len(case.get("mutants", []))
            by_check[spec.name].append(case)
            for mistake in case["mistakes"]:
                if not all(part in mistake["output"] for part in spec.outputs):
                    continue  # a case where only what the call left behind is compared
                total[spec.name].add(mistake["cause"])
                if _mutant_cause(spec, case, mistake["output"])[0]:  # the FAIL line's own rule
                    reproduced[spec.name].add(mistake["cause"])
    for name in total:
        print(f"{name}: {len(reproduced[name])} of {len(total[name])} hand-written mistakes reproduced by a mutant "
              f"({stored[name]} mutant sketches stored over its cases)")
    n, k = sum(len(t) for t in total.values()), sum(len(r) for r in reproduced.values())
    print(f"in all: {k} of {n} hand-written mistakes ({k / max(n, 1):.0%}) reproduced by the generated mutants alone")
    for name, pairs in coinciding(by_check).items():
        for a, b in sorted(pairs):
            why = why_equivalent(a, b)
            print(f"{name}: no case separates \"{a}\" from \"{b}\"" + (f" (equivalent: {why})" if why else ""))


if __name__ == "__main__":
    main()
