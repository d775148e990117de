"""Grade submissions: ``python kit.py grade SUBMISSION... [--out DIR] [--jobs N] [--timeout S]``.

A SUBMISSION is a folder or a .zip holding the student's helpers/ (notebooks may come along; they are not
run). A folder holding several submissions (subfolders or zips) grades each of them. Prints a score table per
submission and writes DIR/<name>/report.json, DIR/<name>/results.json (Gradescope) and DIR/roster.csv.

With ``--prepare DIR`` nothing is graded: DIR receives the instructor's kit and notebooks with one
submission's helpers in place, ready for ``pytest --nbval-lax DIR/notebooks``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader.grade import KIT_ROOT, available_cores, grade
from grader.points import DEFAULT_POINTS_FILE, PointsError
from grader.report import gradescope_dict, table, write_reports, write_roster


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python kit.py grade", description="Grade convlens submissions "
                                     "(folders or .zip files holding helpers/); see grader/__main__.py.")
    parser.add_argument("submissions", nargs="+", type=Path, help="folders or .zip files, or folders of them")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where reports go (default: grades/)")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"worker processes at once (default: usable cores, here {available_cores()})")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per check (default 60)")
    parser.add_argument("--points", type=Path, default=DEFAULT_POINTS_FILE, help="points file (default: grader/points.toml)")
    parser.add_argument("--topics", default=None, help="grade only these topics, comma-separated (e.g. saliency,gradcam)")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="memory limit per worker (0: none)")
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
        only = args.topics.split(",") if args.topics else None
        results = grade(args.submissions, kit_root=args.kit, points_file=args.points, jobs=args.jobs,
                        timeout=args.timeout, only_topics=only, memory=int(args.memory_gb * (1 << 30)),
                        on_done=lambda g: print(table(g) + "\n", flush=True))
    except PointsError as err:
        parser.error(str(err))
    for graded in results:
        write_reports(graded, args.out)
    roster = write_roster(results, args.out / "roster.csv")
    if args.gradescope is not None:
        if len(results) != 1:
            print("--gradescope needs exactly one submission", file=sys.stderr)
            return 2
        args.gradescope.parent.mkdir(parents=True, exist_ok=True)
        args.gradescope.write_text(json.dumps(gradescope_dict(results[0]), indent=2) + "\n", encoding="utf-8")
    print(f"{len(results)} submission(s) graded -> {args.out}/<name>/report.json, results.json; roster: {roster}")
    return 1 if any(r.status == "grader_error" for g in results for r in g.results) else 0


def prepare(args) -> int:
    """Write the instructor's kit (with notebooks) plus one submission's helpers to args.prepare."""
    import tempfile

    from grader import submission as submissions
    from grader.workspace import build_kit, topics_of

    topics = topics_of(args.kit.resolve())
    paths = submissions.expand(args.submissions, topics)
    if len(paths) != 1:
        print("--prepare takes exactly one submission", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        sub = submissions.load(paths[0], topics, Path(tmp))
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
