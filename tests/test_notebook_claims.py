"""Texts that cite printed numbers say what the executed notebooks print: every number the prose cites is a
registered claim (notebooks/<name>.claims.toml, checked by tools/claims.py) or printed by the code itself. Run
times have one source (the README's table; bench/bench_threads.py prints it beside the measured times)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools import claims
from tools.run_notebooks import execute

ROOT = Path(__file__).resolve().parents[1]


def _printed(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """{notebook: (its markdown cells, everything it printed)} after running each top to bottom, as
    ``kit.py run`` does. The saved notebooks are kept (``saved``), and what the kernels wrote to this process's
    standard error (``kernel_stderr``)."""
    import os
    import tempfile

    out = tmp_path_factory.mktemp("claims")
    runs = {}
    with tempfile.TemporaryFile() as captured:  # the kernels inherit file descriptor 2
        saved_fd = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            for name in NOTEBOOKS:
                ok, _, _ = execute(ROOT / "notebooks" / name, out)
                assert ok, name
                nb = nbformat.read(out / name, as_version=4)
                runs[name] = ([c.source for c in nb.cells if c.cell_type == "markdown"], _printed(nb))
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        captured.seek(0)
        runs["kernel_stderr"] = captured.read().decode(errors="replace")
    runs["saved"] = {name: nbformat.read(out / name, as_version=4) for name in NOTEBOOKS}
    return runs


@pytest.mark.slow
def test_running_the_notebooks_prints_no_warning(executed):
    assert "WARNING" not in executed["kernel_stderr"] and "Warning" not in executed["kernel_stderr"], \
        executed["kernel_stderr"][-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_saved_notebook_reads_clean_without_a_kernel(executed, name):
    """No stderr output, no progress bar frozen at its first frame, no widget saved as its Python repr: a
    widget leaves a picture and one line."""
    for index, cell in enumerate(executed["saved"][name].cells):
        for output in cell.get("outputs", []):
            where = f"{name} cell {index}"
            assert not (output.get("output_type") == "stream" and output.get("name") == "stderr"), \
                f"{where}: {output.get('text', '')[:200]}"
            data = output.get("data", {})
            assert "application/vnd.jupyter.widget-view+json" not in data, where
            text = data.get("text/plain", "") + (output.get("text", "") if output.get("output_type") == "stream" else "")
            assert not re.search(r"\b0%\|", text) and "VBox(" not in text, f"{where}: {text[:200]}"
    explorer_cells = [c for c in executed["saved"][name].cells if "explorer(model" in c.source]
    for cell in explorer_cells:
        (shown,) = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert shown.data["text/plain"].startswith("explorer (interactive in a running notebook")


def test_every_notebook_has_its_claims_file():
    for name in NOTEBOOKS:
        assert claims.load(ROOT / "notebooks" / name), name


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_claim_is_contradicted_by_the_output(executed, name):
    cells, printed = executed[name]
    problems = [claims.check(claim, cells, printed) for claim in claims.load(ROOT / "notebooks" / name)]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_changing_a_cited_number_in_the_prose_fails_its_claim(executed, name):
    """Each claim can fail: the same output against prose whose first cited number was changed."""
    import re

    cells, printed = executed[name]
    for claim in claims.load(ROOT / "notebooks" / name):
        if not claim.get("values"):
            continue  # a claim without cited numbers: test_a_claim_the_output_does_not_show_fails
        (cell,) = [text for text in cells if claim["cell"] in text]
        cited = re.search(claim["prose"], cell, re.S)
        group = next(iter(claim["values"]))
        start, end = cited.span(group)
        changed = cell[:start] + str(float(cited.group(group)) * 3 + 7) + cell[end:]
        assert claims.check(claim, [changed if text is cell else text for text in cells], printed), claim


def test_only_the_readme_states_run_times():
    table = re.findall(r"^\| `(\d_\w+)` \|[^|]*\| about (\d+) s \|$", (ROOT / "README.md").read_text(), re.M)
    assert [name for name, _ in table] == [p.stem for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):  # the introductions point there instead
        intro = nbformat.read(path, as_version=4).cells[0].source
        assert not re.search(r"\b(about|in) (a|one|two|\d+) (minute|second)s?\b", intro), path.name
        assert "README" in intro, path.name


@pytest.mark.slow
def test_the_conductance_text_cites_the_sums_right(executed):
    text = executed["2_gradcam.ipynb"][1]
    gap = float(re.search(r"score gap y\(x\) - y\(black\) = ([-\d.]+)", text)[1])
    sums = dict(re.findall(r"^(\w+)\s+\(.*?\)\s+conductance sum\s+([-\d.]+)$", text, re.M))
    assert abs(float(sums["head"]) - gap) <= 0.015 * abs(gap), "the head comes within about one percent"
    assert abs(float(sums["block10"]) - gap) >= 0.2 * abs(gap), "the inner layer is far off"


def test_a_claim_the_output_does_not_show_fails():
    """A described comparison (``holds``) and a named neighbour (an ``output`` that must match) fail when the
    printed lines say otherwise."""
    cells = ["On deletion the first method wins."]
    ranked = {"cell": "On deletion", "prose": "first method wins", "output": r"^\w+ (?P<score>[\d.]+)$",
              "holds": "score[0] < min(score[1:])"}
    assert claims.check(ranked, cells, "a 0.1\nb 0.2\nc 0.3") == ""
    assert "does not show" in claims.check(ranked, cells, "a 0.4\nb 0.2\nc 0.3")
    named = {"cell": "On deletion", "prose": "first method", "output": "^grace_hopper -> astronaut"}
    assert claims.check(named, cells, "grace_hopper -> astronaut 0.6, coins 0.5") == ""
    assert "nothing printed matches" in claims.check(named, cells, "grace_hopper -> coins 0.5")
