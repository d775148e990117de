"""grader/points.toml: how checks are graded, and any points that differ from the exercises' own (its format is
documented at its top). Every check is graded, worth the points its record gives (``Spec.points``), unless the
file gives it others; 0 leaves it out.

:func:`load_points` validates the whole file before anything is graded and raises one :class:`PointsError`
listing every problem: an unknown table, topic, check or setting, a negative or non-numeric number of
points, an unknown visibility.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from checks.child.specs import SPECS, TOPICS

DEFAULT_POINTS_FILE = Path(__file__).resolve().parent / "points.toml"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
GRADING_DEFAULTS = {"public_cases": False, "cpu_scale": 20.0, "cpu_floor": 10.0, "term_seed": None}
GRADESCOPE_DEFAULTS = {"visibility": "after_due_date", "stdout_visibility": "hidden"}


class PointsError(ValueError):
    """points.toml cannot be used; the message lists every problem, one per line."""


@dataclass(frozen=True)
class Question:
    """One graded check: ``topic/check``, worth ``points``, shown on Gradescope per ``visibility``."""

    topic: str
    check: str
    points: float
    visibility: str = "visible"

    @property
    def name(self) -> str:
        return f"{self.topic}/{self.check}"


@dataclass(frozen=True)
class Points:
    questions: list[Question]
    public_cases: bool = False  # grade the shipped public cases too (hidden cases always count)
    cpu_scale: float = 20.0  # a check may use this many times the reference solution's CPU time ...
    cpu_floor: float = 10.0  # ... and at least this many CPU seconds
    stdout_visibility: str = "hidden"
    term_seed: int | None = None  # the hidden cases must have been drawn from this seed (kit.py references)
    ungraded: list[str] = field(default_factory=list)  # checks that points.toml sets to 0 (not graded)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_points(path: Path = DEFAULT_POINTS_FILE) -> Points:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PointsError(f"cannot read {path}: {err}") from err
    problems: list[str] = []
    grading = {**GRADING_DEFAULTS, **_settings(data.pop("grading", {}), GRADING_DEFAULTS, "grading", problems)}
    gradescope = {**GRADESCOPE_DEFAULTS,
                  **_settings(data.pop("gradescope", {}), GRADESCOPE_DEFAULTS, "gradescope", problems)}
    if not isinstance(grading["public_cases"], bool):
        problems.append("grading.public_cases must be true or false")
    for key in ("cpu_scale", "cpu_floor"):
        if not _number(grading[key]) or grading[key] <= 0:
            problems.append(f"grading.{key} = {grading[key]!r}; it must be a number > 0")
    seed = grading["term_seed"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        problems.append(f"grading.term_seed = {seed!r}; it must be a whole number >= 0")
    for key in ("visibility", "stdout_visibility"):
        if gradescope[key] not in VISIBILITIES:
            problems.append(f"gradescope.{key} = {gradescope[key]!r}; one of {', '.join(VISIBILITIES)}")
    questions = {check: Question(spec.topic, check, float(spec.points), gradescope["visibility"])
                 for check, spec in SPECS.items()}
    for topic, table in data.items():
        if topic not in TOPICS:
            problems.append(f"[{topic}] is not a topic (known: {', '.join(TOPICS)}) nor [grading] / [gradescope]")
            continue
        if not isinstance(table, dict):
            problems.append(f"{topic} must be a table ([{topic}]) of check = points lines")
            continue
        for check, value in table.items():
            where = f"{topic}.{check}"
            if check not in SPECS or SPECS[check].topic != topic:
                known = ", ".join(c for c, s in SPECS.items() if s.topic == topic)
                problems.append(f"{where}: no check of that name in {topic} (known: {known})")
                continue
            if isinstance(value, dict):
                extra = set(value) - {"points", "visibility"}
                if extra:
                    problems.append(f"{where}: unknown key(s) {', '.join(sorted(extra))}; use points, visibility")
                points, visibility = value.get("points"), value.get("visibility", gradescope["visibility"])
            else:
                points, visibility = value, gradescope["visibility"]
            if not _number(points) or points < 0:
                problems.append(f"{where} = {points!r}: points must be a number >= 0")
                continue
            if visibility not in VISIBILITIES:
                problems.append(f"{where}: visibility {visibility!r}; one of {', '.join(VISIBILITIES)}")
                continue
            questions[check] = Question(topic, check, float(points), visibility)
    if problems:
        raise PointsError(f"{path}:\n" + "\n".join(f"  {p}" for p in problems))
    graded = [q for q in questions.values() if q.points > 0]  # in the order of SPECS
    if not graded:
        raise PointsError(f"{path}: no check has points")
    return Points(graded, grading["public_cases"], float(grading["cpu_scale"]), float(grading["cpu_floor"]),
                  gradescope["stdout_visibility"], grading["term_seed"],
                  [q.name for q in questions.values() if q.points == 0])


def _settings(table, defaults: dict, name: str, problems: list) -> dict:
    if not isinstance(table, dict):
        problems.append(f"{name} must be a table ([{name}])")
        return {}
    for key in set(table) - set(defaults):
        problems.append(f"{name}.{key}: unknown setting (known: {', '.join(defaults)})")
    return {k: v for k, v in table.items() if k in defaults}
