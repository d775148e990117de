"""A whole class graded at once, as an instructor meets it: honest submissions beside every malformed one
and beside submissions that try the sandbox's limits, under the sandbox the grader picks here, once with its
cgroup and once with the cgroup hidden (Docker, a cgroup-v2 host without delegation). Every submission gets
its line, every honest one full marks, and the roster holds the whole class. Needs bubblewrap or root
namespaces (CI installs bubblewrap); skipped without."""
from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from grader import sandbox
from grader.grade import grade
from grader.report import write_reports, write_roster
from test_grader_class_folder import _malformed_class

pytestmark = pytest.mark.corpus

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ("gradcam", "style")
LIMITS = {"cpu_scale": 3, "cpu_floor": 3}


def _solution(topic: str) -> str:
    return (ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8")


def _wrapped(topic: str, function: str, before: str) -> str:
    """The solution, with ``function`` running ``before`` (indented body lines) first."""
    body = "".join(f"    {line}\n" for line in textwrap.dedent(before).strip("\n").splitlines())
    return (_solution(topic) + f"\n\n_original_{function} = {function}\n\n\ndef {function}(*args, **kwargs):\n"
            + body + f"    return _original_{function}(*args, **kwargs)\n")


# name: ({topic: source}, {check: words its FAIL line must hold}); checks not listed must pass
LIMIT_TESTS = {
    "shared_memory": ({"gradcam": _wrapped("gradcam", "grad_cam", """
        import mmap
        block = mmap.mmap(-1, 3584 << 20, flags=mmap.MAP_SHARED)
        block[::4096] = b"x" * len(range(0, 3584 << 20, 4096))
        """)}, {"grad_cam": ""}),
    "threads": ({"gradcam": _wrapped("gradcam", "guided_backprop", """
        import threading, time
        for _ in range(126):
            try:
                threading.Thread(target=time.sleep, args=(20,), daemon=True).start()
            except RuntimeError:
                break
        """)}, None),  # its own result is its own business; its classmates keep theirs
    "sleeps_at_import": ({"gradcam": _solution("gradcam") + "\nimport time\ntime.sleep(600)\n"},
                         {c: "of wall-clock time" for c in ("guided_backprop", "grad_cam", "guided_grad_cam")}),
    "patches_the_meter": ({"style": _solution("style") + "\nfrom checks import fixtures as _f\n"
                                                         "_f.metered = lambda model, budget: None\n"},
                          {c: "reaches into the running checks" for c in
                           ("content_loss", "gram_matrix", "style_loss", "tv_loss", "style_transfer")}),
}


def _build(folder: Path) -> dict[str, Path]:
    cases = _malformed_class(folder)
    for name in ("honest_a", "honest_z"):
        helpers = folder / name / "helpers"
        helpers.mkdir(parents=True)
        for topic in ("saliency", "gradcam", "fooling", "style"):
            shutil.copyfile(ROOT / "helpers" / f"{topic}.py", helpers / f"{topic}.py")
    with zipfile.ZipFile(folder / "honest_zip.zip", "w") as zf:
        for topic in ("saliency", "gradcam", "fooling", "style"):
            zf.write(ROOT / "helpers" / f"{topic}.py", f"my-work/helpers/{topic}.py")
    for name, (sources, _) in LIMIT_TESTS.items():
        helpers = folder / name / "helpers"
        helpers.mkdir(parents=True)
        for topic in ("saliency", "gradcam", "fooling", "style"):
            text = sources.get(topic) or _solution(topic)
            (helpers / f"{topic}.py").write_text(text, encoding="utf-8")
    return cases


@pytest.fixture(scope="module")
def detected():
    try:
        mech = sandbox.detect("auto")
    except sandbox.SandboxUnavailable as err:
        pytest.skip(f"no sandbox here: {err}")
    return mech


@pytest.fixture(scope="module", params=["cgroup", "no cgroup"])
def graded_class(request, detected):
    mech = detected if request.param == "cgroup" else dataclasses.replace(detected, cgroups=False)
    if request.param == "cgroup" and not detected.cgroups:
        pytest.skip("no writable cgroup hierarchy here")
    base = Path(tempfile.mkdtemp(prefix="convlens-class-"))
    os.chmod(base, 0o755)
    real_detect = sandbox.detect
    sandbox.detect = lambda *a, **k: mech
    try:
        malformed = _build(base / "class")
        out = base / "out"
        graded = grade([base / "class"], kit_root=ROOT, only_topics=set(TOPICS), jobs=2, log=lambda *a: None,
                       **LIMITS)
        for g in graded:
            write_reports(g, out)
        roster = write_roster(graded, out / "roster.csv")
        with open(roster, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        yield {"graded": {g.name: g for g in graded}, "rows": rows, "malformed": malformed, "out": out}
    finally:
        sandbox.detect = real_detect
        shutil.rmtree(base, ignore_errors=True)


def test_every_submission_is_graded_and_in_the_roster(graded_class):
    graded, rows = graded_class["graded"], graded_class["rows"]
    expected = len(graded_class["malformed"]) + 3 + len(LIMIT_TESTS)
    assert len(graded) == len(rows) == expected, sorted(graded)
    assert {r["submission"] for r in rows} == set(graded)
    for g in graded.values():
        assert len(g.results) == len(g.questions) and all(r.line for r in g.results), g.name
        assert (graded_class["out"] / g.name / "report.json").is_file()


def test_honest_submissions_keep_full_marks(graded_class):
    for name in ("honest_a", "honest_z", "honest_zip"):
        g = graded_class["graded"][name]
        assert g.score == g.max_score, [r.line for r in g.results if not r.passed]


def test_each_malformed_submission_gets_a_line_naming_its_cause(graded_class):
    graded = graded_class["graded"]
    by_source = {Path(g.source).name: g for g in graded.values()}
    for label, path in graded_class["malformed"].items():
        g = by_source[path.name]
        if label in ("badutf8", "file_and_folder", "long", "kit_link", "linked"):
            assert g.warnings, label
        if label in ("kit_link", "linked"):
            assert g.score < g.max_score  # a link is never graded as what it points to


def test_limits_hold_and_lines_name_what_happened(graded_class):
    graded = graded_class["graded"]
    for name, (_, failing) in LIMIT_TESTS.items():
        if failing is None:
            continue
        g = graded[name]
        for q, r in zip(g.questions, g.results):
            if q.check in failing:
                assert not r.passed and failing[q.check] in r.line, (name, r.line)
            else:
                assert r.passed, (name, r.line)
