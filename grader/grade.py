"""Grade submissions: the parent judges, an unprivileged child computes, hidden cases decide.

For each submission one sandboxed child (grader/child.py, started by grader/session.py) imports the
student's four files and runs each check's cases, receiving only the cases' inputs; it is restarted only
after a crash or a timeout. This process keeps the expected outputs and judges each returned result with
``checks.judge`` as it arrives (a check stops at its first failing case).

Time limits are CPU seconds, so they do not depend on how busy the machine is: at the start of a run the
reference solution (the kit's own helpers/) is graded the same way, in the same kind of sandbox, and each
check may then use ``cpu_scale`` times the CPU time the reference used on it, at least ``cpu_floor``
seconds (both from points.toml).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from checks import references
from checks.judge import judge_case, judge_check
from checks.specs import SPECS, TOPICS
from grader import sandbox
from grader import submission as submissions
from grader.points import DEFAULT_POINTS_FILE, Points, Question, load_points
from grader.scan import scan
from grader.session import OUTPUT_CAP, Reply, Session, validate_case_reply, validate_import_reply
from grader.workspace import build_child_folder

KIT_ROOT = Path(__file__).resolve().parents[1]
HIDDEN_DIR = "grader/hidden"  # under the kit's root, as tools/references.py writes them
REFERENCE_CPU_LIMIT = 600.0  # seconds per check for the reference solution itself
MEMORY_BYTES = 5 << 29  # 2.5 GiB per sandbox: the child needs about 0.8 GB
PROCESSES = 128


class GraderError(RuntimeError):
    """The grading itself cannot go on (a broken kit or sandbox); never caused by a submission."""


@dataclass
class CheckResult:
    """One graded check. ``status``: pass, fail, not_implemented, exception, side_effect, form, forbidden,
    missing, import_error, timeout, crashed, malformed or grader_error."""

    topic: str
    check: str
    passed: bool
    status: str
    line: str
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    reference_cpu_seconds: float | None = None
    cpu_limit_seconds: float | None = None
    cases_run: int = 0
    cases: int = 0
    output: str = ""
    output_dropped: int = 0


@dataclass
class Graded:
    """One submission's outcome: a result per question, in question order."""

    name: str
    source: str
    questions: list[Question]
    results: list[CheckResult]
    seconds: float = 0.0
    notebooks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    isolation: str = "none"

    @property
    def score(self) -> float:
        return sum(q.points for q, r in zip(self.questions, self.results) if r.passed)

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def cpu_seconds(self) -> float:
        return sum(r.cpu_seconds for r in self.results)


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


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_cases(kit_root: Path, checks: list[str], public: bool) -> dict[str, list[dict]]:
    """check -> [public cases (if ``public``), then hidden cases], with their answers."""
    found: dict[str, list[dict]] = {c: [] for c in checks}
    for topic in dict.fromkeys(SPECS[c].topic for c in checks):
        folders = ([kit_root / "checks" / "references"] if public else []) + [kit_root / HIDDEN_DIR]
        for folder in folders:
            try:
                cases = references.load(folder / f"{topic}.pt")["cases"]
            except FileNotFoundError:
                raise GraderError(f"{folder / (topic + '.pt')} is missing; build it with: python3 kit.py references")
            for case in cases:
                if case.get("check") in found:
                    found[case["check"]].append(case)
    empty = [c for c, cases in found.items() if not cases]
    if empty:
        raise GraderError(f"no {'' if public else 'hidden '}cases for {', '.join(empty)}; add some to "
                          "tools/cases.toml and run: python3 kit.py references")
    return found


# ------------------------------------------------------------------------------------------------ one child

class SubmissionRun:
    """Grade one set of helpers files in one sandboxed child (restarted after a crash or a timeout)."""

    def __init__(self, plan: Plan, files: dict, folder: Path, cpu_limits):
        """``files``: topic -> the helpers file to grade (or None); ``folder``: an empty private folder;
        ``cpu_limits(check, wait=True)``: (CPU seconds allowed, the reference's CPU seconds or None); with
        ``wait=False`` None while the reference is still being measured."""
        self.plan, self.files, self.cpu_limits = plan, files, cpu_limits
        self.lib = build_child_folder(folder / "child", plan.kit_root, files)
        self.scratch = folder / "scratch"
        self.scratch.mkdir()
        self.session: Session | None = None
        self.pending_output = ("", 0)  # printed while importing: shown with the topic's first check

    def run(self) -> dict[str, CheckResult]:
        results: dict[str, CheckResult] = {}
        try:
            for topic, checks in self.plan.topics.items():
                self._topic(topic, checks, results)
        finally:
            if self.session is not None:
                self.session.close()
        return results

    def _topic(self, topic: str, checks: list[str], results: dict) -> None:
        path = self.files.get(topic)
        if path is None:
            for c in checks:
                results[c] = self._result(c, "missing", f"helpers/{topic}.py is missing from the submission")
            return
        source = Path(path).read_text(encoding="utf-8-sig", errors="replace")
        findings = scan(source, f"helpers/{topic}.py", {c: (SPECS[c].forbidden, SPECS[c].stand_ins) for c in checks})
        imported = False
        for i, check in enumerate(checks):
            if check in findings:
                results[check] = self._result(check, "forbidden", findings[check].reason)
                continue
            if not imported:
                failure = self._import(topic)
                if failure is not None:
                    status, detail = failure
                    for c in checks[i:]:
                        results[c] = results.get(c) or self._result(c, status, detail)
                    output, dropped = self.pending_output
                    results[check].output, results[check].output_dropped = output, dropped
                    self.pending_output = ("", 0)
                    return
                imported = True
            results[check] = self._check(check)
            if self.session is None:  # it timed out or crashed: the next check starts a fresh child
                imported = False

    def _start(self) -> str | None:
        """Start a child; None, or why it failed (a grader error: no submission code has run yet)."""
        try:
            self.session = Session(self.lib, self.scratch, self.plan.mechanism, self.plan.limits)
        except OSError as err:
            return f"the sandbox could not start: {err}"
        reply = self.session.start()
        if reply.outcome == "ok" and reply.value == {"ready": True}:
            return None
        self.session.close()
        self.session = None
        last = [line for line in reply.output.splitlines() if line.strip()][-1:] or [reply.why or reply.outcome]
        return f"the sandboxed child did not start ({reply.outcome}): {last[0].strip()[:300]}"

    def _import(self, topic: str) -> tuple[str, str] | None:
        """Import helpers/<topic>.py in the child; None, or (status, detail) for every check of the topic."""
        if self.session is None:
            why = self._start()
            if why is not None:
                raise GraderError(why)
        limit = self.plan.points.cpu_floor  # importing the kit's modules and torch's costs well under 1 s
        reply = self.session.request({"op": "import", "topic": topic}, lambda: (limit, 2 * limit + 20))
        self.pending_output = (reply.output, reply.dropped)
        if reply.outcome == "ok":
            try:
                error = validate_import_reply(reply.value)
            except ValueError as err:
                reply = Reply("malformed", why=str(err))
            else:
                return None if error is None else ("import_error", f"helpers/{topic}.py cannot be imported: {error}")
        self._drop_session()
        if reply.outcome == "timeout":
            return ("timeout", f"importing helpers/{topic}.py did not finish within {limit:g} s of CPU time "
                               "(a loop or a long computation at module level?)")
        if reply.outcome == "died":
            return ("crashed", f"the process importing helpers/{topic}.py died ({reply.why})")
        return ("malformed", f"the process importing helpers/{topic}.py sent a reply the grader cannot use "
                             f"({reply.why})")

    def _drop_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def _check(self, check: str) -> CheckResult:
        spec = SPECS[check]
        cases = self.plan.cases[check]
        used = [0.0, 0.0]  # CPU and wall-clock seconds of the cases so far

        def allowed() -> tuple[float, float]:
            # Until the reference solution's times are known, the first checks run under its own generous
            # limit; the real one applies as soon as it is known, and again once the check is done.
            known = self.cpu_limits(check, wait=False)
            limit = known[0] if known else REFERENCE_CPU_LIMIT
            return limit - used[0], 2 * limit + 20 - used[1]  # wall: a backstop for code that only waits

        results, texts = [], [self.pending_output[0]]  # texts: what was printed, one per request (and import)
        dropped = self.pending_output[1]
        self.pending_output = ("", 0)
        failure, label = None, ""
        for case in cases:
            reply = self.session.request({"op": "case", "check": check, "case": references.without_answers(case)},
                                         allowed)
            used[0], used[1] = used[0] + reply.cpu, used[1] + reply.wall
            texts.append(reply.output)
            dropped += reply.dropped
            label = f"{case['label']}: " if case.get("label") else ""
            if reply.outcome == "ok":
                try:
                    result = validate_case_reply(reply.value, spec.outputs)
                except ValueError as err:
                    reply = Reply("malformed", why=str(err))
                else:
                    results.append(result)
                    if not judge_case(spec, case, result).passed:
                        break
                    continue
            self._drop_session()
            failure = reply
            break
        cpu, wall = used
        limit, reference = self.cpu_limits(check)
        if failure is None and cpu > limit:  # over a limit that became known only after it had started
            failure = Reply("timeout", why="cpu")
        grader_line = status = None
        if failure is not None and failure.outcome == "timeout" and failure.why == "cpu":
            status, grader_line = "timeout", (
                f"{label}did not finish within {limit:.3g} s of CPU time ({self.plan.points.cpu_scale:g} x the "
                f"reference solution's {reference or 0:.2g} s, at least {self.plan.points.cpu_floor:g} s): an "
                "endless loop, or far too much work?")
        elif failure is not None and failure.outcome == "timeout":
            status, grader_line = "timeout", (
                f"{label}did not finish within {2 * limit + 20:.3g} s of wall-clock time, using only {cpu:.2g} s "
                "of CPU: it waits for something (sleep, input, a lock?)")
        elif failure is not None and failure.outcome == "died":
            status, grader_line = "crashed", (
                f"{label}the process running it died ({failure.why}): os._exit, a crash, or memory exhausted")
        elif failure is not None:
            status, grader_line = "malformed", (
                f"{label}the process running it sent a reply the grader cannot use ({failure.why})")
        output, more = _capped("".join(texts))
        if grader_line is None:
            verdict = judge_check(spec, cases[:len(results)], results)
            passed, line = verdict.passed, verdict.line
            kinds = [r["kind"] for r in results if r.get("kind")]
            status = "pass" if passed else (kinds[0] if kinds else "fail")
        else:
            passed, line = False, f"FAIL {check}: {grader_line}"
        return CheckResult(spec.topic, check, passed, status, line, round(cpu, 2), round(wall, 2),
                           None if reference is None else round(reference, 2), round(limit, 2),
                           len(texts) - 1, len(cases), output, dropped + more)

    def _result(self, check: str, status: str, detail: str) -> CheckResult:
        return CheckResult(SPECS[check].topic, check, False, status, f"FAIL {check}: {detail}",
                           cases=len(self.plan.cases[check]))


def _capped(text: str) -> tuple[str, int]:
    return text[:OUTPUT_CAP], max(len(text) - OUTPUT_CAP, 0)


# ------------------------------------------------------------------------------------------------ a run

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
        import dataclasses

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


def _unique(name: str, taken: set) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def grade(paths: list[Path], kit_root: Path = KIT_ROOT, points_file: Path = DEFAULT_POINTS_FILE,
          jobs: int | None = None, only_topics=None, isolation: str = "auto", memory: int = MEMORY_BYTES,
          cpu_scale: float | None = None, cpu_floor: float | None = None, public_cases: bool | None = None,
          expand: bool = True, on_done=None, log=print) -> list[Graded]:
    """Grade each submission (a folder, a zip, or a folder of them) against the kit at ``kit_root``.

    Args:
        jobs: submissions graded at once (default: the number of usable cores), each in its own child.
        only_topics: grade only these topics (default: every topic in points.toml).
        isolation: "auto" (the strongest sandbox here, else none, said in one line), "required" (raise
            sandbox.SandboxUnavailable instead of grading without one) or "none".
        memory: memory limit of each sandbox, bytes.
        cpu_scale, cpu_floor, public_cases: override points.toml's [grading] settings.
        expand: a folder that holds no helpers/ of its own is a folder of submissions (else each path is
            one submission, its helpers/ found however deep: Gradescope's submission folder).
        on_done: called with each Graded as soon as it is complete (for printing).
    Raises PointsError (points.toml), SandboxUnavailable, GraderError (the kit or the sandbox is broken).
    """
    import dataclasses

    kit_root = Path(kit_root).resolve()
    points = load_points(points_file)
    overrides = {k: v for k, v in (("cpu_scale", cpu_scale), ("cpu_floor", cpu_floor),
                                   ("public_cases", public_cases)) if v is not None}
    points = dataclasses.replace(points, **overrides)
    questions = [q for q in points.questions if only_topics is None or q.topic in only_topics]
    unknown = sorted(set(only_topics or ()) - {s.topic for s in SPECS.values()})
    if unknown:
        raise GraderError(f"unknown topic(s) {', '.join(unknown)}")
    mechanism = sandbox.detect(isolation)
    log(f"isolation: {mechanism.name} -- {mechanism.description}")
    readable = [p.name for p in sorted((kit_root / HIDDEN_DIR).glob("*.pt")) if p.stat().st_mode & 0o004]
    if readable and mechanism.isolated and not mechanism.bwrap:  # only bubblewrap hides the files
        log(f"warning: {HIDDEN_DIR}/ ({', '.join(readable)}) is readable by every user: without bubblewrap the "
            f"submissions can read the hidden cases (chmod -R o-rwx {kit_root / HIDDEN_DIR})")
    if points.unlisted:
        log(f"not graded (no points in {Path(points_file).name}): {', '.join(points.unlisted)}")
    topics: dict[str, list[str]] = {}
    for q in questions:
        topics.setdefault(q.topic, []).append(q.check)
    cases = load_cases(kit_root, [q.check for q in questions], points.public_cases)
    work = Path(tempfile.mkdtemp(prefix="convlens-grade-"))
    os.chmod(work, 0o711)  # the sandbox user must reach its own folder inside (only bubblewrap hides the rest)
    limits = sandbox.Limits(cpu_seconds=3600, memory_bytes=memory, processes=PROCESSES, file_bytes=64 << 20)
    plan = Plan(points, questions, topics, cases, mechanism, limits, kit_root, work)
    try:
        subs, names = [], set()
        found = submissions.expand([Path(p) for p in paths], list(TOPICS)) if expand else [Path(p) for p in paths]
        for path in found:
            # Random names inside a folder others may cross but not list: without bubblewrap's private
            # view of the files, a child must not be able to guess where a classmate's files are.
            sub = submissions.load(path, list(TOPICS), Path(tempfile.mkdtemp(prefix="unzip-", dir=work)))
            sub.name = _unique(sub.name, names)
            subs.append(sub)
        reference: Future = Future()

        def reference_task():
            try:
                reference.set_result(measure_reference(plan))
            except BaseException as err:
                reference.set_exception(err)

        def cpu_limits(check: str, wait: bool = True) -> tuple[float, float] | None:
            if not wait and not reference.done():
                return None
            ref = reference.result()[check]
            return max(points.cpu_floor, points.cpu_scale * ref), ref

        def submission_task(i: int) -> Graded:
            sub, start = subs[i], time.perf_counter()
            folder = Path(tempfile.mkdtemp(prefix="sub-", dir=work))
            os.chmod(folder, 0o711)
            files = {t: sub.files.get(t) for t in topics}
            try:
                results = SubmissionRun(plan, files, folder, cpu_limits).run()
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            graded = Graded(sub.name, str(sub.source), questions, [results[q.check] for q in questions],
                            time.perf_counter() - start, sub.notebooks, list(sub.problems), mechanism.name)
            if on_done is not None:
                on_done(graded)
            return graded

        with ThreadPoolExecutor(max_workers=max(1, jobs or available_cores())) as pool:
            pool.submit(reference_task)
            futures = [pool.submit(submission_task, i) for i in range(len(subs))]
            try:
                return [f.result() for f in futures]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
