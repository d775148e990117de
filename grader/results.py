"""What grading gives: one result per graded check, and one outcome per submission."""
from __future__ import annotations

from dataclasses import dataclass, field

from grader.points import Question


@dataclass
class CheckResult:
    """One graded check. ``status``: pass, fail (wrong values) or a :class:`checks.core.Kind`'s value."""

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
