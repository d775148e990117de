"""The instructor's grader: ``python kit.py grade SUBMISSION...`` (see ``grader/__main__.py``).

Each (submission, topic) runs in its own worker process inside a fresh copy of the instructor's kit with only
the student's ``helpers/<topic>.py`` files swapped in; points per check come from ``grader/points.toml``.
"""
