"""Contracts complete in what a student reads: every kit name a solution uses inside its TODO block (a method
or field of an object the kit hands it, such as ``history.record`` or ``settings.tv_weight``) is named in the
student's own file (the stubbed one: its docstrings and guidance) or in the topic's notebook, so no student has
to read the kit library to finish an exercise."""
import ast
import json
from pathlib import Path

import pytest

from checks.child.specs import TOPICS
from tools.release import find_blocks, stub_source

ROOT = Path(__file__).resolve().parents[1]


def _kit_imports(tree: ast.Module) -> set[str]:
    """Names the module binds from the kit library (``from convlens... import X``)."""
    return {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.module
            and n.module.split(".")[0] == "convlens" for a in n.names}


def kit_names_used(topic: str) -> list[tuple[str, str]]:
    """(block label, "object.attribute") for each attribute a TODO block's solution takes of a kit object: a
    local made by calling a kit name before the block, or a parameter annotated with a kit type."""
    text = (ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8")
    tree = ast.parse(text)
    kit = _kit_imports(tree)
    found = []
    for block in find_blocks(text):
        lines = range(block.start + 1, block.end)
        function = next(f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                        and f.lineno <= block.start <= f.end_lineno)
        objects = {a.arg for a in function.args.args + function.args.kwonlyargs
                   if a.annotation is not None and any(isinstance(n, ast.Name) and n.id in kit
                                                       for n in ast.walk(a.annotation))}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and node.lineno < block.start and isinstance(node.value, ast.Call) \
                    and isinstance(node.value.func, ast.Name) and node.value.func.id in kit:
                objects |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and getattr(node, "lineno", 0) in lines \
                    and isinstance(node.value, ast.Name) and node.value.id in objects:
                found.append((block.label, f"{node.value.id}.{node.attr}"))
    return sorted(set(found))


def _notebook_text(topic: str) -> str:
    number = list(TOPICS).index(topic) + 1
    (path,) = ROOT.glob(f"notebooks/{number}_*.ipynb")
    return "\n".join("".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"])


@pytest.mark.parametrize("topic", list(TOPICS))
def test_every_kit_name_a_solution_uses_is_named_where_the_student_reads(topic):
    student = stub_source((ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8"), f"helpers/{topic}.py")
    readable = student + _notebook_text(topic)
    missing = [(label, name) for label, name in kit_names_used(topic) if name not in readable]
    assert not missing, f"kit names a solution uses that the student's file and notebook never name: {missing}"


def test_the_instrument_finds_the_kit_names_of_the_loop():
    assert ("style_transfer", "history.record") in kit_names_used("style")
    assert ("style_transfer", "settings.content_weight") in kit_names_used("style")
