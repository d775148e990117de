"""The reference solution's CPU time per check, measured once per process in the same kind of sandbox as the
submissions: each check's time limit is a multiple of it."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

from grader.run import REFERENCE_CPU_LIMIT, GraderError, Plan, SubmissionRun

HIDDEN_DIR = "grader/hidden"  # under the kit's root, as tools/build_references.py writes them


# (kit, mechanism, public cases too, topic, what the topic's files hold, check) -> CPU seconds: measured
# once per process (a run of the command), per topic, so a later run of the same process on some of the
# same topics reuses it.
_REFERENCE_TIMES: dict[tuple, float] = {}
_REFERENCE_LOCK = threading.Lock()


def _topic_key(plan: Plan, topic: str) -> tuple:
    digest = hashlib.sha256((plan.kit_root / "helpers" / f"{topic}.py").read_bytes())
    folders = [plan.kit_root / HIDDEN_DIR]
    if plan.points.public_cases:
        folders.append(plan.kit_root / "checks" / "references")
    for folder in folders:
        digest.update(str((folder / f"{topic}.pt").stat().st_mtime_ns).encode())
    return (str(plan.kit_root), plan.mechanism.name, plan.points.public_cases, topic, digest.hexdigest())


def measure_reference(plan: Plan) -> dict[str, float]:
    """CPU seconds the reference solution (the kit's helpers/) uses on each graded check, in the same kind
    of sandbox as the submissions. Raises GraderError if it fails one of its own cases."""
    keys = {topic: _topic_key(plan, topic) for topic in plan.topics}
    with _REFERENCE_LOCK:
        missing = {t: checks for t, checks in plan.topics.items()
                   if any(keys[t] + (c,) not in _REFERENCE_TIMES for c in checks)}
    if missing:
        files = {t: plan.kit_root / "helpers" / f"{t}.py" for t in missing}
        folder = Path(tempfile.mkdtemp(prefix="reference-", dir=plan.work))
        os.chmod(folder, 0o711)
        try:
            results = SubmissionRun(dataclasses.replace(plan, topics=missing), files, folder,
                                    lambda check, wait=True: (REFERENCE_CPU_LIMIT, None)).run()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        failed = [r.line for r in results.values() if not r.passed]
        if failed:
            raise GraderError(f"the reference solution (helpers/) fails its own case: {failed[0]}; rebuild the "
                              "references with: python3 kit.py references")
        with _REFERENCE_LOCK:
            for check, r in results.items():
                _REFERENCE_TIMES[keys[r.topic] + (check,)] = r.cpu_seconds
    with _REFERENCE_LOCK:
        return {c: _REFERENCE_TIMES[keys[t] + (c,)] for t, checks in plan.topics.items() for c in checks}
