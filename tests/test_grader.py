"""The grader: its parts without a child (points.toml, reports, roster, the source scan, reply checks,
submission discovery, ``--prepare``), then the corpus of broken copies of the real solutions
(tests/submissions/cases.toml) graded for real, each with its exact expected score.

Attacks on the grader are in test_grader_attacks.py, hidden cases in test_grader_hidden.py, the Gradescope
bundle in test_gradescope.py.
"""
from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import pytest
import torch

from checks.child.specs import SPECS, TOPICS, checks_of
from grader.grade import CheckResult, Graded, grade
from grader.points import PointsError, Question, load_points
from grader.report import gradescope_dict, report_dict, summary, table, write_roster
from grader.scan import scan
from checks.child.core import CaseResult, Kind, Verdict
from grader.submission import safe_extract

ROOT = Path(__file__).resolve().parents[1]
# Limits for tests: three times the reference solution's CPU time still leaves honest code a wide margin,
# and an endless loop costs seconds, not minutes.
FAST = {"cpu_scale": 3, "cpu_floor": 5}


def quiet(*args):
    pass


# ------------------------------------------------------------------------------------------------ points.toml

def test_points_file_problems_are_all_reported_at_once(tmp_path):
    bad = tmp_path / "points.toml"
    bad.write_text('[grading]\ncpu_scale = 0\nspeed = 1\n[gradescope]\nvisibility = "soon"\n'
                   '[saliency]\nsaliency_mapp = 3\nocclusion_map = -1\n[gradecam]\ngrad_cam = 1\n')
    with pytest.raises(PointsError) as err:
        load_points(bad)
    message = str(err.value)
    for words in ("saliency.saliency_mapp: no check of that name", "occlusion_map = -1", "[gradecam] is not a topic",
                  "grading.speed: unknown setting", "grading.cpu_scale = 0", "gradescope.visibility = 'soon'"):
        assert words in message
    bad.write_text("[saliency\n")
    with pytest.raises(PointsError, match="cannot read"):
        load_points(bad)


def test_bad_points_file_stops_the_command_before_grading(tmp_path, capsys):
    from grader.__main__ import main

    bad = tmp_path / "points.toml"
    bad.write_text("[saliency]\nsaliency_map = 3\nocclusion_mapp = 3\n")
    out = tmp_path / "grades"
    assert main([str(ROOT), "--points", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "occlusion_mapp" in err and err.count("\n") <= 3
    assert not out.exists()


def test_points_settings_and_visibility(tmp_path):
    path = tmp_path / "points.toml"
    path.write_text('[grading]\npublic_cases = true\ncpu_scale = 5\n[gradescope]\nstdout_visibility = "visible"\n'
                    '[saliency]\nsaliency_map = { points = 2.5, visibility = "hidden" }\nocclusion_map = 1\n')
    points = load_points(path)
    settings = (points.public_cases, points.cpu_scale, points.cpu_floor, points.stdout_visibility)
    assert settings == (True, 5, 10, "visible")
    assert [(q.name, q.points, q.visibility) for q in points.questions[:2]] == [
        ("saliency/saliency_map", 2.5, "hidden"), ("saliency/occlusion_map", 1.0, "after_due_date")]
    # The checks the file leaves out earn their records' points; one set to 0 is not graded.
    left_out = {q.check: q.points for q in points.questions[2:]}
    assert left_out == {check: spec.points for check, spec in list(SPECS.items())[2:]} and min(left_out.values()) > 0
    zero = tmp_path / "zero.toml"
    zero.write_text("[gradcam]\ngrad_cam = 0\n")
    points = load_points(zero)
    assert points.ungraded == ["gradcam/grad_cam"] and "grad_cam" not in [q.check for q in points.questions]


def test_shipped_points_file_grades_every_check():
    points = load_points()
    assert [q.check for q in points.questions] == list(SPECS) and not points.ungraded
    assert [q.points for q in points.questions] == [s.points for s in SPECS.values()]
    assert points.public_cases is False  # hidden cases decide


# ------------------------------------------------------------------------------------------------ reports

def _verdict(line: str, status: str) -> Verdict:
    """The judge's verdict behind a test's line (a line with '; likely cause: ' keeps its cause apart)."""
    check, detail = line.split(" ", 1)[1].split(": ", 1)
    detail, _, cause = detail.partition("; likely cause: ")
    kind = None if status in ("pass", "fail") else Kind(status)
    finding = "wrong shape" if detail.startswith("shape") else ""
    return Verdict(check, line.startswith("PASS"), detail, kind, cause=cause, finding=finding)


def _graded(name: str, lines: dict, statuses: dict | None = None, isolation="bubblewrap+user") -> Graded:
    questions = [Question("saliency", "saliency_map", 3, "visible"), Question("saliency", "occlusion_map", 2, "hidden")]
    results = [CheckResult("saliency", _verdict(lines[q.check], (statuses or {}).get(
                   q.check, "pass" if lines[q.check].startswith("PASS") else "fail")),
                           cpu_seconds=1.5, reference_cpu_seconds=0.5, cpu_limit_seconds=10)
               for q in questions]
    return Graded(name, f"/subs/{name}", questions, results, 4.0, isolation=isolation)


PASS = {"saliency_map": "PASS saliency_map: ok", "occlusion_map": "PASS occlusion_map: ok"}


def test_roster_keeps_the_class_when_one_student_is_regraded(tmp_path):
    roster = tmp_path / "roster.csv"
    wrong = {**PASS, "occlusion_map": "FAIL occlusion_map: shape (2, 3), expected (2,)"}
    write_roster([_graded(n, PASS) for n in ("alice", "bob", "carol")], roster)
    write_roster([_graded("bob", wrong)], roster)
    rows = list(csv.DictReader(roster.open()))
    assert [(r["submission"], r["score"], r["saliency/occlusion_map"]) for r in rows] == [
        ("alice", "5", "2"), ("bob", "3", "0"), ("carol", "5", "2")]


def test_console_keeps_whole_verdicts_and_ends_with_a_class_summary():
    long = "FAIL saliency_map: objective='loss': " + "worst element [1, 2, 3]: got 1, expected 2 " * 6 + \
           "; likely cause: the gradient of the loss is taken with respect to the model"
    shape = {**PASS, "occlusion_map": "FAIL occlusion_map: shape (3, 1, 96, 96), expected (3, 96, 96); drop it"}
    text = table(_graded("dave", {**shape, "saliency_map": long}))
    assert long in text and "0 / 5" in text
    report = summary([_graded("dave", {**shape, "saliency_map": long}), _graded("erin", shape), _graded("fay", PASS)])
    assert "3 submission(s), mean 2.67 / 5" in report
    lines = {line.split()[0]: line for line in report.splitlines()[2:]}
    assert "2/3" in lines["saliency/saliency_map"]
    assert "the gradient of the loss is taken" in lines["saliency/saliency_map"]
    assert "1/3" in lines["saliency/occlusion_map"] and "wrong shape (2)" in lines["saliency/occlusion_map"]


def test_reports_read_the_structured_verdict_never_its_line():
    """The class summary and report.json take the judge's fields: a line that merely contains the words
    '; likely cause: ' (a student's exception message, say) does not become a cause."""
    from grader.report import cause

    decoy = Verdict("saliency_map", False, "raised ValueError: x; likely cause: decoy", Kind.EXCEPTION,
                    finding="raises ValueError")
    named = Verdict("saliency_map", False, "worst element [0]: got 1, expected 2", cause="a sum where the "
                    "reference averages", finding="wrong values").in_case("objective='loss'")
    assert cause(CheckResult("saliency", decoy)) == "raises ValueError"
    assert cause(CheckResult("saliency", named)) == "a sum where the reference averages"
    assert cause(CheckResult("saliency", Verdict("saliency_map", False, "slow", Kind.TIMEOUT))) == "timed out"
    questions = [Question("saliency", "saliency_map", 3, "visible")]
    (entry,) = report_dict(Graded("ann", "/subs/ann", questions, [CheckResult("saliency", named)]))["questions"]
    assert (entry["case"], entry["cause"], entry["finding"], entry["status"]) == (
        "objective='loss'", "a sum where the reference averages", "wrong values", "fail")
    assert entry["line"] == named.line


def test_results_json_takes_visibility_from_points_and_says_the_isolation():
    graded = _graded("gus", {**PASS, "occlusion_map": "FAIL occlusion_map: nope"}, isolation="none")
    results = gradescope_dict(graded, stdout_visibility="after_published")
    assert results["stdout_visibility"] == "after_published" and results["score"] == 3
    assert [(t["name"], t["visibility"], t["score"]) for t in results["tests"]] == [
        ("saliency/saliency_map", "visible", 3), ("saliency/occlusion_map", "hidden", 0.0)]
    assert "isolation: none" in results["output"]
    report = report_dict(graded)
    assert report["isolation"] == "none"
    times = {"cpu_seconds": 1.5, "reference_cpu_seconds": 0.5, "cpu_limit_seconds": 10}
    assert times.items() <= report["questions"][0].items()


def test_printed_output_stays_out_of_what_students_see():
    """What a submission printed may hold the inputs of hidden cases: the instructor's report.json keeps it,
    the students' results.json does not."""
    graded = _graded("hal", PASS)
    graded.results[0].output = "label 281, photo pixels 0.12 0.56 ..."
    assert json.dumps(gradescope_dict(graded)).count("photo pixels") == 0
    assert [t["output"] for t in gradescope_dict(graded)["tests"]] == [r.line for r in graded.results]
    assert report_dict(graded)["questions"][0]["output"].startswith("label 281")


# ------------------------------------------------------------------------------------------------ the source scan

def _scan(topic: str, source: str) -> dict:
    found = scan(source, f"helpers/{topic}.py", {c: (SPECS[c].forbidden, SPECS[c].stand_ins) for c in checks_of(topic)})
    return {name: f.reason for name, f in found.items()}


def test_scan_passes_the_reference_solutions():
    for topic in TOPICS:
        assert _scan(topic, (ROOT / "helpers" / f"{topic}.py").read_text()) == {}, topic


@pytest.mark.parametrize("source, found", [
    ("from captum.attr import Occlusion as O\ndef occlusion_map(m, x, y, **k):\n    return helper(m, x, y)\n"
     "def helper(m, x, y):\n    return O(m).attribute(x)\n", {"occlusion_map": "calls captum.attr.Occlusion"}),
    ("import captum.attr as ca\ndef saliency_map(m, x, y, objective='score'):\n"
     "    return getattr(ca, 'Sal' + 'iency')(m).attribute(x, target=y)\n", {"saliency_map": "captum.attr"}),
    ("import importlib\ndef saliency_map(m, x, y, objective='score'):\n"
     "    return importlib.import_module('cap' + 'tum.attr').Saliency(m).attribute(x)\n",
     {"saliency_map": "hides what it calls (importlib.import_module"}),
    ("import sys\ndef occlusion_map(m, x, y, **k):\n    sys.setprofile(None)\n    return x\n",
     {"occlusion_map": "sys.setprofile"}),
    ("def occlusion_map(m, x, y, **k):\n    from convlens.attribution import occlusion_attribution\n    return x\n",
     {"occlusion_map": "imports convlens.attribution.occlusion_attribution"}),
    ("from captum.attr import *\ndef saliency_map(m, x, y, objective='score'):\n    return x\n",
     {c: "imports everything from captum.attr" for c in checks_of("saliency")
      if any(f.startswith("captum.attr.") for f in SPECS[c].forbidden)}),
    ("_impl = __import__('captum.attr', fromlist=['x'])\ndef occlusion_map(m, x, y, **k):\n    return x\n",
     {c: "__import__" for c in checks_of("saliency")}),
    # reaching into the running checks: the kit's checking code, the loaded modules, the callers' frames
    ("import sys\ndef saliency_map(m, x, y, objective='score'):\n    sys.modules['checks.child.compute'].x = 1\n"
     "    return x\n", {"saliency_map": "reaches into the running checks (sys.modules"}),
    ("from checks.child import fixtures as f\nf.metered = None\ndef saliency_map(m, x, y, objective='score'):\n"
     "    return x\n", {c: "reaches into the running checks (checks.child.fixtures.metered"
                        for c in checks_of("saliency")}),
    ("def saliency_map(m, x, y, objective='score'):\n    import inspect\n"
     "    inspect.currentframe().f_back.f_locals['case'] = None\n    return x\n",
     {"saliency_map": "reaches into the running checks (inspect"}),
    ("def saliency_map(m, x, y, objective='score'):\n    getattr(__import__('s' + 'ys'), 'modules')\n    return x\n",
     {"saliency_map": "reaches into the running checks ('modules'"}),
    ("def saliency_map(m, x, y, objective='score'):\n    g = saliency_map.__globals__\n    return x\n",
     {"saliency_map": "reaches into the running checks (.__globals__"}),
    ("import sys, base64\ndef saliency_map(m, x, y, objective='score'):\n"
     "    return getattr(sys, base64.b64decode(b'bW9kdWxlcw==').decode())\n",
     {"saliency_map": "hides what it calls (getattr(sys, <computed name>)"}),
    ("import torch\ndef saliency_map(m, x, y, objective='score'):\n    s = torch.sys.modules\n    return x\n",
     {"saliency_map": "reaches into the running checks (torch.sys.modules"}),
    ("import sys\ndef saliency_map(m, x, y, objective='score'):\n    d = sys.__dict__\n    return x\n",
     {"saliency_map": "reaches into the running checks (.__dict__"}),
    # a docstring or a comment that mentions Captum, and an unused import, are not calls
    ('import captum\ndef saliency_map(m, x, y, objective="score"):\n    """Like captum.attr.Saliency."""\n'
     "    # captum.attr.Saliency(m) would do it\n    return x\n", {}),
])
def test_scan_finds_forbidden_calls_however_written(source, found):
    got = _scan("saliency", source)
    assert set(got) == set(found), got
    for name, words in found.items():
        assert words in got[name], got[name]


def test_scan_skips_stand_ins_and_ignores_unparsable_files():
    source = ("from captum.attr import LayerGradCam\ndef grad_cam(m, x, y, layer='head', normalize=True):\n"
              "    return LayerGradCam(m, layer).attribute(x)\ndef guided_grad_cam(m, x, y, layer='head'):\n"
              "    return grad_cam(m, x, y, layer)\n")
    assert set(_scan("gradcam", source)) == {"grad_cam"}  # guided_grad_cam's check replaces grad_cam
    assert _scan("gradcam", "def grad_cam(:\n") == {}  # the import reports the SyntaxError


# ------------------------------------------------------------------------------------------------ replies

def test_replies_from_the_child_are_checked():
    good = {"outputs": {"output": torch.zeros(2, 3)}, "problem": None, "kind": None, "finding": ""}
    assert CaseResult.from_message(good, ("output",)).outputs["output"].shape == (2, 3)
    long = CaseResult.from_message({"outputs": {}, "problem": "x\n" * 5000, "kind": "exception",
                                    "finding": "raises " + "E" * 500}, ("output",))
    assert len(long.problem) < 700 and "\n" not in long.problem and long.kind is Kind.EXCEPTION
    assert len(long.finding) < 100
    escaped = CaseResult.from_message({"outputs": {}, "problem": "\x1b[2K\rok \x1b[32mPASS", "kind": "exception",
                                       "finding": ""}, ("output",))
    assert "\x1b" not in escaped.problem and "\r" not in escaped.problem
    assert CaseResult.from_message(CaseResult.failure(Kind.EXCEPTION, "raised X", "raises X").to_message(),
                                   ("output",)).finding == "raises X"
    for bad in ({**good, "passed": True}, {**good, "outputs": {"verdict": torch.zeros(1)}},
                {**good, "outputs": {"output": [1.0, 2.0]}}, {**good, "kind": "pass"},
                {**good, "problem": "oops"}, {**good, "outputs": {"output": torch.nn.Parameter(torch.zeros(2))}},
                {**good, "outputs": {"output": torch.zeros(3).to_sparse()}}, "PASS", None,
                {**good, "finding": 3}, {"outputs": {}, "problem": "oops", "kind": "exception"},
                {"outputs": {}, "problem": "slow", "kind": "timeout", "finding": ""}):  # only the parent times out
        with pytest.raises(ValueError):
            CaseResult.from_message(bad, ("output",))


# ------------------------------------------------------------------------------------------------ submissions

def test_safe_extract_rejects_escapes_and_bombs(tmp_path, monkeypatch):
    monkeypatch.setattr("grader.submission.MAX_UNZIPPED_BYTES", 1 << 20)
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../../evil.py", "x")
        zf.writestr("/abs/evil.py", "x")
        zf.writestr("helpers/big.py", "#" * (3 << 20))
    problems = safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.py").exists() and not list((tmp_path / "out").glob("abs/*"))
    assert any("more than" in p for p in problems)
    not_a_zip = tmp_path / "notzip.zip"
    not_a_zip.write_text("hello")
    assert "cannot open" in safe_extract(not_a_zip, tmp_path / "out2")[0]


def test_prepare_puts_only_the_students_exercise_files_into_the_instructors_kit(tmp_path):
    from grader.__main__ import main

    sub = tmp_path / "carol"
    (sub / "helpers").mkdir(parents=True)
    (sub / "helpers" / "gradcam.py").write_text("def grad_cam(*a, **k):\n    return None\n")
    (sub / "checks" / "child").mkdir(parents=True)
    (sub / "checks" / "child" / "core.py").write_text("raise SystemExit('forged checks')\n")
    dest = tmp_path / "prepared"
    assert main([str(sub), "--prepare", str(dest)]) == 0
    assert (dest / "helpers" / "gradcam.py").read_text() == (sub / "helpers" / "gradcam.py").read_text()
    assert (dest / "checks" / "child" / "core.py").read_text() == (ROOT / "checks" / "child" / "core.py").read_text()
    assert "NotImplementedError" in (dest / "helpers" / "saliency.py").read_text()  # missing: the stub
    for part in ("convlens/model.py", "checks/references/gradcam.pt", "notebooks/2_gradcam.ipynb",
                 "notebooks/convlens_setup.py", "datasets/photos.csv"):
        assert (dest / part).is_file(), part
    assert not (dest / "grader").exists()  # no hidden cases in a folder the notebooks run in


# ------------------------------------------------------------------------------------------------ the corpus
# Broken copies of the real solutions (tests/submissions/cases.toml), graded with the real checks and model.
# A case is graded on the topics its edits touch; the other topics hold the untouched solutions, which the
# "correct" case shows earn every point.

CASES = mutate.load_cases()


@pytest.fixture(scope="module")
def corpus_graded(tmp_path_factory):
    graded_topics = {q.topic for q in load_points().questions}
    folder = tmp_path_factory.mktemp("corpus")
    groups: dict[tuple, list[Path]] = {}
    for case in CASES:
        path = mutate.build(case, ROOT, folder, list(TOPICS))
        key = tuple(t for t in mutate.topics_touched(case, list(TOPICS)) if t in graded_topics)
        groups.setdefault(key, []).append(path)
    graded = {}
    for key, paths in groups.items():
        for g in grade(paths, only_topics=set(key), jobs=2, log=quiet, **FAST):
            graded[g.name] = g
    return graded


def test_corpus_size():
    broken = [c for c in CASES if c["fail"]]
    assert len(broken) >= 12 and any(not c["fail"] for c in CASES)
    assert len({c["name"] for c in CASES}) == len(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case_exact_score(corpus_graded, case):
    questions = load_points().questions
    graded = corpus_graded[case["name"]]
    got = {q.name: r for q, r in zip(graded.questions, graded.results)}
    expected_fail = set(case["fail"])
    assert expected_fail <= set(got), "a check listed in 'fail' was not graded"
    wrong = {name: r.line for name, r in got.items() if r.passed == (name in expected_fail)}
    assert not wrong, f"{case['name']}: checks whose verdict differs from cases.toml: {wrong}"
    ungraded = sum(q.points for q in questions if q.name not in got)  # untouched topics: all pass
    assert graded.score + ungraded == sum(q.points for q in questions if q.name not in expected_fail)
    for name, words in case.get("words", {}).items():
        assert words in got[name].line, got[name].line
    for name, status in case.get("status", {}).items():
        assert got[name].status == status, got[name].line
    for name, text in case.get("printed", {}).items():
        assert got[name].output.startswith(text) and got[name].output_dropped > 0
    for r in got.values():
        assert r.line.startswith(("PASS ", "FAIL ")) and "\n" not in r.line
        assert r.cpu_limit_seconds is None or r.cpu_limit_seconds >= FAST["cpu_floor"]  # None: nothing ran


@pytest.mark.slow
def test_command_line_writes_reports_and_merges_the_roster(corpus_graded, tmp_path, capsys):
    """``grade alice --out grades`` next to a class roster: alice's row is replaced, the others stay."""
    from grader.__main__ import main

    out = tmp_path / "grades"
    write_roster([corpus_graded[name] for name in ("correct", "nan", "crash")], out / "roster.csv")
    alice = mutate.build({"name": "nan", "edit": [{"file": "style", "wrap": "tv_loss",
                                                   "code": "return original(*args, **kwargs) * 2"}]},
                         ROOT, tmp_path, list(TOPICS))
    gradescope = tmp_path / "gs" / "results.json"
    code = main([str(alice), "--out", str(out), "--topics", "style", "--gradescope", str(gradescope)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "FAIL tv_loss: " in printed and "class summary: 1 submission(s)" in printed
    rows = {r["submission"]: r for r in csv.DictReader((out / "roster.csv").open())}
    assert set(rows) == {"correct", "nan", "crash"}
    assert rows["nan"]["score"] == "8" and rows["nan"]["style/tv_loss"] == "0"
    assert rows["correct"]["score"] == str(round(sum(q.points for q in load_points(ROOT / "grader" / "points.toml").questions)))
    results = json.loads(gradescope.read_text())
    assert results["score"] == 8 and results["stdout_visibility"] == "hidden"
    report = json.loads((out / "nan" / "report.json").read_text())
    tv = next(q for q in report["questions"] if q["question"] == "style/tv_loss")
    assert tv["reference_cpu_seconds"] is not None and tv["cpu_limit_seconds"] >= 10
