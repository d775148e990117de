"""What runs in the child process that computes: the worker and its messages (worker.py, channel.py), running a
student's function on a case's inputs (compute.py) with one probe per side effect (probes.py), the exercises'
specs and the stand-ins and small networks they name (specs.py, fixtures.py, outcomes.py), and the results
sent back (core.py). No file here holds or reads an expected output; the grader shows the sandbox this package
whole, and nothing else of checks/ but its ``__init__.py``.
"""
