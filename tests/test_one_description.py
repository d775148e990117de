"""One description per exercise: checks/specs.py says everything particular to an exercise's check, and no
other code of the kit branches on an exercise's name. A name may still appear as data (a case table, the
points file) or in prose; what may not appear outside the spec is the name as a string literal in code."""
import ast
from pathlib import Path

from checks.specs import SPECS, TOPICS

ROOT = Path(__file__).resolve().parents[1]
# The spec itself; the stand-ins it names (their table is keyed by the callee they replace).
DESCRIBES = {"checks/specs.py"}
CODE = ["kit.py", "checks", "grader", "tools", "convlens", "bench"]


def _code_files():
    for part in CODE:
        path = ROOT / part
        yield from ([path] if path.is_file() else sorted(path.rglob("*.py")))


def _literals(path: Path):
    """(line, text) of every string constant that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_code_outside_the_spec_names_an_exercise():
    names = set(SPECS)
    found = []
    for path in _code_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in DESCRIBES:
            continue
        for line, text in _literals(path):
            if text in names:
                found.append(f"{rel}:{line}: {text!r}")
    assert not found, "exercise names in code outside checks/specs.py:\n" + "\n".join(found)


def test_topics_and_functions_never_share_a_name():
    assert not set(TOPICS) & set(SPECS)


def test_the_scan_sees_a_branch_on_a_name(tmp_path):
    source = tmp_path / "branching.py"
    source.write_text('"""A docstring may say grad_cam."""\nif spec.name == "grad_cam":\n    pass\n')
    assert [text for _, text in _literals(source)] == ["grad_cam"]
