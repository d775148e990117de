"""How general the generated mistakes are: the share of the kit's hand-written mistakes (tools/mistakes.toml)
that the generated mutants alone reproduce, measured on the stored files.

A hand-written mistake counts as reproduced when, on some case where it fails, a mutant's outputs lie within
the check's ``variant_tol`` of the mistake's (the distance the FAIL line uses to name a mutant). Printed per
check and in all, with the number of mutants stored. Loops judged by outcomes have no mutants (their stored
mistakes name their causes).

    python bench/bench_mutants.py
"""
from __future__ import annotations

from collections import defaultdict

import _common  # noqa: F401  (the kit's root on sys.path)

from checks import references, sketch, specs
from tools.references import HIDDEN_DIR


def main() -> None:
    reproduced, total, stored = defaultdict(set), defaultdict(set), defaultdict(int)
    for topic in specs.TOPICS:
        cases = (references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"]
                 + references.load(HIDDEN_DIR / f"{topic}.pt")["cases"])
        for case in cases:
            spec = specs.SPECS[case["check"]]
            if spec.measure is not None:
                continue
            stored[spec.name] += len(case.get("mutants", []))
            for variant in case["variants"]:
                if not all(part in variant["output"] for part in spec.outputs):
                    continue  # a case where only what the call left behind is compared
                total[spec.name].add(variant["cause"])
                mine = {part: sketch.sketch(variant["output"][part]) for part in spec.outputs}
                for mutant in case.get("mutants", []):
                    if max(sketch.distance(mine[p], s) for p, s in mutant["sketch"].items()) <= spec.variant_tol:
                        reproduced[spec.name].add(variant["cause"])
                        break
    for name in total:
        print(f"{name}: {len(reproduced[name])} of {len(total[name])} hand-written mistakes reproduced by a mutant "
              f"({stored[name]} mutant sketches stored over its cases)")
    n, k = sum(len(t) for t in total.values()), sum(len(r) for r in reproduced.values())
    print(f"in all: {k} of {n} hand-written mistakes ({k / max(n, 1):.0%}) reproduced by the generated mutants alone")


if __name__ == "__main__":
    main()
