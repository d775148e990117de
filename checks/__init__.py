"""The checks: ``check("saliency_map")`` runs one exercise's check on your helpers/ and prints one line.

How a check works: checks/specs.py says what it runs, checks/compute.py runs your function on the stored
cases (checks/references/<topic>.pt), checks/judge.py compares the outputs with the stored reference
outputs. From the command line: ``python3 kit.py check [topic|function ...]``.
"""
from __future__ import annotations

import importlib

from checks.core import Verdict

__all__ = ["check", "Verdict"]


def check(name: str, module=None, quiet: bool = False) -> Verdict:
    """Run one exercise's check on the public cases and print its line (unless ``quiet``).

    ``module``: where the function comes from (default: ``helpers.<topic>``, as the notebooks use it).
    """
    from checks import references, specs
    from checks.compute import compute_case
    from checks.judge import judge_check

    if name not in specs.SPECS:
        raise KeyError(f"no check {name!r}; known: {', '.join(specs.SPECS)}")
    spec = specs.SPECS[name]
    module = module or importlib.import_module(f"helpers.{spec.topic}")
    cases = references.public_cases(name, spec.topic)
    results = []
    for case in cases:
        result = compute_case(spec, module, references.without_answers(case))
        results.append(result)
        if result.get("problem"):
            break
    verdict = judge_check(spec, cases[:len(results)], results)
    if not quiet:
        print(verdict.line, flush=True)
    return verdict
