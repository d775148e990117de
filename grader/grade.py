"""Grade submissions: every (submission, topic) pair is one job; a thread pool keeps ``jobs`` worker
processes busy, each running one topic's checks for one submission."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from grader import submission as submissions
from grader.points import DEFAULT_POINTS_FILE, PointsError, Question, load_points
from grader.report import Graded
from grader.runner import CheckResult, Limits, grade_topic
from grader.workspace import KIT_PARTS, describe_changes, snapshot, topics_of

KIT_ROOT = Path(__file__).resolve().parents[1]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def grade(paths: list[Path], kit_root: Path = KIT_ROOT, points_file: Path = DEFAULT_POINTS_FILE,
          jobs: int | None = None, timeout: float = 60.0, only_topics=None, memory: int = 8 << 30,
          on_done=None) -> list[Graded]:
    """Grade each submission (a folder, a zip, or a folder of them) against the kit at ``kit_root``.

    Args:
        jobs: worker processes at once (default: the number of usable cores).
        timeout: seconds allowed per check (and for importing a student's module).
        only_topics: grade only these topics (default: all in points.toml).
        memory: address-space limit per worker, bytes (0: none).
        on_done: called with each Graded as soon as it is complete (for printing).
    """
    kit_root = Path(kit_root).resolve()
    topics = topics_of(kit_root)
    unknown = sorted(set(only_topics or ()) - set(topics))
    if unknown:
        raise PointsError(f"unknown topic(s) {', '.join(unknown)}; known: {', '.join(topics)}")
    questions = [q for q in load_points(points_file, topics) if only_topics is None or q.topic in only_topics]
    jobs = max(1, jobs or available_cores())
    # One torch thread per worker, whatever --jobs is: results then never depend on the job count (float
    # sums differ with the thread count), and parallel workers use the cores without OpenMP threads spinning.
    limits = Limits(timeout=timeout, memory=memory, threads=1)
    tmp = Path(tempfile.mkdtemp(prefix="convlens-grade-"))
    try:
        subs, names = [], set()
        for i, path in enumerate(submissions.expand([Path(p) for p in paths], topics)):
            sub = submissions.load(path, topics, tmp / f"sub{i}")
            sub.name = _unique(sub.name, names)
            subs.append(sub)
        by_topic = {}
        for q in questions:
            by_topic.setdefault(q.topic, []).append(q.check)
        work = [(s, t) for s in range(len(subs)) for t in by_topic]
        live = _LiveKit(kit_root)
        pending = {s: len(by_topic) for s in range(len(subs))}
        outcomes: dict[tuple[int, str], tuple[list[CheckResult], list[str]]] = {}
        graded: dict[int, Graded] = {}
        starts = {}

        lock = threading.Lock()

        def run(item):
            s, topic = item
            with lock:
                starts.setdefault(s, time.perf_counter())
            work_dir = tmp / f"work{s}"
            work_dir.mkdir(exist_ok=True)
            try:
                outcomes[item] = grade_topic(kit_root, topic, by_topic[topic], subs[s].files, work_dir, limits)
            except Exception as err:  # a grader fault (disk full, say): this topic only, never the whole batch
                outcomes[item] = ([CheckResult(topic, c, False, "grader_error",
                                               f"FAIL {c}: grader error: {type(err).__name__}: {err}")
                                   for c in by_topic[topic]], [])
            changed = live.changes()
            with lock:
                if changed:
                    subs[s].problems.append(f"the instructor's kit itself changed while {topic} was graded "
                                            f"({changed}); check those files and grade again")
                pending[s] -= 1
                complete = pending[s] == 0
            if complete:
                graded[s] = _assemble(subs[s], questions, outcomes, s, time.perf_counter() - starts[s])
                if on_done is not None:
                    on_done(graded[s])

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(run, item) for item in work]:
                future.result()
        for s in range(len(subs)):  # a submission with no questions at all
            if s not in graded:
                graded[s] = _assemble(subs[s], questions, outcomes, s, 0.0)
        return [graded[s] for s in range(len(subs))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _LiveKit:
    """Notices changes to the instructor's own kit (which workspaces are copied from) during grading: code
    that finds its way there despite running elsewhere. Each change is reported once."""

    PARTS = KIT_PARTS + ("grader", "tools")

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.Lock()
        self.state = self._now()

    def _now(self) -> dict:
        return {f"{part}/{k}": v for part in self.PARTS if (self.root / part).is_dir()
                for k, v in snapshot(self.root / part).items()}

    def changes(self) -> str:
        with self.lock:
            before, self.state = self.state, self._now()
        return describe_changes(before, self.state, kinds=False)


def _unique(name: str, taken: set) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _assemble(sub, questions: list[Question], outcomes: dict, s: int, seconds: float) -> Graded:
    results, warnings = [], list(sub.problems)
    for q in questions:
        topic_results = outcomes.get((s, q.topic), ([], []))[0]
        match = next((r for r in topic_results if r.check == q.check), None)
        results.append(match or CheckResult(q.topic, q.check, False, "grader_error", f"FAIL {q.check}: not run"))
    graded_topics = {q.topic for q in questions}
    for topic in sorted(graded_topics):
        known = outcomes.get((s, topic), ([], []))[1]
        extra = [c for c in known if not any(q.topic == topic and q.check == c for q in questions)]
        if extra:
            warnings.append(f"checks/{topic}.py has checks without points in points.toml (not graded): "
                            + ", ".join(extra))
    return Graded(sub.name, str(sub.source), questions, results, seconds, sub.notebooks, warnings)
