"""Grade submissions: the parent judges, an unprivileged child computes, hidden cases decide.

For each submission one sandboxed child (checks/child/worker.py, talked to through checks/process/session.py)
imports the student's four files and runs each check's cases, receiving only the cases' inputs; it is restarted only
after a crash or a timeout. This process keeps the expected outputs and judges each returned result with
``checks.judge.run_check`` as it arrives, the same loop as ``kit.py check`` and the notebooks; the grader adds only
its sandbox, its time limits and the points.

Time limits are CPU seconds, so they do not depend on how busy the machine is: at the start of a run the
reference solution (the kit's own helpers/) is graded the same way, in the same kind of sandbox, and each
check may then use ``cpu_scale`` times the CPU time the reference used on it, at least ``cpu_floor``
seconds (both from points.toml).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from checks.judge import references
from checks.child.core import Kind, Verdict
from checks.child.specs import SPECS, TOPICS
from grader import sandbox
from grader import submission as submissions
from grader.points import DEFAULT_POINTS_FILE, load_points
from grader.reference_time import HIDDEN_DIR, measure_reference
from grader.results import CheckResult, Graded
from grader.run import GraderError, Plan, SubmissionRun

__all__ = ["grade", "GraderError", "CheckResult", "Graded", "KIT_ROOT", "MEMORY_BYTES", "available_cores"]

KIT_ROOT = Path(__file__).resolve().parents[1]
MEMORY_BYTES = 5 << 29  # 2.5 GiB per sandbox: the child needs about 0.8 GB
PROCESSES = 128


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_cases(kit_root: Path, checks: list[str], public: bool, term_seed: int | None = None) -> dict[str, list[dict]]:
    """check -> [public cases (if ``public``), then hidden cases], with their answers. ``term_seed``: the seed
    the hidden cases must have been drawn from (points.toml), None for those written in the exercises' records."""
    found: dict[str, list[dict]] = {c: [] for c in checks}
    for topic in dict.fromkeys(SPECS[c].topic for c in checks):
        folders = ([kit_root / "checks" / "references"] if public else []) + [kit_root / HIDDEN_DIR]
        for folder in folders:
            try:
                stored = references.load(folder / f"{topic}.pt")
            except FileNotFoundError:
                raise GraderError(f"{folder / (topic + '.pt')} is missing; build it with: python3 kit.py references")
            cases = stored["cases"]
            drawn = stored["meta"].get("term_seed")
            if folder.name == "hidden" and drawn != term_seed:
                raise GraderError(
                    f"{folder / (topic + '.pt')} holds hidden cases drawn from term seed {drawn}, but grading."
                    f"term_seed in points.toml is {term_seed}; draw them with: python3 kit.py references "
                    + (f"--term-seed {term_seed}" if term_seed is not None else "(with no term_seed set)"))
            for case in cases:
                if case.get("check") in found:
                    found[case["check"]].append(case)
    empty = [c for c, cases in found.items() if not cases]
    if empty:
        raise GraderError(f"no {'' if public else 'hidden '}cases for {', '.join(empty)}; add some to "
                          "tools/exercises/ and run: python3 kit.py references")
    return found


def _unique(name: str, taken: set) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def guard_of(kit_root: Path, protected=()) -> sandbox.Guard:
    """What no submission may read (the hidden cases, the solutions) or write into (the kit, the grades, the
    grader's home and working folder), whatever the sandbox."""
    secret = [kit_root / HIDDEN_DIR, *sorted((kit_root / HIDDEN_DIR).glob("*")),
              *sorted((kit_root / "helpers").glob("*.py"))]
    folders = [kit_root, kit_root / "grader", kit_root / "checks", Path.home(), Path.cwd(), *map(Path, protected)]
    writable = []
    for folder in folders:  # a folder not made yet: its nearest existing parent
        folder = Path(folder).resolve()
        while not folder.exists():
            folder = folder.parent
        if folder not in writable:
            writable.append(folder)
    return sandbox.Guard(tuple(secret), tuple(writable))


def grade(paths: list[Path], kit_root: Path = KIT_ROOT, points_file: Path = DEFAULT_POINTS_FILE,
          jobs: int | None = None, only_topics=None, isolation: str = "auto", memory: int = MEMORY_BYTES,
          cpu_scale: float | None = None, cpu_floor: float | None = None, public_cases: bool | None = None,
          expand: bool = True, on_done=None, log=print, protected=()) -> list[Graded]:
    """Grade each submission (a folder, a zip, or a folder of them) against the kit at ``kit_root``.

    Args:
        jobs: submissions graded at once (default: the number of usable cores), each in its own child.
        only_topics: grade only these topics (default: every topic in points.toml).
        isolation: "auto" (the strongest sandbox here that keeps a submission from the kit's secrets, the
            grades and Captum; sandbox.SandboxUnavailable when there is none) or "none" (no sandbox, for
            trusted code only: every report says so).
        protected: folders a submission must not write into besides the kit (the grades' folder).
        memory: memory limit of each sandbox, bytes.
        cpu_scale, cpu_floor, public_cases: override points.toml's [grading] settings.
        expand: a folder that holds no helpers/ of its own is a folder of submissions (else each path is
            one submission, its helpers/ found however deep: Gradescope's submission folder).
        on_done: called with each Graded as soon as it is complete (for printing).
    Raises PointsError (points.toml), SandboxUnavailable, GraderError (the kit or the sandbox is broken).
    """
    settings = {"cpu_scale": cpu_scale, "cpu_floor": cpu_floor, "public_cases": public_cases}
    work = Path(tempfile.mkdtemp(prefix="convlens-grade-"))
    os.chmod(work, 0o711)  # the sandbox user must reach its own folder inside (only bubblewrap hides the rest)
    try:
        plan = _plan(Path(kit_root).resolve(), points_file, settings, only_topics, isolation, memory, protected,
                     work, log)
        found = submissions.expand([Path(p) for p in paths], list(TOPICS)) if expand else [Path(p) for p in paths]
        subs, names = [], set()
        for path in found:
            # Random names inside a folder others may cross but not list: without bubblewrap's private
            # view of the files, a child must not be able to guess where a classmate's files are.
            sub = submissions.load(path, list(TOPICS), Path(tempfile.mkdtemp(prefix="unzip-", dir=work)))
            sub.name = _unique(sub.name, names)
            subs.append(sub)
        reference = ReferenceTimes(plan)
        with ThreadPoolExecutor(max_workers=max(1, jobs or available_cores())) as pool:
            pool.submit(reference.measure)
            futures = [pool.submit(_grade_one, plan, sub, reference.cpu_limits, on_done) for sub in subs]
            try:
                return [f.result() for f in futures]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _plan(kit_root: Path, points_file: Path, settings: dict, only_topics, isolation: str, memory: int,
          protected, work: Path, log) -> Plan:
    """What every submission of this run is graded by: the points, the checks, their cases, the sandbox."""
    points = dataclasses.replace(load_points(points_file), **{k: v for k, v in settings.items() if v is not None})
    questions = [q for q in points.questions if only_topics is None or q.topic in only_topics]
    unknown = sorted(set(only_topics or ()) - {s.topic for s in SPECS.values()})
    if unknown:
        raise GraderError(f"unknown topic(s) {', '.join(unknown)}")
    mechanism = sandbox.detect(isolation, guard=guard_of(kit_root, protected))
    log(f"isolation: {mechanism.name} -- {mechanism.description}")
    log("points: " + ", ".join(f"{q.name} {q.points:g}" for q in questions))
    if points.ungraded:
        log(f"not graded (0 points in {Path(points_file).name}): {', '.join(points.ungraded)}")
    topics: dict[str, list[str]] = {}
    for q in questions:
        topics.setdefault(q.topic, []).append(q.check)
    cases = load_cases(kit_root, [q.check for q in questions], points.public_cases, points.term_seed)
    limits = sandbox.Limits(cpu_seconds=3600, memory_bytes=memory, processes=PROCESSES, file_bytes=64 << 20)
    return Plan(points, questions, topics, cases, mechanism, limits, kit_root, work)


class ReferenceTimes:
    """The reference solution's CPU time per check, measured once at the start of a run, and the limits that
    follow from it."""

    def __init__(self, plan: Plan):
        self.plan, self.future = plan, Future()

    def measure(self) -> None:
        try:
            self.future.set_result(measure_reference(self.plan))
        except BaseException as err:
            self.future.set_exception(err)

    def cpu_limits(self, check: str, wait: bool = True) -> tuple[float, float] | None:
        """(CPU seconds allowed, the reference's); with ``wait=False`` None while it is still measured."""
        if not wait and not self.future.done():
            return None
        ref = self.future.result()[check]
        return max(self.plan.points.cpu_floor, self.plan.points.cpu_scale * ref), ref


def _grade_one(plan: Plan, sub, cpu_limits, on_done) -> Graded:
    """One submission, in its own child; an error of this submission alone becomes its report's cause."""
    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="sub-", dir=plan.work))
    os.chmod(folder, 0o711)
    files = {t: sub.files.get(t) for t in plan.topics}
    problems = list(sub.problems)
    try:
        results = SubmissionRun(plan, files, folder, cpu_limits).run()
        ordered = [results[q.check] for q in plan.questions]
    except GraderError:
        raise  # the kit or the sandbox is broken: every submission would fail the same way
    except Exception as err:  # noqa: BLE001 - one submission's failure must not stop the class
        cause = f"the grader could not grade this submission ({type(err).__name__}: {str(err)[:120]})"
        problems.append(cause)
        ordered = [CheckResult(q.topic, Verdict(q.check, False, cause, Kind.KIT_ERROR)) for q in plan.questions]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    graded = Graded(sub.name, str(sub.source), plan.questions, ordered, time.perf_counter() - start,
                    sub.notebooks, problems, plan.mechanism.name)
    if on_done is not None:
        on_done(graded)
    return graded
