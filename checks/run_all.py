"""Run every check on the current helpers/ and print one line each: ``python kit.py check [topic ...]``.

Exit code 0 when all pass, 1 otherwise. Each topic module lists its checks in ``CHECKS``
(name -> function that takes no arguments and returns a Verdict, printing its line).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from checks.topics import TOPICS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", default=list(TOPICS))
    args = parser.parse_args(argv)
    verdicts = []
    for topic in args.topics:
        module = importlib.import_module(f"checks.{topic}")
        for check in module.CHECKS.values():
            verdicts.append(check())
    passed = sum(v.passed for v in verdicts)
    print(f"{passed} passed, {len(verdicts) - passed} failed")
    return 0 if passed == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
