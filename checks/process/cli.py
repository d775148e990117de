"""``python3 kit.py check [topic|function ...]``: run the checks on your helpers/ and print one line each.

Each topic's functions run in a child process of their own (checks/child/worker.py, through
checks/process/session.py's :class:`~checks.process.session.ChildChecks`, as in the grader), and this process judges
what comes back. A syntax error, a crash or an endless loop in one file costs only that file's checks: every other
check still runs, and the summary line always prints. Exit code 0 when every check passed, 1 otherwise, 2 for an
unknown name.

The first child is started before this process imports torch, so the two imports overlap: a single check
costs about one interpreter start, one torch import and its own cases (``bench/bench_check.py``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from checks.process.session import IMPORT_HINT, LocalProcess, Session

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = 120  # CPU seconds per check; the slowest takes about 15 s on a 2-core laptop
CHECK_HINT = "an endless loop, or a step budget ignored?"


def usage() -> str:
    from checks.child.specs import TOPICS, checks_of

    lines = ["usage: python3 kit.py check [TOPIC|FUNCTION ...] [--timeout CPU_SECONDS_PER_CHECK]", "",
             "Without names, every check runs. A topic (one notebook, one file helpers/TOPIC.py) runs all of",
             "its functions' checks; a function runs its own. Topics and their functions:"]
    lines += [f"    {topic:<12}{', '.join(checks_of(topic))}" for topic in TOPICS]
    return "\n".join(lines)


def selection(names: list[str]) -> dict[str, list[str]]:
    """{topic: [check, ...]} for the given topic and function names (all when empty)."""
    from checks.child.specs import SPECS, TOPICS, checks_of

    chosen: dict[str, list[str]] = {}
    for name in names or list(TOPICS):
        if name in TOPICS:
            checks = checks_of(name)
        elif name in SPECS:
            checks = [name]
        else:
            raise KeyError(name)
        topic = SPECS[checks[0]].topic
        chosen.setdefault(topic, [])
        chosen[topic] += [c for c in checks if c not in chosen[topic]]
    return chosen


def start_child() -> Session:
    """Start a worker (checks/child/worker.py) without waiting for it; its first reply says it is ready. It picks
    its device and thread count by the kit's rules (convlens/runtime.py)."""
    return Session(lambda argv, fds: LocalProcess(argv, fds, cwd=ROOT), [sys.executable, "-m", "checks.child.worker"],
                   ["--watch", "all"])


def run_topic(topic: str, checks: list[str], timeout: float, started: Session | None = None) -> list[bool]:
    """Run one topic's checks in a child process, printing what the code printed and one line per check.
    ``started``: a child already started for it (else one is started here)."""
    from checks.judge import references
    from checks.child.core import Kind, Verdict, printable
    from checks.judge import run_check
    from checks.process.session import Budget, ChildChecks, ChildError
    from checks.child.specs import SPECS

    waiting = [started] if started is not None else []
    child = ChildChecks(lambda: waiting.pop() if waiting else start_child())

    def show(verdict: Verdict) -> bool:
        text, dropped = child.take_output()
        text = printable(text)
        if text.strip():
            print(text.rstrip("\n"), flush=True)
        if dropped:
            print(f"... ({dropped} more characters of output not shown)", flush=True)
        print(verdict.line, flush=True)
        return verdict.passed

    passed = []
    try:
        try:
            failure = child.import_topic(topic, Budget(timeout, IMPORT_HINT).start(child))
        except ChildError as err:
            return [show(Verdict(name, False, f"the kit could not run this check: {err}", Kind.KIT_ERROR))
                    for name in checks]
        for name in checks:
            if failure is not None:
                verdict = Verdict(name, False, failure.problem, failure.kind, finding=failure.finding)
            else:
                try:
                    verdict = run_check(SPECS[name], references.public_cases(name, topic),
                                        child.compute(SPECS[name], Budget(timeout, CHECK_HINT).start(child)))
                except ChildError as err:
                    verdict = Verdict(name, False, f"the kit could not run this check: {err}", Kind.KIT_ERROR)
            passed.append(show(verdict))
    finally:
        child.close()
    return passed


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="kit.py check", add_help=False)  # usage() imports torch: only on -h
    parser.add_argument("names", nargs="*")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("-h", "--help", action="store_true")
    args = parser.parse_args(argv)
    if args.help:
        print(usage())
        return 0
    started = start_child()  # it imports torch while this process does
    try:
        chosen = selection(args.names)
    except KeyError as err:
        started.close()
        print(f"kit.py check: unknown topic or function {err.args[0]!r}\n\n{usage()}")
        return 2
    results = []
    for topic, checks in chosen.items():
        results += run_topic(topic, checks, args.timeout, started)
        started = None
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
