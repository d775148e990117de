"""The instructor's grader: ``python kit.py grade SUBMISSION...`` (see ``grader/__main__.py``).

The parent judges, an unprivileged child computes, hidden cases decide: each submission's code runs in an
operating-system sandbox (grader/sandbox/) as the checks' own worker (checks/child/worker.py) that receives only
the inputs of the cases; the grader's process keeps the expected outputs and judges what comes back with
the same loop as ``kit.py check`` (checks/judge/). grade.py runs a class (a thread per submission),
run.py one submission, reference_time.py measures the reference solution's CPU time for the limits, results.py
and report.py hold and write the grades. Points per check and grading settings come from
``grader/points.toml``.
"""
