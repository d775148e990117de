"""Points per check, from grader/points.toml (the one file an instructor edits).

Layout: one table per topic (as in checks/topics.py), one ``check_name = points`` line per check (as in
that topic's ``CHECKS``). A check earns its points when its verdict is PASS and nothing otherwise.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_POINTS_FILE = Path(__file__).resolve().parent / "points.toml"


class PointsError(ValueError):
    """points.toml cannot be used (bad TOML, a negative or non-numeric value, an unknown topic)."""


@dataclass(frozen=True)
class Question:
    """One graded check: ``topic/check``, worth ``points``."""

    topic: str
    check: str
    points: float

    @property
    def name(self) -> str:
        return f"{self.topic}/{self.check}"


def load_points(path: Path = DEFAULT_POINTS_FILE, topics=None) -> list[Question]:
    """The graded questions in file order. ``topics``: known topic names, to reject misspelt tables."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PointsError(f"cannot read {path}: {err}") from err
    questions = []
    for topic, table in data.items():
        if topics is not None and topic not in topics:
            raise PointsError(f"{path}: [{topic}] is not a topic; known: {', '.join(topics)}")
        if not isinstance(table, dict):
            raise PointsError(f"{path}: {topic} must be a table ([{topic}]) of check = points lines")
        for check, points in table.items():
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
                raise PointsError(f"{path}: {topic}.{check} = {points!r}; points must be a number >= 0")
            questions.append(Question(topic, check, float(points)))
    if topics is not None:
        order = list(topics)
        questions.sort(key=lambda q: order.index(q.topic))  # stable: file order within a topic
    return questions
