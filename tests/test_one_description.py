"""One description per exercise: its record (tools/exercises/<function>.toml) says everything particular to it
beyond its code, and no code of the kit branches on an exercise's name. A name may still appear as data (a
record, the points file) or in prose; what may not appear is the name as a string literal in code."""
import ast
import dataclasses
import json
from pathlib import Path

from checks.child import specs
from checks.child.specs import SPECS, TOPICS
from tools import claims, exercises

ROOT = Path(__file__).resolve().parents[1]
# The stand-ins' table is keyed by the callee each replaces.
DESCRIBES = {"checks/child/fixtures.py"}
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
    assert not found, "exercise names in code:\n" + "\n".join(found)


def test_the_specs_the_kit_reads_are_the_records_as_written():
    """checks/child/specs.json (what the child, the judge, the grader and the student kit read) is the records'
    [check] tables, in notebook order; after editing a record, ``kit.py references`` rewrites it."""
    assert json.loads(specs.SPECS_FILE.read_text(encoding="utf-8")) == exercises.spec_table(), \
        "checks/child/specs.json is not the records' [check] tables: run python3 kit.py references"
    assert list(SPECS) == list(exercises.records())
    for name, record in exercises.records().items():
        assert set(record) <= {"check", "case", "mistake", "variant", *claims.KINDS}, name
        unknown = set(record["check"]) - {f.name for f in dataclasses.fields(specs.Spec)}
        assert not unknown, f"tools/exercises/{name}.toml: unknown [check] field(s) {unknown}"
        assert any(c.get("hidden") for c in record["case"]) and any(not c.get("hidden") for c in record["case"]), name


def test_every_name_a_record_gives_is_a_function_the_kit_has():
    from tools import inputs

    for name, spec in SPECS.items():
        assert callable(getattr(inputs, spec.inputs, None)) and not spec.inputs.startswith("_"), name
        module = ast.parse((ROOT / "helpers" / f"{spec.topic}.py").read_text(encoding="utf-8"))
        assert name in {node.name for node in module.body if isinstance(node, ast.FunctionDef)}, name


def test_topics_and_functions_never_share_a_name():
    assert not set(TOPICS) & set(SPECS)


def test_the_scan_sees_a_branch_on_a_name(tmp_path):
    source = tmp_path / "branching.py"
    source.write_text('"""A docstring may say grad_cam."""\nif spec.name == "grad_cam":\n    pass\n')
    assert [text for _, text in _literals(source)] == ["grad_cam"]


# The one place per kind of entry point that puts the kit's root on sys.path (CONTRIBUTING.md says why each).
PATH_SET_UPS = {"bench/_common.py", "notebooks/convlens_setup.py", "checks/child/worker.py"}


def _changes_sys_path(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "insert", "append", "extend") and ast.unparse(node.func.value) == "sys.path":
            return True
        if isinstance(node, ast.AugAssign) and ast.unparse(node.target) == "sys.path":
            return True
    return False


def test_the_kit_root_comes_onto_sys_path_in_one_place_per_entry_point():
    files = list(_code_files()) + sorted((ROOT / "notebooks").glob("*.py"))
    found = {path.relative_to(ROOT).as_posix() for path in files if _changes_sys_path(path)}
    assert found == PATH_SET_UPS


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return modules


def test_the_checks_packages_import_along_the_process_boundary():
    """checks/child/ (what the sandbox is shown, whole) imports nothing of the judge, the process layer or the kit
    library the child may not see; the judge imports nothing of the process layer."""
    from grader.workspace import CHILD_LIBRARY

    allowed = {f"convlens.{name[:-3]}" for name in CHILD_LIBRARY if name != "__init__.py"} | {"convlens"}
    found = []
    for package, forbidden in (("child", ("checks.judge", "checks.process", "grader", "tools")),
                               ("judge", ("checks.process", "grader", "tools"))):
        for path in sorted((ROOT / "checks" / package).rglob("*.py")):
            for module in _imported_modules(path):
                library = module.split(".")[0] == "convlens" and ".".join(module.split(".")[:2]) not in allowed
                if module.startswith(forbidden) or (package == "child" and library):
                    found.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not found, "\n".join(found)


def test_each_hidden_file_was_built_with_todays_mutants():
    """The generated mutants a reference file was built with are those tools/mutants.py makes today: a change
    of the operators (or of a solution) without `kit.py references` fails here, not only in the rebuild tier."""
    from checks.judge import references
    from tools.build_references import HIDDEN_DIR, mutant_words

    for topic in TOPICS:
        built = references.load(HIDDEN_DIR / f"{topic}.pt")["meta"].get("mutants")
        assert built == mutant_words(topic), f"run python3 kit.py references {topic}: its files were built with " \
                                             "other mutants"
