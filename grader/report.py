"""What a grading run writes: the console table and class summary, report.json, Gradescope's
results.json, and the roster CSV (merged into an existing one, so regrading one student keeps the class)."""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

from grader.grade import CheckResult, Graded

def _num(x: float) -> str:
    return f"{x:g}"


def table(graded: Graded) -> str:
    """The per-question score table printed on the console; verdict lines are never cut."""
    name_w = max([len(q.name) for q in graded.questions] + [8])
    lines = [f"{graded.name}  ({graded.source})"]
    lines += [f"  ! {w}" for w in graded.warnings]
    lines.append(f"  {'question':<{name_w}}  {'points':>9}  verdict")
    for q, r in zip(graded.questions, graded.results):
        points = f"{_num(q.points if r.passed else 0)} / {_num(q.points)}"
        lines.append(f"  {q.name:<{name_w}}  {points:>9}  {r.line}")
    lines.append(f"  {'total':<{name_w}}  {_num(graded.score) + ' / ' + _num(graded.max_score):>9}"
                 f"  ({graded.seconds:.0f} s, {graded.cpu_seconds:.0f} s of CPU in the checks)")
    return "\n".join(lines)


def cause(result: CheckResult) -> str:
    """A few words for why a check failed, the same for submissions that failed the same way: the verdict's
    likely cause, else what the judge found, else its kind's words."""
    return result.verdict.summary


def summary(all_graded: list[Graded]) -> str:
    """The class summary that ends a run: mean points per check and the most common cause of failing."""
    if not all_graded:
        return "no submissions graded"
    questions = all_graded[0].questions
    n = len(all_graded)
    name_w = max(len(q.name) for q in questions)
    mean = sum(g.score for g in all_graded) / n
    lines = [f"class summary: {n} submission(s), mean {mean:.3g} / {_num(all_graded[0].max_score)}",
             f"  {'question':<{name_w}}  {'mean':>11}  {'passed':>7}  most common failure"]
    for i, q in enumerate(questions):
        results = [g.results[i] for g in all_graded]
        passed = sum(r.passed for r in results)
        causes = Counter(cause(r) for r in results if not r.passed)
        common = f"{causes.most_common(1)[0][0]} ({causes.most_common(1)[0][1]})" if causes else "-"
        lines.append(f"  {q.name:<{name_w}}  {passed * q.points / n:>5.3g} / {_num(q.points):<3}  "
                     f"{passed:>3}/{n:<3}  {common}")
    return "\n".join(lines)


def report_dict(graded: Graded) -> dict:
    """Everything about one submission (report.json): each check's verdict, printed output, and its CPU
    time beside the reference solution's and the limit."""
    return {
        "submission": graded.name, "source": graded.source, "isolation": graded.isolation,
        "score": graded.score, "max_score": graded.max_score, "seconds": round(graded.seconds, 2),
        "cpu_seconds": round(graded.cpu_seconds, 2), "notebooks": graded.notebooks, "warnings": graded.warnings,
        "questions": [{"question": q.name, "points": q.points if r.passed else 0.0, "max_points": q.points,
                       **r.to_dict()}
                      for q, r in zip(graded.questions, graded.results)],
    }


def gradescope_dict(graded: Graded, stdout_visibility: str = "hidden") -> dict:
    """Gradescope autograder results.json: the score and one test per question, each with its
    visibility from points.toml. Students see this file, so it holds the verdict lines only: what a
    submission printed may carry the inputs of hidden cases (next term's too), and stays in report.json,
    which only the instructor sees."""
    return {
        "score": graded.score,
        "execution_time": round(graded.seconds, 2),
        "output": "\n".join([f"{_num(graded.score)} / {_num(graded.max_score)} points",
                             f"isolation: {graded.isolation}"] + graded.warnings),
        "stdout_visibility": stdout_visibility,
        "tests": [{"name": q.name, "number": str(i + 1), "score": q.points if r.passed else 0.0,
                   "max_score": q.points, "status": "passed" if r.passed else "failed",
                   "output": r.line, "visibility": q.visibility}
                  for i, (q, r) in enumerate(zip(graded.questions, graded.results))],
    }


def write_reports(graded: Graded, out_dir: Path, stdout_visibility: str = "hidden") -> Path:
    """out_dir/<name>/report.json and results.json; returns that folder."""
    folder = out_dir / graded.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report_dict(graded), indent=2) + "\n", encoding="utf-8")
    (folder / "results.json").write_text(json.dumps(gradescope_dict(graded, stdout_visibility), indent=2) + "\n",
                                         encoding="utf-8")
    return folder


def write_roster(all_graded: list[Graded], path: Path) -> Path:
    """One row per submission: total, points per question, and the problems in a few words. Rows of an
    existing roster are kept, except those of the submissions graded now, which are replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    questions = all_graded[0].questions if all_graded else []
    header = ["submission", "score", "max_score", *(q.name for q in questions), "problems"]
    rows: dict[str, dict] = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("submission"):
                    rows[row["submission"]] = row
    for g in all_graded:
        rows[g.name] = {"submission": g.name, "score": _num(g.score), "max_score": _num(g.max_score),
                        **{q.name: _num(q.points if r.passed else 0) for q, r in zip(g.questions, g.results)},
                        "problems": "; ".join(g.warnings + _problems(g))}
    with open(path, "w", newline="", encoding="utf-8", errors="replace") as f:
        writer = csv.DictWriter(f, header, extrasaction="ignore", restval="")
        writer.writeheader()
        for name in sorted(rows):
            writer.writerow({key: spreadsheet_safe(value) for key, value in rows[name].items()})
    return path


def spreadsheet_safe(value) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula (=, +, -, @, a tab or a return) gets
    a leading apostrophe, unless it is a plain number."""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"[-+]?\d+(\.\d+)?", text):
        return "'" + text
    return text


def _problems(graded: Graded) -> list[str]:
    """'status: question, ...' for every status other than pass/fail; 'topic/*' when a whole topic shares it."""
    by_status: dict[str, list] = {}
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
