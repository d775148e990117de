"""How the checks name mistakes they have never seen: ``python bench/bench_naming.py [--set NAME]``.

Runs every mistake of tools/unstored_mistakes.toml (edits of the reference solution that are not stored in
the reference files, so no FAIL line can recognise them) through its check on the public cases, and prints
one line each: PASS (a real bug the checks miss), "named" with the cause or relation the line gives, or
"numbers only". Then the counts per set. Whether a named cause is the right one is for a reader to judge:
the line prints the words beside what the mistake does.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tomllib
from collections import Counter

from _common import ROOT


def main() -> None:
    from checks import check
    from checks.child import specs
    from tools.references import mutated_module

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", help="only the mistakes of this set")
    args = parser.parse_args()
    with open(ROOT / "tools" / "unstored_mistakes.toml", "rb") as f:
        mistakes = [m for m in tomllib.load(f)["mistake"] if args.set in (None, m["set"])]
    counts: dict[str, Counter] = {}
    for mistake in mistakes:
        spec = specs.SPECS[mistake["check"]]
        module = mutated_module(spec.topic, mistake["edit"], f"{spec.name} unstored", spec.name)
        with contextlib.redirect_stdout(io.StringIO()):  # what the code prints is not the verdict
            verdict = check(spec.name, module=module, quiet=True)
        said = verdict.cause or verdict.relation
        outcome = "PASS" if verdict.passed else "named" if said else "numbers only"
        counts.setdefault(mistake["set"], Counter())[outcome] += 1
        print(f"{mistake['check']:<25} {mistake['what']:<34} {outcome:<13} {said}")
    for name, counter in counts.items():
        total = sum(counter.values())
        print(f"{name}: {counter['named']} of {total} named, {counter['numbers only']} numbers only, "
              f"{counter['PASS']} pass")


if __name__ == "__main__":
    main()
