"""The checks: ``check("saliency_map")`` runs one exercise's check on your helpers/ and prints one line.

The path from a check's name to its line, in every place that runs checks: checks/child/specs.py holds the
exercise's :class:`~checks.child.specs.Spec`; the cases come from checks/references/<topic>.pt
(checks/judge/references.py; the grader adds grader/hidden/<topic>.pt); :func:`checks.judge.run_check` gives each
case, without its answers, to a ``compute`` function and judges each :class:`~checks.child.core.CaseResult` that
comes back (checks/judge/), stopping at the first failing case; the :class:`~checks.child.core.Verdict` prints as
one line. ``compute`` is :func:`checks.child.compute.compute_case` on the student's module: called directly here
(the notebooks), or in a child process (checks/child/worker.py) that a :class:`checks.process.session.ChildChecks`
talks to over length-prefixed messages, for ``kit.py check`` (checks/process/cli.py) and for the grader
(grader/grade.py, which adds a sandbox, CPU-time limits and points)."""
from __future__ import annotations

import importlib

__all__ = ["check", "CaseResult", "Kind", "Verdict"]


def __getattr__(name: str):
    # checks.child.core imports torch; importing the package must not, so that kit.py check starts its child first
    if name in ("CaseResult", "Kind", "Verdict"):
        from checks.child import core

        return getattr(core, name)
    raise AttributeError(f"module 'checks' has no attribute {name!r}")


def check(name: str, module=None, quiet: bool = False) -> "Verdict":
    """Run one exercise's check on the public cases and print its line (unless ``quiet``).

    ``module``: where the function comes from (default: ``helpers.<topic>``, as the notebooks use it).
    """
    from checks.judge import references
    from checks.child import specs
    from checks.child.compute import compute_case
    from checks.judge import run_check

    if name not in specs.SPECS:
        raise KeyError(f"no check {name!r}; known: {', '.join(specs.SPECS)}")
    spec = specs.SPECS[name]
    module = module or importlib.import_module(f"helpers.{spec.topic}")
    verdict = run_check(spec, references.public_cases(name, spec.topic),
                        lambda case: compute_case(spec, module, case))
    if not quiet:
        print(verdict.line, flush=True)
    return verdict
