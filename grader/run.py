"""Grade one submission's files in one sandboxed child: the same ``run_check`` loop as ``kit.py check``, with
the grader's sandbox, its CPU-time limits and what the report needs (times, printed output, statuses)."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from checks.child.core import CaseResult, Kind, Verdict, printable
from checks.judge import run_check
from checks.process.session import IMPORT_HINT, OUTPUT_CAP, Budget, ChildChecks, ChildError, Session
from checks.child.specs import SPECS
from grader import sandbox
from grader.points import Points, Question
from grader.results import CheckResult
from grader.scan import scan
from grader.workspace import build_child_folder

REFERENCE_CPU_LIMIT = 600.0  # seconds per check for the reference solution itself


class GraderError(RuntimeError):
    """The grading itself cannot go on (a broken kit or sandbox); never caused by a submission."""


@dataclass
class Plan:
    """What every submission of a run is graded on."""

    points: Points
    questions: list[Question]
    topics: dict[str, list[str]]  # topic -> checks, in grading order
    cases: dict[str, list[dict]]  # check -> its cases, with their answers
    mechanism: sandbox.Mechanism
    limits: sandbox.Limits
    kit_root: Path
    work: Path  # a private temporary folder


class SubmissionRun:
    """Grade one set of helpers files in one sandboxed child (restarted after a crash or a timeout)."""

    def __init__(self, plan: Plan, files: dict, folder: Path, cpu_limits):
        """``files``: topic -> the helpers file to grade (or None); ``folder``: an empty private folder;
        ``cpu_limits(check, wait=True)``: (CPU seconds allowed, the reference's CPU seconds or None); with
        ``wait=False`` None while the reference is still being measured."""
        self.plan, self.files, self.cpu_limits = plan, files, cpu_limits
        lib = build_child_folder(folder / "child", plan.kit_root, files)
        scratch = folder / "scratch"
        scratch.mkdir()
        env = {"CONVLENS_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg", "LANG": "C.UTF-8",
               "MPLCONFIGDIR": str(scratch), "XDG_CACHE_HOME": str(scratch), "TORCH_HOME": str(scratch)}

        def launch(argv, fds):
            return sandbox.spawn(argv, scratch=scratch, readable=[lib], limits=plan.limits, env=env,
                                 mechanism=plan.mechanism, pass_fds=fds, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)

        # -I: no user site, no PYTHON* variables, no script folder on the path (the worker adds the folder)
        command = [sys.executable, "-I", "-B", "-X", "utf8", str(lib / "checks" / "child" / "worker.py")]
        self.child = ChildChecks(lambda: Session(launch, command, ["--device", "cpu", "--threads", "1",
                                                                   "--watch", "imported"]))

    def run(self) -> dict[str, CheckResult]:
        results: dict[str, CheckResult] = {}
        try:
            for topic, checks in self.plan.topics.items():
                self._topic(topic, checks, results)
        except ChildError as err:
            raise GraderError(str(err)) from None
        finally:
            self.child.close()
        return results

    def _topic(self, topic: str, checks: list[str], results: dict) -> None:
        path = self.files.get(topic)
        if path is None:
            for c in checks:
                results[c] = self._result(c, Verdict(c, False, f"helpers/{topic}.py is missing from the submission",
                                                     Kind.MISSING))
            return
        source = Path(path).read_text(encoding="utf-8-sig", errors="replace")
        findings = scan(source, f"helpers/{topic}.py", {c: (SPECS[c].forbidden, tuple(SPECS[c].stand_ins))
                                                        for c in checks})
        limit = self.plan.points.cpu_floor  # importing the kit's modules and torch's costs well under 1 s
        failure = None
        for check in checks:
            if check in findings:
                results[check] = self._result(check, Verdict(check, False, findings[check].reason, Kind.FORBIDDEN))
                continue
            if topic not in self.child.imported and failure is None:
                failure = self.child.import_topic(topic, Budget(limit, IMPORT_HINT).start(self.child))
            if failure is not None:
                results[check] = self._result(check, Verdict(check, False, failure.problem, failure.kind))
                continue
            results[check] = self._check(check)

    def _check(self, check: str) -> CheckResult:
        spec = SPECS[check]
        points = self.plan.points

        def limit() -> float:
            # Until the reference solution's times are known, the first checks run under its own generous
            # limit; the real one applies as soon as it is known, and again once the check is done.
            known = self.cpu_limits(check, wait=False)
            return known[0] if known else REFERENCE_CPU_LIMIT

        def explain() -> str:
            reference = self.cpu_limits(check)[1]
            return (f"{points.cpu_scale:g} x the reference solution's {reference or 0:.2g} s, at least "
                    f"{points.cpu_floor:g} s; an endless loop, or far too much work?")

        budget = Budget(limit, explain).start(self.child)
        remote = self.child.compute(spec, budget)
        requests = [0]

        def compute(case):
            requests[0] += 1
            result = remote(case)
            if result.ok and budget.spent():  # over a limit that became known only after the case had started
                result = CaseResult.failure(Kind.TIMEOUT, budget.timeout("cpu"))
            return result

        verdict = run_check(spec, self.plan.cases[check], compute)
        limit_seconds, reference = self.cpu_limits(check)
        if verdict.passed and budget.spent():
            verdict = Verdict(check, False, budget.timeout("cpu"), Kind.TIMEOUT)
        cpu, wall = budget.used()
        return self._result(check, verdict, round(cpu, 2), round(wall, 2),
                            None if reference is None else round(reference, 2), round(limit_seconds, 2), requests[0])

    def _result(self, check: str, verdict: Verdict, cpu: float = 0.0, wall: float = 0.0, reference=None,
                limit=None, cases_run: int = 0) -> CheckResult:
        output, dropped = self.child.take_output()
        kept, more = _capped(printable(output))
        return CheckResult(SPECS[check].topic, verdict, cpu, wall, reference, limit, cases_run,
                           len(self.plan.cases[check]), kept, dropped + more)


def _capped(text: str) -> tuple[str, int]:
    return text[:OUTPUT_CAP], max(len(text) - OUTPUT_CAP, 0)
