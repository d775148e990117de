"""Run one topic's checks on one submission in a worker process, with time limits, output capture and
write detection: :func:`grade_topic`.

One worker per (submission, topic): it pays for importing torch and loading the model once, then runs the
topic's checks one after another. A check that overruns its time limit or kills the process costs only
that check: the worker is killed and a fresh one picks up the remaining checks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from grader import workspace
from grader.process import Limits, Worker, WorkerDied

__all__ = ["CheckResult", "Limits", "grade_topic"]


@dataclass
class CheckResult:
    """One graded check. ``status``: pass, fail, not_implemented, exception, timeout, crashed, missing,
    import_error, kit_write, tampered, model_changed or grader_error."""

    topic: str
    check: str
    passed: bool
    status: str
    line: str
    seconds: float = 0.0
    output: str = ""
    output_dropped: int = 0


def grade_topic(kit_root: Path, topic: str, checks: list[str], student_files: dict, work_dir: Path,
                limits: Limits) -> tuple[list[CheckResult], list[str]]:
    """Grade ``checks`` of one topic. ``student_files``: topic -> path of the student's file, or None.

    Returns the results and the names in the topic's ``CHECKS`` (empty if the module never loaded). Never
    raises for anything the submission does; a broken instructor kit gives ``grader_error`` verdicts.
    """
    if student_files.get(topic) is None:
        return [CheckResult(topic, c, False, "missing",
                            f"FAIL {c}: helpers/{topic}.py is missing from the submission") for c in checks], []
    ws = workspace.Workspace(kit_root, work_dir, student_files)
    results: list[CheckResult] = []
    known: list[str] = []
    worker = None
    try:
        for name in checks:
            if worker is None:
                worker, failure = _start_and_import(ws, topic, limits, known)
                if failure is not None:
                    status, detail = failure
                    results += [CheckResult(topic, c, False, status, f"FAIL {c}: {detail}")
                                for c in checks[len(results):]]
                    break
            result, worker_ok = _run_one(worker, topic, name, limits)
            changes = ws.changes()
            if changes:
                result.passed, result.status = False, "kit_write"
                result.line = (f"FAIL {name}: the code wrote into the grader's files ({changes}); "
                               "write only inside the current folder")
                worker_ok = False
            if not worker_ok:
                worker.kill()
                worker = None
                ws.restore()
            results.append(result)
    finally:
        if worker is not None:
            worker.close()
        ws.remove()
    return results, known


def _start_and_import(ws, topic: str, limits: Limits, known: list):
    """(worker, None) ready to run checks, or (None, (status, detail)) when the student's module cannot load.
    Fills ``known`` with the topic's check names when the checks module loads."""
    try:
        worker = Worker(ws.kit, ws.scratch, topic, limits)
    except RuntimeError as err:
        return None, ("grader_error", f"grader error: {err}")
    try:
        reply, _, _ = worker.request({"import": True}, limits.timeout)
    except WorkerDied as err:
        return None, ("crashed", f"the process importing helpers/{topic}.py died ({err.args[0]})")
    if reply is None:
        return None, ("timeout", f"importing helpers/{topic}.py did not finish within {limits.timeout:g} s "
                                 "(a loop or long computation at module level?)")
    known[:] = reply.get("checks") or known
    changes = ws.changes()
    problem = None
    if reply.get("error"):
        problem = ("import_error", f"helpers/{topic}.py cannot be imported: {reply['error']}")
    elif reply.get("tampered"):
        problem = ("tampered", f"importing helpers/{topic}.py replaced part of the checking code "
                               f"({reply['tampered']}); not graded")
    elif changes:
        problem = ("kit_write", f"importing helpers/{topic}.py wrote into the grader's files ({changes})")
    if problem:
        worker.kill()
        return None, problem
    return worker, None


def _run_one(worker: Worker, topic: str, name: str, limits: Limits) -> tuple[CheckResult, bool]:
    """Run one check; (result, whether the worker can be used again)."""
    start = time.perf_counter()
    try:
        reply, text, dropped = worker.request({"check": name}, limits.timeout)
    except WorkerDied as err:
        how, text, dropped = err.args
        return CheckResult(topic, name, False, "crashed",
                           f"FAIL {name}: the process running it died ({how}): os._exit, a crash, or memory "
                           "exhausted", time.perf_counter() - start, *_clean(text, dropped, "")), False
    if reply is None:
        return CheckResult(topic, name, False, "timeout",
                           f"FAIL {name}: did not finish within {limits.timeout:g} s (an infinite loop, or "
                           "far too many iterations?)", limits.timeout, *_clean(text, dropped, "")), False
    line = reply["line"]
    ok = reply["status"] not in ("tampered",)
    return CheckResult(topic, name, reply["passed"], reply["status"], line, reply["seconds"],
                       *_clean(text, dropped, line)), ok


def _clean(text: str, dropped: int, line: str) -> tuple[str, int]:
    """Printed output without the verdict line the check printed itself."""
    if line:
        text = text.replace(line + "\n", "", 1)
    return text, dropped
