"""A notebook whose exercises are not written yet still reads: a cell that needs one prints one line naming
it, and the cells after it still run.

:func:`install` adds an IPython AST transformer that wraps every cell's code in ``try``/``except``. When the
code raises ``NotImplementedError`` from a student's stub, the cell prints
``needs helpers/style.py: style_transfer (not written yet)`` and ends without an error, so Run All goes on.
The function named is the one the cell itself calls (read from its source), not a callee deeper down. A
later cell that fails with ``NameError`` because such a cell never defined its variables prints one line
saying which unfinished exercise it waits for. Every other error keeps its traceback: it is a real bug.
"""
from __future__ import annotations

import ast
import re
import sys
import traceback
from pathlib import Path

RESULT = "_convlens_cell_result"
WAITING: dict[str, str] = {}  # "helpers/<file>.py: <function>" -> first cell that needed it (its number)


def _is_stub(fn) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and "NotImplementedError" in code.co_names and Path(code.co_filename).parent.name == "helpers"


def _helpers_modules(namespace: dict) -> dict[str, object]:
    """{name in the notebook: module} for the student's modules imported there (``sal``, ``st``, ...)."""
    return {name: value for name, value in namespace.items()
            if getattr(value, "__name__", "").startswith("helpers.") and hasattr(value, "__file__")}


def _called_stubs(source: str, namespace: dict) -> list[str]:
    """"helpers/<file>.py: <function>" for each stub the cell's own code calls (``sal.saliency_map(``)."""
    found = []
    for alias, module in _helpers_modules(namespace).items():
        for function in re.findall(rf"\b{re.escape(alias)}\.(\w+)\s*[,)(]", source):
            fn = getattr(module, function, None)
            label = f"helpers/{Path(module.__file__).name}: {function}"
            if _is_stub(fn) and label not in found:
                found.append(label)
    return found


def _innermost_stub(err: BaseException) -> list[str]:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if Path(frame.filename).parent.name == "helpers":
            return [f"helpers/{Path(frame.filename).name}: {frame.name}"]
    return []


def report(err: BaseException, source: str) -> None:
    """Called by the wrapped cell on NotImplementedError or NameError (re-raised when it is not ours)."""
    from IPython import get_ipython

    namespace = get_ipython().user_ns
    if isinstance(err, NotImplementedError):
        needs = _called_stubs(source, namespace) or _innermost_stub(err)
        if not needs:
            raise err
        for label in needs:
            WAITING.setdefault(label, "")
        print("needs " + "; ".join(f"`{label}` (not written yet)" for label in needs), flush=True)
        return
    if isinstance(err, NameError) and WAITING:
        waits = "; ".join(f"`{label}`" for label in WAITING)
        print(f"skipped: `{err.name}` comes from a cell above that needs {waits} (not written yet)", flush=True)
        return
    raise err


class _WrapCell(ast.NodeTransformer):
    """Module body -> try: body except (NotImplementedError, NameError) as e: report(e, source); the value
    of a last bare expression is kept and shown as IPython would."""

    def __init__(self, shell):
        self.shell = shell

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if not node.body or not self._student_modules_loaded():
            return node
        body = list(node.body)
        tail = []
        if isinstance(body[-1], ast.Expr):
            last = body.pop()
            body.append(ast.Assign(targets=[ast.Name(RESULT, ast.Store())], value=last.value))
            tail = [ast.Expr(ast.Name(RESULT, ast.Load()))]
        source = self.shell.user_ns.get("_convlens_source", "")
        handler = ast.ExceptHandler(
            type=ast.Tuple([ast.Name("NotImplementedError", ast.Load()), ast.Name("NameError", ast.Load())],
                           ast.Load()),
            name="_convlens_error",
            body=[ast.Expr(ast.Call(
                func=ast.Attribute(ast.Name("_convlens_unfinished", ast.Load()), "report", ast.Load()),
                args=[ast.Name("_convlens_error", ast.Load()), ast.Constant(source)], keywords=[]))])
        wrapped = [ast.Assign(targets=[ast.Name(RESULT, ast.Store())], value=ast.Constant(None)),
                   ast.Try(body=body, handlers=[handler], orelse=[], finalbody=[]), *tail]
        return ast.fix_missing_locations(ast.Module(body=wrapped, type_ignores=node.type_ignores))

    def _student_modules_loaded(self) -> bool:
        return bool(_helpers_modules(self.shell.user_ns)) or any(m.startswith("helpers.") for m in sys.modules)


def install(shell) -> None:
    """Wrap every later cell of ``shell`` (an IPython InteractiveShell) as described above."""
    shell.user_ns["_convlens_unfinished"] = sys.modules[__name__]

    def remember_source(info) -> None:  # the transformer sees the AST; report() wants the cell's text
        shell.user_ns["_convlens_source"] = info.raw_cell or ""

    shell.events.register("pre_run_cell", remember_source)
    shell.ast_transformers.append(_WrapCell(shell))
