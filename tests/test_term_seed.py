"""Hidden cases drawn afresh from a term seed (``kit.py references --term-seed N``): the same seed draws the
same cases, another seed other inputs of the same kinds, the public cases never change, and the grader
refuses hidden cases drawn from a seed other than the one points.toml names."""
import shutil

import pytest

from checks.judge import references
from convlens.images import read_photo_table
from grader.grade import load_cases
from grader.points import load_points
from grader.run import GraderError
from tools import exercises
from tools.build_references import build, build_inputs, draw_hidden

CASES = exercises.cases()


def test_a_term_seed_draws_new_hidden_inputs_of_the_same_kinds():
    first, again, other = draw_hidden(CASES, 2027), draw_hidden(CASES, 2027), draw_hidden(CASES, 2028)
    assert first == again
    pool = {p.name for p in read_photo_table()}
    for case, drawn, elsewhere in zip(CASES, first, other):
        if not case.get("hidden"):
            assert drawn == case  # the shipped public cases stay as they are
            continue
        assert drawn.keys() == case.keys()
        same_kind = {k: v for k, v in case.items() if k not in ("photos", "style_photos", "seed", "targets",
                                                                  "jitter", "label")}
        assert same_kind.items() <= drawn.items()
        assert set(drawn.get("photos", [])) <= pool
        assert len(drawn.get("photos", [])) == len(case.get("photos", []))
    seeds = [draw_hidden(CASES, seed) for seed in (2028, 2029, 2030)]
    unchanged = [c["label"] for i, c in enumerate(first) if c.get("hidden") and all(s[i] == c for s in seeds)]
    assert unchanged == []
    noise = next(d for c, d in zip(CASES, first) if "init='noise', seed=" in c.get("label", ""))
    assert f"seed={noise['seed']})" in noise["label"]


def test_every_drawn_hidden_case_builds():
    for params in draw_hidden(CASES, 99):
        if params.get("hidden"):
            case = build_inputs(params)
            assert case["inputs"] or case["args"], params


@pytest.mark.slow
@pytest.mark.parametrize("topic", ["saliency", "gradcam", "fooling", "style"])
def test_the_solution_passes_its_drawn_hidden_cases(topic):
    public, hidden = build(topic, 2027, answers_only=True)  # raises if the solution fails one of its own cases
    shipped = references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"]
    assert [c["label"] for c in public] == [c["label"] for c in shipped]
    assert hidden and all("output" in c for c in hidden)


def test_the_grader_refuses_hidden_cases_of_another_term(tmp_path):
    kit = tmp_path / "kit"
    shutil.copytree(references.REFERENCES_DIR.parents[1] / "grader" / "hidden", kit / "grader" / "hidden")
    checks = [q.check for q in load_points().questions if q.topic == "gradcam"]
    assert load_cases(kit, checks, public=False, term_seed=None)
    with pytest.raises(GraderError, match=r"term seed None, but grading.term_seed in points.toml is 7; draw "
                                          r"them with: python3 kit.py references --term-seed 7"):
        load_cases(kit, checks, public=False, term_seed=7)


def test_points_toml_takes_a_whole_term_seed(tmp_path):
    text = (references.REFERENCES_DIR.parents[1] / "grader" / "points.toml").read_text()
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(text.replace("\n[grading]\n", "\n[grading]\nterm_seed = 2027\n"))
    bad.write_text(text.replace("\n[grading]\n", "\n[grading]\nterm_seed = 'spring'\n"))
    assert load_points(good).term_seed == 2027
    with pytest.raises(ValueError, match="term_seed = 'spring'; it must be a whole number"):
        load_points(bad)
