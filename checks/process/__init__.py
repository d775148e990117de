"""The parent's side of the child that computes: starting it, its limits, capture and end (session.py), and
``kit.py check`` (cli.py). The grader adds its sandbox and points on top (grader/)."""
