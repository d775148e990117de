"""``python3 kit.py check [topic|function ...]``: run the checks on your helpers/ and print one line each.

Each topic runs in its own process with a time limit, so a syntax error, a crash or an endless loop in one
file costs only that file's checks: every other check still runs, and the summary line always prints.
Exit code 0 when every check passed, 1 otherwise, 2 for an unknown name.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from checks.specs import SPECS, TOPICS, checks_of

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 120  # seconds per check; the slowest takes about 15 s on a 2-core laptop
VERDICT = re.compile(r"^(PASS|FAIL) (\w+): ")


def usage() -> str:
    lines = ["usage: python3 kit.py check [TOPIC|FUNCTION ...] [--timeout SECONDS_PER_CHECK]", "",
             "Without names, every check runs. Topics and their functions:"]
    lines += [f"    {topic:<16}{', '.join(checks_of(topic))}" for topic in TOPICS]
    return "\n".join(lines)


def selection(names: list[str]) -> dict[str, list[str]]:
    """{topic: [check, ...]} for the given topic and function names (all when empty)."""
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


def run_topic(topic: str, checks: list[str], timeout: float) -> list[tuple[str, bool]]:
    """Run one topic's checks in a child process and pass its output through; (check, passed) per check.
    A check that takes longer than ``timeout`` seconds, or kills its process, fails with one line, and a
    fresh process runs the checks after it."""
    verdicts: dict[str, bool] = {}
    remaining = list(checks)
    while remaining:
        seen, why = _run_child(topic, remaining, timeout)
        verdicts.update(seen)
        remaining = [c for c in remaining if c not in verdicts]
        if remaining:  # the process stopped inside the first check without a verdict
            culprit = remaining.pop(0)
            verdicts[culprit] = False
            print(f"FAIL {culprit}: {why or 'gave no verdict'}", flush=True)
    return [(check, verdicts[check]) for check in checks]


def _run_child(topic: str, checks: list[str], timeout: float) -> tuple[dict[str, bool], str | None]:
    """({check: passed} for the verdicts printed, why the process stopped early or None)."""
    command = [sys.executable, "-m", "checks.cli", "--child", topic, *checks]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=ROOT, start_new_session=True, text=True, errors="replace")
    seen: dict[str, bool] = {}
    last = [time.monotonic()]

    def read() -> None:
        for line in child.stdout:
            match = VERDICT.match(line)
            if match and match[2] in checks and match[2] not in seen:
                seen[match[2]] = match[1] == "PASS"
                last[0] = time.monotonic()
            print(line, end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    why = None
    while child.poll() is None:  # the time limit counts from the last verdict: it is per check
        if time.monotonic() - last[0] > timeout:
            os.killpg(child.pid, signal.SIGKILL)  # the student's own machine: the process group is enough
            child.wait()
            why = f"did not finish within {timeout:.0f} s (an endless loop?)"
            break
        time.sleep(0.05)
    reader.join(timeout=5)
    if why is None and child.returncode != 0:
        why = f"the process died (exit code {child.returncode})"
    return seen, why


def child(topic: str, checks: list[str]) -> int:
    """In the topic's own process: import the student's file, then run each check."""
    import importlib

    from checks import check
    from checks.core import describe_exception
    from convlens.runtime import apply_threads

    apply_threads()
    try:
        module = importlib.import_module(f"helpers.{topic}")
    except BaseException as err:  # a syntax or import error, or sys.exit() at import time
        why = (f"called sys.exit({err.code!r})" if isinstance(err, SystemExit) else describe_exception(err))
        for name in checks:
            print(f"FAIL {name}: helpers/{topic}.py cannot be imported: {why}", flush=True)
        return 0
    for name in checks:
        try:
            check(name, module=module)
        except BaseException as err:  # sys.exit() or KeyboardInterrupt raised from the student's code
            print(f"FAIL {name}: raised {type(err).__name__} ({err!s:.80}); return a value instead", flush=True)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[2:])
    parser = argparse.ArgumentParser(usage=usage(), add_help=False)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("-h", "--help", action="store_true")
    args = parser.parse_args(argv)
    if args.help:
        print(usage())
        return 0
    try:
        chosen = selection(args.names)
    except KeyError as err:
        print(f"kit.py check: unknown topic or function {err.args[0]!r}\n\n{usage()}")
        return 2
    results = []
    for topic, checks in chosen.items():
        results += run_topic(topic, checks, args.timeout)
    passed = sum(ok for _, ok in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
