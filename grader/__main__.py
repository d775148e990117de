"""Grade submissions: ``python kit.py grade SUBMISSION... [--out DIR] [--jobs N] [--isolation MODE]``.

A SUBMISSION is a folder or a .zip holding the student's helpers/ (notebooks may come along; they are not
run). A folder holding several submissions (subfolders or zips) grades each of them. Prints a score table per
submission and a class summary, and writes DIR/<name>/report.json, DIR/<name>/results.json (Gradescope) and
DIR/roster.csv (rows of submissions graded earlier stay). Exit code 0, or 2 when nothing could be graded
(points.toml invalid, no sandbox that keeps submissions from the kit and the grades, a broken kit).

With ``--prepare DIR`` nothing is graded: DIR receives the instructor's kit and notebooks with one
submission's helpers in place, ready for ``pytest --nbval-lax DIR/notebooks``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader import sandbox
from grader.grade import KIT_ROOT, MEMORY_BYTES, GraderError, available_cores, grade
from grader.points import DEFAULT_POINTS_FILE, PointsError, load_points
from grader.report import gradescope_dict, summary, table, write_reports, write_roster


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python kit.py grade", description="Grade convlens submissions "
                                     "(folders or .zip files holding helpers/); see grader/__main__.py.")
    parser.add_argument("submissions", nargs="+", type=Path, help="folders or .zip files, or folders of them")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where reports go (default: grades/)")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"submissions graded at once (default: usable cores, here {available_cores()})")
    parser.add_argument("--isolation", choices=sandbox.MODES, default="auto",
                        help="auto: the strongest sandbox here that keeps submissions from the kit's secrets, "
                             "the grades and Captum (refuses when there is none, naming what to install); a "
                             "mechanism's name: that one only; none: no sandbox, for trusted code only (every "
                             "report says so)")
    parser.add_argument("--points", type=Path, default=DEFAULT_POINTS_FILE,
                        help="points file (default: grader/points.toml)")
    parser.add_argument("--topics", default=None,
                        help="grade only these topics, comma-separated (e.g. saliency,gradcam)")
    parser.add_argument("--memory-gb", type=float, default=MEMORY_BYTES / (1 << 30),
                        help=f"memory limit of each submission's sandbox (default {MEMORY_BYTES / (1 << 30):g})")
    parser.add_argument("--gradescope", type=Path, default=None, metavar="FILE",
                        help="also write the (single) submission's results.json here, e.g. "
                             "/autograder/results/results.json")
    parser.add_argument("--kit", type=Path, default=KIT_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", type=Path, default=None, metavar="DIR",
                        help="only build DIR = instructor kit + this submission's helpers, for nbval")
    args = parser.parse_args(argv)
    if args.prepare is not None:
        return prepare(args)
    try:
        points = load_points(args.points)  # before anything else: a typo must not cost a whole class
    except PointsError as err:
        return _refuse(args, str(err))
    if args.gradescope is not None and len(args.submissions) != 1:
        return _refuse(args, "--gradescope needs exactly one submission")
    try:
        results = grade(args.submissions, kit_root=args.kit, points_file=args.points, jobs=args.jobs,
                        only_topics=args.topics.split(",") if args.topics else None, isolation=args.isolation,
                        memory=int(args.memory_gb * (1 << 30)), expand=args.gradescope is None,
                        on_done=lambda g: print(table(g) + "\n", flush=True), protected=[args.out])
    except sandbox.SandboxUnavailable as err:
        return _refuse(args, f"refusing to grade: {err}")
    except (GraderError, PointsError) as err:
        return _refuse(args, str(err))
    for graded in results:
        write_reports(graded, args.out, points.stdout_visibility)
    roster = write_roster(results, args.out / "roster.csv")
    if args.gradescope is not None:
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        args.gradescope.write_text(json.dumps(gradescope_dict(results[0], points.stdout_visibility), indent=2)
                                   + "\n", encoding="utf-8")
    print(summary(results))
    print(f"{len(results)} submission(s) graded -> {args.out}/<name>/report.json, results.json; roster: {roster}")
    return 0


def _refuse(args, message: str) -> int:
    """One error and exit code 2; on Gradescope, a results.json that says why (instead of no result)."""
    print(f"kit.py grade: {message}", file=sys.stderr)
    if args.gradescope is not None:
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        args.gradescope.write_text(json.dumps({"score": 0, "output": f"The autograder could not grade: {message}"},
                                              indent=2) + "\n", encoding="utf-8")
    return 2


def prepare(args) -> int:
    """Write the instructor's kit (with notebooks) plus one submission's helpers to args.prepare."""
    import tempfile

    from checks.child.specs import TOPICS
    from grader import submission as submissions
    from grader.workspace import build_kit

    paths = submissions.expand(args.submissions, TOPICS)
    if len(paths) != 1:
        print("--prepare takes exactly one submission", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        sub = submissions.load(paths[0], TOPICS, Path(tmp))
        build_kit(args.prepare, args.kit.resolve(), sub.files, notebooks=True)
    for problem in sub.problems:
        print(f"! {problem}")
    missing = [t for t, f in sub.files.items() if f is None]
    if missing:
        print(f"! missing from the submission (stubs put in their place): {', '.join(missing)}")
    print(f"kit with {sub.name}'s helpers -> {args.prepare}\nnow run: pytest --nbval-lax {args.prepare}/notebooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
