"""What grading gives: one result per graded check, and one grade per submission."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from checks.child.core import Verdict, one_line

from grader.points import Question


@dataclass
class CheckResult:
    """One graded check: the judge's :class:`checks.child.core.Verdict` as it came, with the times and what the
    submission printed. Every report is rendered from these fields; none parses the verdict's line."""

    topic: str
    verdict: Verdict
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    reference_cpu_seconds: float | None = None
    cpu_limit_seconds: float | None = None
    cases_run: int = 0
    cases: int = 0
    output: str = ""
    output_dropped: int = 0

    @property
    def check(self) -> str:
        return self.verdict.check

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def status(self) -> str:
        """pass, fail (wrong values) or a :class:`checks.child.core.Kind`'s value."""
        return self.verdict.status

    @property
    def line(self) -> str:
        return one_line(self.verdict.line, 2000)

    def to_dict(self) -> dict:
        """The structured verdict, the times and the printed output, for report.json."""
        fields = {k: v for k, v in asdict(self).items() if k != "verdict"}
        return {"topic": self.topic, **self.verdict.to_dict(), "line": self.line, **fields}


@dataclass
class Graded:
    """One submission's grade: a result per question, in question order."""

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
