"""Hidden cases decide: a submission that knows every shipped answer gets the public values right (their
gradients give it away) and earns nothing from the grader; a case an instructor adds to an exercise's record is
graded once ``kit.py references`` has rebuilt the files.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mutate  # tests/submissions/mutate.py (on the path by pytest.ini)
import pytest
import torch

from checks import check
from checks.judge import references
from checks.child.compute import _decode, compute_case
from checks.judge import run_check
from checks.child.specs import SPECS, TOPICS
from grader.grade import grade

ROOT = Path(__file__).resolve().parents[1]
LIMITS = {"cpu_scale": 3, "cpu_floor": 5}
LOOKED_UP = ("content_loss", "gram_matrix", "style_loss", "tv_loss")

FINGERPRINT = '''
def _fingerprint(*args, **kwargs):
    """A call's arguments in a few characters: the sum of every value in them, and the keyword flags."""
    total = 0.0
    todo = [args, kwargs]
    while todo:
        value = todo.pop()
        if isinstance(value, torch.Tensor):
            total += float(value.double().sum())
        elif isinstance(value, dict):
            todo += list(value.values())
        elif isinstance(value, (list, tuple)):
            todo += list(value)
        elif isinstance(value, (int, float)):
            total += float(value)
    flags = sorted((k, v) for k, v in kwargs.items() if isinstance(v, (bool, int, float, str)))
    return f"{total:.6g} {flags}"
'''


def lookup_source() -> str:
    """helpers/style.py whose loss functions return the shipped public answers for the shipped
    inputs (a table in the source) and zeros for anything else."""
    namespace = {"torch": torch}
    exec(FINGERPRINT, namespace)
    table = {}
    for case in references.load(references.REFERENCES_DIR / "style.pt")["cases"]:
        if case["check"] in LOOKED_UP:
            args = [_decode(v, None, case["inputs"], torch.device("cpu")) for v in case["args"]]
            kwargs = {k: _decode(v, None, case["inputs"], torch.device("cpu"))
                      for k, v in case.get("kwargs", {}).items()}
            table[namespace["_fingerprint"](*args, **kwargs)] = case["output"]["output"].tolist()
    source = (ROOT / "helpers" / "style.py").read_text()
    source += "\n" + FINGERPRINT + f"\n_ANSWERS = {table!r}\n"
    for name in LOOKED_UP:
        # The answer is tied to the inputs by a zero term, so that it carries their gradient as a loss must.
        source += (f"\n\ndef {name}(*args, **kwargs):\n    key = _fingerprint(*args, **kwargs)\n"
                   "    value = torch.tensor(_ANSWERS[key]) if key in _ANSWERS else torch.zeros(())\n"
                   "    flat = [a for a in args if isinstance(a, torch.Tensor)] + [t for a in args if isinstance(a, list)\n"
                   "                                                          for t in a if isinstance(t, torch.Tensor)]\n"
                   "    return value + sum(0 * t.sum() for t in flat)\n")
    return source


@pytest.fixture(scope="module")
def lookup(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lookup") / "memorizer"
    (folder / "helpers").mkdir(parents=True)
    (folder / "helpers" / "style.py").write_text(lookup_source())
    return folder


def test_memorized_public_answers_fail_the_public_checks_through_their_gradient(lookup):
    """Every shipped value is right, but a table has no gradient: the public checks compare the loss's
    gradient with respect to what the optimizer changes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("memorized", lookup / "helpers" / "style.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in LOOKED_UP:
        verdict = check(name, module=module, quiet=True)
        assert not verdict.passed and "the value is right, but its gradient" in verdict.line, verdict.line


@pytest.mark.parametrize("public", [False, True])
def test_memorized_public_answers_earn_nothing_from_the_grader(lookup, public):
    (graded,) = grade([lookup], only_topics={"style"}, jobs=1, public_cases=public, log=lambda *a: None,
                      **LIMITS)
    by_check = {r.check: r for r in graded.results}
    for name in LOOKED_UP:
        assert not by_check[name].passed, by_check[name].line
    assert by_check["style_transfer"].passed  # the reference loop, untouched
    public_count = len(references.public_cases("tv_loss", "style"))
    hidden_count = len([c for c in references.load(ROOT / "grader" / "hidden" / "style.pt")["cases"]
                        if c["check"] == "tv_loss"])
    assert by_check["tv_loss"].cases == hidden_count + public * public_count


NEW_CASE = '''
[[case]]
hidden = true
label = "tv_weight=0"
photos = ["flower"]
size = 32
weight = 0.0
'''


@pytest.mark.slow
def test_a_case_added_to_a_record_is_graded_after_kit_py_references(tmp_path):
    """The one documented place: a [[case]] in the exercise's record (tools/exercises/tv_loss.toml), then
    ``kit.py references`` (here on a copy of the kit). A tv_loss that is wrong only when the weight is 0 passes every existing case and fails the
    new one, by its label."""
    kit = tmp_path / "kit"
    for part in ("checks", "convlens", "helpers", "datasets", "grader", "tools"):  # grader: hidden cases, term seed
        shutil.copytree(ROOT / part, kit / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "kit.py", kit / "kit.py")
    shutil.copyfile(ROOT / "requirements.txt", kit / "requirements.txt")
    case = {"name": "zero_weight", "edit": [{"file": "style", "wrap": "tv_loss",
                                            "code": "if args[1] == 0:\n    return args[0].sum() * 0 + 1.0\n"
                                                    "return original(*args, **kwargs)"}]}
    sub = mutate.build(case, ROOT, tmp_path, list(TOPICS))
    module = _load(sub / "helpers" / "style.py")
    cases = [c for c in references.load(ROOT / "grader" / "hidden" / "style.pt")["cases"]
             if c["check"] == "tv_loss"]
    assert run_check(SPECS["tv_loss"], cases, lambda case: compute_case(SPECS["tv_loss"], module, case)).passed  # the existing hidden cases do not see it

    with open(kit / "tools" / "exercises" / "tv_loss.toml", "a", encoding="utf-8") as f:
        f.write(NEW_CASE)
    built = subprocess.run([sys.executable, "kit.py", "references", "style"], cwd=kit, capture_output=True,
                           text=True, env={**os.environ, "CONVLENS_PYTHON": sys.executable})
    assert built.returncode == 0, built.stdout + built.stderr
    hidden = references.load(kit / "grader" / "hidden" / "style.pt")["cases"]
    public = references.load(kit / "checks" / "references" / "style.pt")["cases"]
    assert [c["label"] for c in hidden if c["check"] == "tv_loss"][-1] == "tv_weight=0"
    assert "tv_weight=0" not in [c["label"] for c in public]

    (graded,) = grade([sub], kit_root=kit, only_topics={"style"}, jobs=1, log=lambda *a: None, **LIMITS)
    tv = next(r for r in graded.results if r.check == "tv_loss")
    assert not tv.passed and tv.line.startswith("FAIL tv_loss: tv_weight=0: "), tv.line
    assert tv.cases == len(cases) + 1
    assert graded.score == graded.max_score - 2


def _load(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"sub_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
