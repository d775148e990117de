"""Checks that compare the student's helpers with saved reference tensors, one printed line per check."""
from checks.core import Verdict, check_device, compare, report, run

__all__ = ["Verdict", "check_device", "compare", "report", "run"]
