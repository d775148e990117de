"""The instructor's grader: ``python kit.py grade SUBMISSION...`` (see ``grader/__main__.py``).

The parent judges, an unprivileged child computes, hidden cases decide: each submission's code runs in an
operating-system sandbox (grader/sandbox.py) as a child (grader/child.py) that receives only the inputs of
the cases; the grader's own process (grader/grade.py) keeps the expected outputs and judges what comes back.
Points per check and grading settings come from ``grader/points.toml``.
"""
