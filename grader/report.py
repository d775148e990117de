"""What a grading run writes: the console table, report.json, Gradescope's results.json, the roster CSV."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.points import Question
from grader.runner import CheckResult


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

    @property
    def score(self) -> float:
        return sum(q.points for q, r in zip(self.questions, self.results) if r.passed)

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)


def _num(x: float) -> str:
    return f"{x:g}"


def output_text(result: CheckResult) -> str:
    """The verdict line, then (if any) what the code printed, capped."""
    text = result.line
    printed = result.output.rstrip()
    if printed:
        text += "\n\nprinted output:\n" + printed
    if result.output_dropped:
        text += f"\n... ({result.output_dropped} more characters of printed output not shown)"
    return text


def table(graded: Graded, width: int = 118) -> str:
    """The per-question score table printed on the console."""
    name_w = max([len(q.name) for q in graded.questions] + [8])
    lines = [f"{graded.name}  ({graded.source})"]
    lines += [f"  ! {w}" for w in graded.warnings]
    lines.append(f"  {'question':<{name_w}}  {'points':>9}  verdict")
    for q, r in zip(graded.questions, graded.results):
        points = f"{_num(q.points if r.passed else 0)} / {_num(q.points)}"
        verdict = r.line if len(r.line) <= width - name_w - 15 else r.line[:width - name_w - 18] + "..."
        lines.append(f"  {q.name:<{name_w}}  {points:>9}  {verdict}")
    lines.append(f"  {'total':<{name_w}}  {_num(graded.score) + ' / ' + _num(graded.max_score):>9}"
                 f"  ({graded.seconds:.0f} s)")
    return "\n".join(lines)


def report_dict(graded: Graded) -> dict:
    """Everything about one submission (report.json)."""
    return {
        "submission": graded.name, "source": graded.source,
        "score": graded.score, "max_score": graded.max_score, "seconds": round(graded.seconds, 2),
        "notebooks": graded.notebooks, "warnings": graded.warnings,
        "questions": [{"question": q.name, "points": q.points if r.passed else 0.0, "max_points": q.points,
                       **asdict(r)}
                      for q, r in zip(graded.questions, graded.results)],
    }


def gradescope_dict(graded: Graded) -> dict:
    """Gradescope autograder results.json: top-level score and one test per question."""
    return {
        "score": graded.score,
        "execution_time": round(graded.seconds, 2),
        "output": "\n".join([f"{_num(graded.score)} / {_num(graded.max_score)} points"] + graded.warnings),
        "tests": [{"name": q.name, "score": q.points if r.passed else 0.0, "max_score": q.points,
                   "status": "passed" if r.passed else "failed", "output": output_text(r),
                   "visibility": "visible"} for q, r in zip(graded.questions, graded.results)],
    }


def write_reports(graded: Graded, out_dir: Path) -> Path:
    """out_dir/<name>/report.json and results.json; returns that folder."""
    folder = out_dir / graded.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report_dict(graded), indent=2) + "\n", encoding="utf-8")
    (folder / "results.json").write_text(json.dumps(gradescope_dict(graded), indent=2) + "\n", encoding="utf-8")
    return folder


def write_roster(all_graded: list[Graded], path: Path) -> Path:
    """One row per submission: total, points per question, and the problems in a few words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    questions = all_graded[0].questions if all_graded else []
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "score", "max_score", *(q.name for q in questions), "problems"])
        for g in all_graded:
            problems = _problems(g)
            writer.writerow([g.name, _num(g.score), _num(g.max_score),
                             *(_num(q.points if r.passed else 0) for q, r in zip(g.questions, g.results)),
                             "; ".join(g.warnings + problems)])
    return path


def _problems(graded: Graded) -> list[str]:
    """'status: question, ...' for every status other than pass/fail; 'topic/*' when a whole topic shares it."""
    by_status: dict[str, list[Question]] = {}
    for q, r in zip(graded.questions, graded.results):
        if r.status not in ("pass", "fail"):
            by_status.setdefault(r.status, []).append(q)
    lines = []
    for status, qs in by_status.items():
        names = []
        for topic in dict.fromkeys(q.topic for q in qs):
            mine = [q for q in qs if q.topic == topic]
            whole = len(mine) == sum(q.topic == topic for q in graded.questions) and len(mine) > 1
            names += [f"{topic}/*"] if whole else [q.name for q in mine]
        lines.append(f"{status}: {', '.join(names)}")
    return lines
