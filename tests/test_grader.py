"""The grader: robustness to broken submissions (fast, on a miniature kit) and the corpus of broken copies of
the real solutions with their exact expected scores (slow: it grades real checks with the real model).

The miniature kit has the real checks/core.py and checks/references.py, a two-function topic ``toy`` whose
"model" is a 3x3 linear map, and a second topic ``other``, so each robustness case costs a second or two.
"""
from __future__ import annotations

import csv
import json
import textwrap
import zipfile
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import pytest
import torch

from grader.grade import grade
from grader.points import PointsError, load_points
from grader.report import gradescope_dict, report_dict, table, write_reports, write_roster
from grader.submission import safe_extract
from tools.release import stub_source

ROOT = Path(__file__).resolve().parents[1]

TOY_SOLUTION = '''\
"""Toy topic: two functions to write."""
import torch


def scale(model, x):
    """x (N, 3) -> model(x) * 2."""
    # TODO START scale
    # Run the model and double the result.
    return model(x) * 2
    # TODO END scale


def square(x):
    """x (N, 3) -> x ** 2."""
    # TODO START square
    return x * x
    # TODO END square
'''

OTHER_SOLUTION = '''\
def negate(x):
    # TODO START negate
    return -x
    # TODO END negate
'''

TOY_CHECKS = '''\
"""Checks of the toy topic."""
from checks.core import report, run
from checks.references import case

REFERENCE_INPUTS = "x: 4 x 3 values"


def _model(model):
    if model is None:
        from helpers.model import load_model
        model = load_model()
    return model


def check_scale(fn=None, model=None):
    if fn is None:
        from helpers.toy import scale as fn
    model = _model(model)
    c = case("toy", "scale")
    return report(run("scale", fn, (model, c["inputs"]["x"]), c["output"], model=model))


def check_square(fn=None, model=None):
    if fn is None:
        from helpers.toy import square as fn
    c = case("toy", "square")
    return report(run("square", fn, (c["inputs"]["x"],), c["output"]))


CHECKS = {"scale": check_scale, "square": check_square}
'''

OTHER_CHECKS = '''\
from checks.core import report, run
from checks.references import case


def check_negate(fn=None, model=None):
    if fn is None:
        from helpers.other import negate as fn
    c = case("other", "negate")
    return report(run("negate", fn, (c["inputs"]["x"],), c["output"]))


CHECKS = {"negate": check_negate}
'''

TOY_MODEL = '''\
import torch


def load_model(device=None):
    """A frozen 3 -> 3 linear map with fixed weights."""
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.arange(9.0).view(3, 3) / 10)
        model.bias.fill_(0.5)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()
'''

TOY_POINTS = "[toy]\nscale = 3\nsquare = 2\n\n[other]\nnegate = 1.5\n"


def make_toy_kit(root: Path) -> Path:
    """A miniature instructor kit in ``root``: real checks framework and release tool, toy topics."""
    (root / "checks" / "references").mkdir(parents=True)
    (root / "helpers").mkdir()
    (root / "tools").mkdir()
    (root / "datasets").mkdir()
    (root / "datasets" / "data.txt").write_text("instructor data\n")
    for name in ("core.py", "references.py", "__init__.py"):
        (root / "checks" / name).write_text((ROOT / "checks" / name).read_text())
    (root / "tools" / "release.py").write_text((ROOT / "tools" / "release.py").read_text())
    (root / "checks" / "topics.py").write_text('TOPICS = {"toy": "notebooks/t.ipynb", "other": "notebooks/o.ipynb"}\n')
    (root / "checks" / "toy.py").write_text(TOY_CHECKS)
    (root / "checks" / "other.py").write_text(OTHER_CHECKS)
    (root / "helpers" / "__init__.py").write_text("")
    (root / "helpers" / "model.py").write_text(TOY_MODEL)
    (root / "helpers" / "toy.py").write_text(TOY_SOLUTION)
    (root / "helpers" / "other.py").write_text(OTHER_SOLUTION)
    (root / "points.toml").write_text(TOY_POINTS)
    x = torch.linspace(-1, 1, 12).view(4, 3)
    weight, bias = torch.arange(9.0).view(3, 3) / 10, torch.full((3,), 0.5)
    torch.save({"meta": {}, "cases": {"scale": {"inputs": {"x": x}, "output": (x @ weight.T + bias) * 2},
                                      "square": {"inputs": {"x": x}, "output": x * x}}},
               root / "checks" / "references" / "toy.pt")
    torch.save({"meta": {}, "cases": {"negate": {"inputs": {"x": x}, "output": -x}}},
               root / "checks" / "references" / "other.pt")
    return root


def toy_submission(folder: Path, toy: str | None = TOY_SOLUTION, other: str | None = OTHER_SOLUTION) -> Path:
    """A submission folder with helpers/toy.py and helpers/other.py (None: leave that file out)."""
    (folder / "helpers").mkdir(parents=True)
    if toy is not None:
        (folder / "helpers" / "toy.py").write_text(toy)
    if other is not None:
        (folder / "helpers" / "other.py").write_text(other)
    return folder


def with_scale(body: str) -> str:
    """The toy solution with scale's body replaced by ``body`` (indented for the function)."""
    head, rest = TOY_SOLUTION.split("    # TODO START scale\n")
    _, tail = rest.split("    # TODO END scale\n")
    return head + textwrap.indent(textwrap.dedent(body), "    ") + tail


# One robustness case per entry: (toy module source, passes of (scale, square), status of scale, words in
# scale's verdict). ``other`` is always correct, and must always earn its 1.5 points.
TOY_CASES = {
    "correct": (TOY_SOLUTION, (True, True), "pass", ""),
    "exception": (with_scale("raise ValueError('boom')"), (False, True), "exception", "raised ValueError: boom"),
    "infinite_loop": (with_scale("while True:\n    pass"), (False, True), "timeout", "did not finish within"),
    "sleeps_in_c": (with_scale("import time\ntime.sleep(1000)"), (False, True), "timeout", "did not finish"),
    "os_exit": (with_scale("import os\nos._exit(3)"), (False, True), "crashed", "exit code 3"),
    "sys_exit": (with_scale("import sys\nsys.exit(1)"), (False, True), "exception", "sys.exit"),
    "segfault": (with_scale("import ctypes\nctypes.string_at(0)"), (False, True), "crashed", "SIGSEGV"),
    "wrong_shape": (with_scale("return (model(x) * 2)[None]"), (False, True), "fail", "shape (1, 4, 3)"),
    "wrong_dtype": (with_scale("return (model(x) * 2).double()"), (False, True), "fail", "dtype float64"),
    "nan": (with_scale("return model(x) * float('nan')"), (False, True), "fail", "NaN"),
    "wrong_values": (with_scale("return model(x) * 3"), (False, True), "fail", "worst element"),
    "huge_print": (with_scale("print('x' * 5_000_000)\nreturn model(x) * 2"), (True, True), "pass", ""),
    "prints_forever": (with_scale("while True:\n    print('spam ' * 100)"), (False, True), "timeout", ""),
    "writes_reference": (with_scale(
        "from pathlib import Path\nimport torch\n"
        "ref = Path(__file__).parents[1] / 'checks' / 'references' / 'toy.pt'\n"
        "data = torch.load(ref)\ndata['cases']['square']['output'] = x * 0\ntorch.save(data, ref)\n"
        "return model(x) * 2"), (False, True), "kit_write", "checks/references/toy.pt modified"),
    "writes_file_next_to_helpers": (with_scale(
        "from pathlib import Path\n(Path(__file__).parent / 'notes.txt').write_text('hi')\nreturn model(x) * 2"),
        (False, True), "kit_write", "helpers/notes.txt added"),
    "writes_in_cwd": (with_scale(
        "from pathlib import Path\nPath('scratch.txt').write_text('ok')\nreturn model(x) * 2"),
        (True, True), "pass", ""),
    "patches_checks": (TOY_SOLUTION.replace("import torch\n", "import torch\nimport checks.core\n"
                       "checks.core.compare = lambda *a, **k: None\n", 1), (False, False), "tampered",
                       "replaced part of the checking code"),
    "changes_model": (with_scale("out = model(x) * 2\nmodel.weight.data.zero_()\nreturn out"), (False, True), "model_changed",
                      "weights were changed"),
    "syntax_error": (TOY_SOLUTION.replace("return x * x", "return x *"), (False, False), "import_error",
                     "SyntaxError"),
    "import_error": ("import no_such_module_anywhere\n" + TOY_SOLUTION, (False, False), "import_error",
                     "ModuleNotFoundError"),
    "loops_at_import": ("while True:\n    pass\n" + TOY_SOLUTION, (False, False), "timeout", "importing"),
    "stub": (None, (False, False), "not_implemented", "not implemented yet"),
    "missing": (None, (False, False), "missing", "missing from the submission"),
}


@pytest.fixture(scope="module")
def toy_kit(tmp_path_factory) -> Path:
    return make_toy_kit(tmp_path_factory.mktemp("toykit"))


@pytest.fixture(scope="module")
def toy_graded(toy_kit, tmp_path_factory):
    """Every TOY_CASES submission graded in one batch (a folder of submission folders)."""
    classroom = tmp_path_factory.mktemp("classroom")
    for name, (source, _, _, _) in TOY_CASES.items():
        if name == "stub":
            source = stub_source(TOY_SOLUTION, "helpers/toy.py")
        toy_submission(classroom / name, toy=source)
    graded = grade([classroom], kit_root=toy_kit, points_file=toy_kit / "points.toml", jobs=2, timeout=5)
    return {g.name: g for g in graded}


@pytest.mark.parametrize("case", list(TOY_CASES))
def test_toy_case_gets_clear_verdict_and_partial_credit(toy_graded, case):
    _, (scale_ok, square_ok), status, words = TOY_CASES[case]
    graded = toy_graded[case]
    by_check = {r.check: r for r in graded.results}
    assert [q.name for q in graded.questions] == ["toy/scale", "toy/square", "other/negate"]
    assert by_check["scale"].passed is scale_ok, by_check["scale"].line
    assert by_check["square"].passed is square_ok, by_check["square"].line
    assert by_check["negate"].passed, by_check["negate"].line
    assert by_check["scale"].status == status, by_check["scale"].line
    assert words in by_check["scale"].line
    line = by_check["scale"].line
    assert line.startswith(("PASS scale:", "FAIL scale:")) and "\n" not in line
    assert graded.score == 3 * scale_ok + 2 * square_ok + 1.5


def test_huge_output_is_capped(toy_graded):
    result = toy_graded["huge_print"].results[0]
    assert result.passed
    assert 0 < len(result.output) <= 8_000
    assert result.output_dropped >= 5_000_000 - 8_000
    assert "more characters of printed output not shown" in gradescope_dict(toy_graded["huge_print"])["tests"][0]["output"]


def test_reference_forgery_does_not_leak_into_later_checks(toy_graded):
    # scale rewrote square's reference to zeros; square must still be judged against the real one.
    square = toy_graded["writes_reference"].results[1]
    assert square.passed and square.line.startswith("PASS square")


def test_submission_checks_and_references_are_ignored(toy_kit, tmp_path):
    """A submission carrying its own always-passing checks/ and forged references gains nothing."""
    sub = toy_submission(tmp_path / "cheat", toy=with_scale("return x"))
    (sub / "checks" / "references").mkdir(parents=True)
    (sub / "checks" / "toy.py").write_text(TOY_CHECKS.replace("model=model))", "model=model)) or True"))
    (sub / "helpers" / "model.py").write_text("def load_model(device=None):\n    raise SystemExit\n")
    (graded,) = grade([sub], kit_root=toy_kit, points_file=toy_kit / "points.toml", jobs=1, timeout=8)
    assert [r.passed for r in graded.results] == [False, True, True]
    assert graded.score == 3.5


def test_writes_into_the_instructors_own_kit_are_reported(toy_kit, tmp_path):
    target = toy_kit / "datasets" / "data.txt"
    sub = toy_submission(tmp_path / "sneaky", toy=with_scale(
        f"from pathlib import Path\nPath({str(target)!r}).write_text('changed')\nreturn model(x) * 2"))
    (graded,) = grade([sub], kit_root=toy_kit, points_file=toy_kit / "points.toml", jobs=1, timeout=8)
    assert any("instructor's kit itself changed" in w and "datasets/data.txt" in w for w in graded.warnings)
    assert "instructor's kit itself changed" in table(graded)


def test_zip_submission_nested_folder(toy_kit, tmp_path):
    folder = toy_submission(tmp_path / "src" / "my-kit")
    archive = tmp_path / "alice.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            zf.write(path, Path("alice_submission") / path.relative_to(folder.parent))
        zf.writestr("__MACOSX/alice_submission/my-kit/helpers/toy.py", "garbage(")
        zf.writestr("../escape.py", "print('outside')")
    (graded,) = grade([archive], kit_root=toy_kit, points_file=toy_kit / "points.toml", jobs=2, timeout=8)
    assert graded.name == "alice"
    assert graded.score == graded.max_score == 6.5
    assert not (tmp_path / "escape.py").exists()


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


def test_not_a_submission_and_empty_folder(toy_kit, tmp_path):
    (tmp_path / "empty").mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not code")
    graded = grade([tmp_path / "empty", text], kit_root=toy_kit, points_file=toy_kit / "points.toml", jobs=2)
    assert [g.score for g in graded] == [0, 0]
    assert all(r.status == "missing" for g in graded for r in g.results)
    assert "neither a folder nor a .zip" in graded[1].warnings[0]


def test_reports_and_roster(toy_graded, tmp_path):
    batch = [toy_graded["correct"], toy_graded["infinite_loop"]]
    folder = write_reports(batch[1], tmp_path)
    results = json.loads((folder / "results.json").read_text())
    assert results["score"] == 3.5
    assert [(t["name"], t["score"], t["max_score"]) for t in results["tests"]] == [
        ("toy/scale", 0.0, 3.0), ("toy/square", 2.0, 2.0), ("other/negate", 1.5, 1.5)]
    assert results["tests"][0]["output"].startswith("FAIL scale: did not finish within 5 s")
    report = json.loads((folder / "report.json").read_text())
    assert report["questions"][0]["status"] == "timeout" and report["max_score"] == 6.5
    roster = write_roster(batch, tmp_path / "roster.csv")
    rows = list(csv.DictReader(roster.open()))
    assert [(r["submission"], r["score"], r["toy/scale"]) for r in rows] == [("correct", "6.5", "3"),
                                                                           ("infinite_loop", "3.5", "0")]
    assert rows[1]["problems"] == "timeout: toy/scale"
    write_roster([toy_graded["syntax_error"]], tmp_path / "r2.csv")
    assert list(csv.DictReader((tmp_path / "r2.csv").open()))[0]["problems"] == "import_error: toy/*"
    text = table(batch[1])
    assert "toy/scale" in text and "0 / 3" in text and "3.5 / 6.5" in text
    assert report_dict(batch[0])["score"] == 6.5


def test_points_file_errors(tmp_path):
    bad = tmp_path / "points.toml"
    bad.write_text("[toy]\nscale = -1\n")
    with pytest.raises(PointsError, match="must be a number"):
        load_points(bad)
    bad.write_text("[toyy]\nscale = 1\n")
    with pytest.raises(PointsError, match="not a topic"):
        load_points(bad, topics=["toy"])
    bad.write_text("[toy\n")
    with pytest.raises(PointsError, match="cannot read"):
        load_points(bad)


def test_unknown_check_in_points_is_a_grader_error_and_unlisted_checks_warn(toy_kit, tmp_path):
    points = tmp_path / "points.toml"
    points.write_text("[toy]\nscale = 1\nsquaer = 1\n")
    (graded,) = grade([toy_submission(tmp_path / "s")], kit_root=toy_kit, points_file=points, jobs=1)
    assert [r.status for r in graded.results] == ["pass", "grader_error"]
    assert any("square" in w for w in graded.warnings)


# ------------------------------------------------------------------------------------------------ the corpus
# Broken copies of the real solutions (tests/submissions/cases.toml), graded with the real checks and model.
# A case is graded on the topics its edits touch; the other topics hold the untouched solutions, which the
# "correct" case shows earn every point.

CASES = mutate.load_cases()
CORPUS_TIMEOUT = 40  # s per check: several times the slowest real check on a loaded 2-core machine


def _questions():
    from grader.workspace import topics_of

    return load_points(ROOT / "grader" / "points.toml", topics_of(ROOT))


@pytest.fixture(scope="module")
def corpus_graded(tmp_path_factory):
    from grader.workspace import topics_of

    topics = list(topics_of(ROOT))
    graded_topics = {q.topic for q in _questions()}
    folder = tmp_path_factory.mktemp("corpus")
    groups: dict[tuple, list[Path]] = {}
    for case in CASES:
        path = mutate.build(case, ROOT, folder, topics)
        key = tuple(t for t in mutate.topics_touched(case, topics) if t in graded_topics)
        groups.setdefault(key, []).append(path)
    graded = {}
    for key, paths in groups.items():
        for g in grade(paths, only_topics=set(key), jobs=2, timeout=CORPUS_TIMEOUT):
            graded[g.name] = g
    return graded


def test_corpus_size_and_points_cover_every_check():
    broken = [c for c in CASES if c["fail"]]
    assert len(broken) >= 12 and any(not c["fail"] for c in CASES)
    assert len({c["name"] for c in CASES}) == len(CASES)
    import importlib

    from grader.workspace import topics_of

    questions = _questions()
    for topic in topics_of(ROOT):
        names = list(importlib.import_module(f"checks.{topic}").CHECKS)
        assert [q.check for q in questions if q.topic == topic] == names, f"grader/points.toml vs checks/{topic}.py"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case_exact_score(corpus_graded, case):
    questions = _questions()
    graded = corpus_graded[case["name"]]
    got = {q.name: r for q, r in zip(graded.questions, graded.results)}
    expected_fail = set(case["fail"])
    assert expected_fail <= set(got), "a check listed in 'fail' was not graded"
    wrong = {name: r.line for name, r in got.items() if r.passed == (name in expected_fail)}
    assert not wrong, f"{case['name']}: checks whose verdict differs from cases.toml: {wrong}"
    ungraded = sum(q.points for q in questions if q.name not in got)  # untouched topics: all pass
    derived = sum(q.points for q in questions if q.name not in expected_fail)
    assert derived == case["score"], f"grader/points.toml changed: set score = {derived:g} for {case['name']}"
    assert graded.score + ungraded == case["score"]
    for name, words in case.get("words", {}).items():
        assert words in got[name].line, got[name].line
    for name, status in case.get("status", {}).items():
        assert got[name].status == status, got[name].line
    for name, text in case.get("printed", {}).items():
        assert got[name].output.startswith(text) and got[name].output_dropped > 0
    for r in got.values():
        assert r.line.startswith(("PASS ", "FAIL ")) and "\n" not in r.line


def test_command_line_writes_reports_roster_and_gradescope_file(toy_kit, tmp_path, capsys):
    from grader.__main__ import main

    sub = toy_submission(tmp_path / "bob", toy=with_scale("return model(x) * 3"))
    out, gradescope = tmp_path / "grades", tmp_path / "gs" / "results.json"
    code = main([str(sub), "--kit", str(toy_kit), "--points", str(toy_kit / "points.toml"), "--out", str(out),
                 "--jobs", "1", "--gradescope", str(gradescope)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "toy/scale" in printed and "3.5 / 6.5" in printed
    assert json.loads(gradescope.read_text())["score"] == 3.5
    assert (out / "bob" / "report.json").is_file() and (out / "roster.csv").is_file()


def test_prepare_puts_only_the_students_topic_modules_into_the_instructors_kit(toy_kit, tmp_path):
    from grader.__main__ import main

    sub = toy_submission(tmp_path / "carol", toy=with_scale("return x"), other=None)
    (sub / "helpers" / "model.py").write_text("raise SystemExit('forged model')\n")
    dest = tmp_path / "prepared"
    assert main([str(sub), "--kit", str(toy_kit), "--prepare", str(dest)]) == 0
    assert (dest / "helpers" / "toy.py").read_text() == (sub / "helpers" / "toy.py").read_text()
    assert (dest / "helpers" / "model.py").read_text() == (toy_kit / "helpers" / "model.py").read_text()
    assert "NotImplementedError" in (dest / "helpers" / "other.py").read_text()  # missing: the stub
    assert (dest / "checks" / "references" / "toy.pt").is_file()
