"""Texts that cite printed numbers say what the executed notebooks print, and run times have one source (the
README's table; bench/bench_threads.py prints it beside the measured times)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.run_notebooks import execute

ROOT = Path(__file__).resolve().parents[1]


def _printed(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    runs = {}
    for name in ("2_gradcam.ipynb", "3_fooling_and_class_images.ipynb"):
        ok, _, _ = execute(ROOT / "notebooks" / name, out)
        assert ok, name
        runs[name] = _printed(nbformat.read(out / name, as_version=4))
    return runs


def test_only_the_readme_states_run_times():
    table = re.findall(r"^\| `(\d_\w+)` \|[^|]*\| about (\d+) s \|$", (ROOT / "README.md").read_text(), re.M)
    assert [name for name, _ in table] == [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):  # the introductions point there instead
        intro = nbformat.read(path, as_version=4).cells[0].source
        assert not re.search(r"\b(about|in) (a|one|two|\d+) (minute|second)s?\b", intro), path.name
        assert "README" in intro, path.name


@pytest.mark.slow
def test_the_fooling_question_cites_the_table_right(executed):
    rows = re.findall(r"^\w+\s+.+?\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+yes$", executed["3_fooling_and_class_images.ipynb"],
                      re.M)
    assert len(rows) == 16
    rms = [float(l2) / (3 * 128 * 128) ** 0.5 for _, l2, _ in rows]
    linf = [float(v) for _, _, v in rows]
    assert 0.005 <= min(rms) and max(rms) <= 6.5 / 255, "2 to 6 grey levels on average"
    assert 0.08 <= min(linf) and max(linf) <= 0.26, "0.1 to 0.25 at the most-changed value"


@pytest.mark.slow
def test_the_attack_text_cites_the_table_right(executed):
    rates = dict(re.findall(r"^\s*([\d.]+)/255\s+\d+%\s+(\d+)%$", executed["3_fooling_and_class_images.ipynb"], re.M))
    assert int(rates["1.00"]) >= 90, "one grey level fools the model on almost every photo"
    assert int(rates["0.25"]) >= 50, "a quarter of a grey level already on most of them"


@pytest.mark.slow
def test_the_conductance_text_cites_the_sums_right(executed):
    text = executed["2_gradcam.ipynb"]
    gap = float(re.search(r"score gap y\(x\) - y\(black\) = ([-\d.]+)", text)[1])
    sums = dict(re.findall(r"^(\w+)\s+\(.*?\)\s+conductance sum\s+([-\d.]+)$", text, re.M))
    assert abs(float(sums["head"]) - gap) <= 0.015 * abs(gap), "the head comes within about one percent"
    assert abs(float(sums["block10"]) - gap) >= 0.2 * abs(gap), "the inner layer is far off"
