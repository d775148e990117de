"""The notebooks' prose says only what it shows (tools/prose.py): every number is a setting, a claim bound to
the output, a cited fact, or structure; every description of a figure is measured or asked; the main path is
short; the lists of exercises match the specs."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from checks.child.specs import TOPICS, checks_of
from tools import claims, prose

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = prose.notebooks()
TOPIC_OF = {Path(path).name: topic for topic, path in TOPICS.items()}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_and_description_is_accounted_for(path):
    findings, _ = prose.read(path)
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_main_path_is_at_most_2000_words(path):
    _, words = prose.read(path)
    assert words <= 2000, f"{path.name}: {words} words of prose outside optional sections, hints and answers"


def _planted(path: Path, tmp_path: Path, text: str, where: int | None = None) -> list:
    nb = nbformat.read(path, as_version=4)
    index = where if where is not None else next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                                                 and c.source.startswith("## Exercise"))
    nb.cells[index].source += "\n\n" + text
    copy = tmp_path / path.name
    nbformat.write(nb, copy)
    return prose.read(copy, claims.registry(path))[0]


@pytest.mark.parametrize("text, kind", [
    ("On this photo the map puts 73 % of its mass on the cat.", "number"),
    ("Seventeen photos ship with the kit, and the network names nine of them.", "number"),
    ("The loss map is sharper than the score map.", "description"),
    ("Integrated Gradients wins on deletion.", "description"),
])
def test_a_planted_unaccounted_sentence_is_found(tmp_path, text, kind):
    findings = _planted(NOTEBOOKS[0], tmp_path, text)
    assert [f for f in findings if f.kind == kind], findings


@pytest.mark.parametrize("text", [
    "Is the loss map sharper than the score map?",          # asked, not claimed
    "The gradient is $\\nabla s_{y}$ at $x + 0.5\\,\\delta$.",  # a formula
    "(Simonyan et al., 2014) and Exercise 2 say so.",         # a citation and a reference
])
def test_questions_formulas_and_citations_need_no_claim(tmp_path, text):
    assert not _planted(NOTEBOOKS[0], tmp_path, text)


def test_a_setting_whose_library_value_changed_fails(tmp_path):
    registry = claims.registry(NOTEBOOKS[0])
    setting = dict(registry["setting"][0])
    setting["value"] = setting["value"] + 1
    with pytest.raises(ValueError, match="setting"):
        prose.read(NOTEBOOKS[0], {**registry, "setting": [setting]})


def test_a_fact_needs_a_source(tmp_path):
    registry = claims.registry(NOTEBOOKS[0])
    fact = {**registry["fact"][0], "source": ""}
    findings, _ = prose.read(NOTEBOOKS[0], {**registry, "fact": [fact]})
    assert [f for f in findings if f.text == "1000"], findings


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`(\w+)`", text))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_intro_names_exactly_the_notebooks_exercises(path):
    topic = TOPIC_OF[path.name]
    intro = nbformat.read(path, as_version=4).cells[0].source
    exercises = set(checks_of(topic))
    named = _backticked(intro) & set(spec for t in TOPICS for spec in checks_of(t))
    assert named == exercises, f"{path.name}: the introduction names {sorted(named)}, the specs {sorted(exercises)}"
    assert f"helpers/{topic}.py" in intro


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_has_one_check_cell(path):
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    called = [m for c in cells for m in re.findall(r'^check\("(\w+)"\)', c, re.M)]
    assert called == checks_of(TOPIC_OF[path.name])


def test_the_readme_table_lists_each_notebooks_file_and_exercises():
    rows = re.findall(r"^\| `(\d_\w+)` \| `(\w+)\.py`: ([^|]*) \|", (ROOT / "README.md").read_text(), re.M)
    assert [name for name, _, _ in rows] == [p.stem for p in NOTEBOOKS]
    for name, file, functions in rows:
        topic = TOPIC_OF[name + ".ipynb"]
        assert file == topic and (ROOT / "helpers" / f"{file}.py").is_file(), name
        assert re.findall(r"`(\w+)`", functions) == checks_of(topic), name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_printed_lines_are_never_said_to_be_under_a_figure(path):
    """A cell's printed lines appear above the figure it draws (the figure is shown when the cell ends)."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            assert not re.search(r"\b(lines?|numbers?|printed)\b[^.]{0,40}\b(under|below) (the|each|its) figure",
                                 cell.source), cell.source[:120]


MEASURED = re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|min|minutes|seconds|ms|GB|MB|GiB|MiB)\b")


def test_every_measured_number_in_the_readme_cites_its_bench():
    """A paragraph (or a table, through the paragraph that introduces it) stating a time or a size names the
    bench/ script that measures it."""
    blocks = re.split(r"\n\s*\n", (ROOT / "README.md").read_text())
    uncited = []
    for before, block in zip([""] + blocks, blocks):
        cited = "bench/" in block or (block.lstrip().startswith("|") and "bench/" in before)
        if MEASURED.search(block) and not cited:
            uncited.append(block[:200])
    assert not uncited, "\n----\n".join(uncited)
