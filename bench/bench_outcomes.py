"""How far correct loops and wrong loops land from the reference run, outcome by outcome: the evidence for
the tolerances in checks/child/outcomes.py.

For each check judged by outcomes (``spec.measure``), every case (public and hidden) runs the solution, every
stored correct variant and every stored mistake (both in the exercises' records, tools/exercises/). Printed: each
outcome's largest gap over the correct variants (their spread), its smallest gap over the mistakes that
pass every other outcome of that case, and the tolerance in force. A tolerance should sit well above the
first and below the second; a mistake that no outcome catches in a case is listed (it must fail in another).

    python bench/bench_outcomes.py
"""
from __future__ import annotations

import warnings

import _common  # noqa: F401  (the kit's root on sys.path)
import torch

from checks.child import outcomes, specs
from checks.judge import references
from checks.child.compute import compute_case
from tools import exercises
from tools.build_references import HIDDEN_DIR, mutated_module


def gaps(spec, module, case) -> dict | None:
    torch.manual_seed(0)
    result = compute_case(spec, module, references.without_answers(case), torch.device("cpu"))
    if not result.ok:
        return None
    mine, reference = spec.measure(case["inputs"], result.outputs), spec.measure(case["inputs"], case["output"])
    return {o.name: outcomes.gap(o, mine, reference) for o in spec.outcomes}


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(_common.machine_line())
    variants = exercises.variants()
    mistakes = exercises.mistakes()
    for name, spec in specs.SPECS.items():
        if spec.measure is None:
            continue
        cases = references.public_cases(name, spec.topic) + references.public_cases(name, spec.topic, HIDDEN_DIR)
        correct = [mutated_module(spec.topic, v["edit"], v["name"], name) for v in variants if v["check"] == name]
        wrong = [(m["cause"], mutated_module(spec.topic, m["edit"], name, name)) for m in mistakes if m["check"] == name]
        spread = {o.name: 0.0 for o in spec.outcomes}
        caught = {o.name: float("inf") for o in spec.outcomes}
        missed = []
        for case in cases:
            for module in correct:
                for outcome, gap in (gaps(spec, module, case) or {}).items():
                    spread[outcome] = max(spread[outcome], gap)
            for cause, module in wrong:
                found = gaps(spec, module, case)
                if found is None:
                    continue  # failed before its outcomes (an exception, a side effect)
                failing = [o for o in spec.outcomes if found[o.name] > o.tol]
                if len(failing) == 1:  # the one outcome that tells this mistake apart in this case
                    caught[failing[0].name] = min(caught[failing[0].name], found[failing[0].name])
                if not failing:
                    missed.append((case["label"], cause))
        print(f"\n{name}: {len(cases)} cases, {len(correct)} correct variants, {len(wrong)} mistakes")
        print(f"  {'outcome':<18} {'spread (correct)':>17} {'tolerance':>10} {'smallest gap (wrong)':>21}")
        for o in spec.outcomes:
            print(f"  {o.name:<18} {spread[o.name]:>17.3g} {o.tol:>10.3g} {caught[o.name]:>21.3g}")
        print(f"  mistakes that pass one case (each fails another): {len(missed)}")
        for label, cause in missed[:40]:
            print(f"    {label}: {cause[:90]}")


if __name__ == "__main__":
    main()
