"""How the checks name mistakes they have never seen: ``python bench/bench_naming.py [--set NAME]``.

Runs every mistake of tools/unstored_mistakes.toml (edits of the reference solution that are not stored in
the reference files, so no FAIL line can recognise them) through its check on the public cases, and prints
one line each: PASS (a real bug the checks miss, or an edit that is not one), "named" with the cause or
relation the line gives, "says what" with the finding of a line that names the problem without a cause (a
dtype, an input changed in place, NaN, an exception, a recorded loss that does not add up), "outcome" for a
loop's line that says only which measured outcome is off, or "numbers only". An edit found to be correct
(its ``correct`` field says why) must pass, and is counted apart. Then the counts per set. Whether a named cause is the right one is for a reader to judge:
the line prints the words beside what the mistake does.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tomllib
from collections import Counter

from _common import ROOT


def _says_what(detail: str) -> bool:
    """A loop's outcome line that states the problem itself (a total that is not the sum of its parts), not
    only which measure is off and by how much."""
    return "is not" in detail or "modified" in detail


def main() -> None:
    from checks import check
    from checks.child import specs
    from tools.build_references import mutated_module

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
        if "correct" in mistake:  # written as a mistake, found to be a correct solution (the reason is kept)
            outcome, said = ("correct" if verdict.passed else "FALSE FAIL"), mistake["correct"]
        elif verdict.passed:
            outcome = "PASS"
        elif said:
            outcome = "named"
        elif verdict.finding.startswith("outcome") and not _says_what(verdict.detail):
            outcome, said = "outcome", verdict.finding
        elif verdict.finding not in ("wrong values", "") or verdict.kind is not None:
            outcome, said = "says what", verdict.finding or verdict.kind.words
        else:
            outcome = "numbers only"
        counts.setdefault(mistake["set"], Counter())[outcome] += 1
        print(f"{mistake['check']:<25} {mistake['what']:<34} {outcome:<13} {said}")
    for name, counter in counts.items():
        total = sum(n for outcome, n in counter.items() if outcome not in ("correct", "FALSE FAIL"))
        print(f"{name}: {counter['named']} of {total} named, {counter['says what']} say what without a cause, "
              f"{counter['outcome']} outcome only, {counter['numbers only']} numbers only, {counter['PASS']} pass"
              + (f"; {counter['correct']} correct solutions pass" if counter["correct"] else "")
              + (f", {counter['FALSE FAIL']} FAIL" if counter["FALSE FAIL"] else ""))


if __name__ == "__main__":
    main()
