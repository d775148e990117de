"""One path from a student's function to a verdict: the notebooks' ``check()`` (in-process), ``kit.py check``
(a child process per topic) and the grader (a sandboxed child, judged in the parent) print the same line for
the same submission. Compared on the stored mistakes (tools/exercises/): since each check replaces the
other exercises its function calls by stand-ins, one submission can carry one mistake of every function at
once, so the stored mistakes fit in a few rounds of submissions (test_the_rounds_carry_every_stored_mistake)."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checks import check
from checks.child.specs import SPECS, TOPICS
from tools import exercises
from tools.build_references import MistakeError, mutated_source

ROOT = Path(__file__).resolve().parents[1]


def _rounds() -> list[tuple[set, dict[str, str]]]:
    """Submissions as (checks with a mistake, {topic: source}), packing mistakes of different functions."""
    rounds: list[tuple[set, dict]] = []  # (checks carrying a mistake, topic -> source)
    for number, mistake in enumerate(exercises.mistakes()):
        topic = SPECS[mistake["check"]].topic
        for taken, sources in rounds + [(set(), {})]:
            if mistake["check"] in taken:
                continue
            try:
                text = mutated_source(topic, mistake["edit"], f"mistake {number}", sources.get(topic), mistake["check"])
            except MistakeError:
                continue
            if not taken:
                rounds.append((taken, sources))
            taken.add(mistake["check"])
            sources[topic] = text
            break
    return rounds


ROUNDS = _rounds()


def _submission(folder: Path, sources: dict[str, str]) -> Path:
    (folder / "helpers").mkdir(parents=True)
    for topic in TOPICS:
        text = sources.get(topic) or (ROOT / "helpers" / f"{topic}.py").read_text()
        (folder / "helpers" / f"{topic}.py").write_text(text)
    return folder


def _notebook_lines(sources: dict[str, str], folder: Path) -> dict[str, str]:
    import importlib.util

    lines = {}
    for topic in TOPICS:
        spec = importlib.util.spec_from_file_location(f"helpers.{topic}", folder / "helpers" / f"{topic}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name in SPECS:
            if SPECS[name].topic == topic:
                lines[name] = check(name, module=module, quiet=True).line
    return lines


def _cli_lines(folder: Path) -> dict[str, str]:
    kit = folder / "kit"
    for name in ("convlens", "checks"):
        shutil.copytree(ROOT / name, kit / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(folder / "helpers", kit / "helpers")
    shutil.copy2(ROOT / "helpers" / "__init__.py", kit / "helpers" / "__init__.py")
    env = {**os.environ, "CONVLENS_DEVICE": "cpu", "PYTHONPATH": str(kit)}
    out = subprocess.run([sys.executable, "-m", "checks.process.cli"], cwd=kit, env=env, capture_output=True, text=True,
                         timeout=1200).stdout
    return {line.split()[1].rstrip(":"): line for line in out.splitlines() if line.startswith(("PASS ", "FAIL "))}


def _compare(rounds: list[tuple[set, dict[str, str]]], tmp_path: Path, where: str = "") -> None:
    from grader.grade import grade

    folders = [_submission(tmp_path / f"round{i}", sources) for i, (_, sources) in enumerate(rounds)]
    graded = grade(folders, public_cases=True, jobs=2, log=lambda *a: None, cpu_scale=1000, cpu_floor=120)
    for folder, (taken, sources), result in zip(folders, rounds, graded):
        notebook = _notebook_lines(sources, folder)
        cli = _cli_lines(folder)
        grader = {r.check: r.line for r in result.results}
        assert set(notebook) == set(cli) == set(grader) == set(SPECS)
        differ = {name: (notebook[name], cli[name], grader[name]) for name in SPECS
                  if not notebook[name] == cli[name] == grader[name]}
        assert not differ, f"{folder.name}{where}: notebook / kit.py check / grader lines differ: {differ}"
        failed = {name for name, line in notebook.items() if line.startswith("FAIL")}
        assert failed == taken, f"{folder.name}{where}: the functions with a mistake fail, the others pass"


def test_the_rounds_carry_every_stored_mistake():
    assert sum(len(taken) for taken, _ in ROUNDS) == len(exercises.mistakes())
    assert len(ROUNDS) <= 17


@pytest.mark.slow
def test_first_round_same_line_on_every_path(tmp_path):
    _compare(ROUNDS[:1], tmp_path)


# Two later rounds are drawn afresh on each run (the first one always runs): every stored mistake's line is also
# compared with its cause by the fast tier, and what differs between the paths is the process boundary, which
# any round crosses. CONVLENS_PATH_ROUNDS=all compares every round; CONVLENS_PATH_SEED=N draws as a run did.
DRAWN_ROUNDS = os.environ.get("CONVLENS_PATH_ROUNDS", "2")
DRAW = int(os.environ.get("CONVLENS_PATH_SEED", random.SystemRandom().randrange(10**6)))


def drawn_rounds(rounds: list, count: str, seed: int) -> list:
    later = rounds[1:]
    if count == "all" or int(count) >= len(later):
        return later
    return [later[i] for i in sorted(random.Random(seed).sample(range(len(later)), int(count)))]


@pytest.mark.slow
def test_drawn_rounds_of_stored_mistakes_same_line_on_every_path(tmp_path):
    rounds = drawn_rounds(ROUNDS, DRAWN_ROUNDS, DRAW)
    print(f"comparing {len(rounds)} of {len(ROUNDS) - 1} later rounds (CONVLENS_PATH_SEED={DRAW})")
    _compare(rounds, tmp_path, f" (CONVLENS_PATH_SEED={DRAW})")


def test_the_drawn_rounds_change_with_the_seed():
    assert drawn_rounds(ROUNDS, "3", 1) == drawn_rounds(ROUNDS, "3", 1) != drawn_rounds(ROUNDS, "3", 2)
    assert len(drawn_rounds(ROUNDS, "3", 1)) == 3 and drawn_rounds(ROUNDS, "all", 1) == ROUNDS[1:]


def test_a_mistakes_edit_is_found_in_its_own_function_only():
    """Another exercise of the same file may hold the same text: a mistake's edit counts and changes only the
    text inside its own function."""
    from tools.build_references import MistakeError, mutated_source

    text = "def first(x):\n    total = x + 1\n    return total\n\n\ndef second(x):\n    total = x + 1\n    return -total\n"
    edit = [{"replace": "total = x + 1", "with": "total = x + 2"}]
    assert mutated_source("saliency", edit, "t", text, function="second") == text.replace(
        "    total = x + 1\n    return -total", "    total = x + 2\n    return -total")
    with pytest.raises(MistakeError, match="occurs 2 times in helpers/saliency.py"):
        mutated_source("saliency", edit, "t", text)
    with pytest.raises(MistakeError, match="occurs 0 times in first"):
        mutated_source("saliency", [{"replace": "-total", "with": "total"}], "t", text, function="first")
