"""Reading a submission's source for forbidden calls, in the grader's own process.

``checks.child.compute`` notices a forbidden library implementation (``Spec.forbidden``: Captum's methods, the
kit's own implementations) while the function runs, with a profile hook; but that hook lives in the
student's process, where the student's code can switch it off. So the grader also reads the source. An
exercise function fails without running when the code it reaches (its body, and the module-level
functions, classes and values it names, and theirs) names one of its forbidden implementations, however
imported or aliased, or imports one; or when that code or anything run at import hides what it calls: a
dynamic import, ``exec``/``eval``, switching off the profile hook, or a string naming a forbidden module.
It cannot follow code assembled from data at run time (hence the rule against hiding).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

# Names whose use hides which functions run (a dynamic import, code run from text) or switches off the
# check's call tracing. Exercise code has no need for any of them.
HIDING = ("exec", "eval", "compile", "__import__", "importlib", "runpy", "pkgutil", "zipimport", "imp",
          "sys.setprofile", "sys.settrace", "sys.monitoring", "threading.setprofile", "threading.settrace")
HIDING_WORDS = {"setprofile", "settrace", "exec", "eval", "compile", "__import__", "import_module"}
WHY_HIDING = "hides what it calls ({name}, {where}): the grader must be able to read which functions run"
# Names that reach into the running checks (the kit's checking code, the loaded modules, the callers' frames):
# code that can see or change what measures it. Exercise code has no need for any of them.
REACHING = ("checks", "sys.modules", "sys._getframe", "sys._current_frames", "inspect", "gc",
            "ctypes", "traceback", "builtins.globals", "builtins.vars", "builtins.locals", "__builtins__")
REACHING_ATTRIBUTES = {"f_back", "f_globals", "f_locals", "f_builtins", "tb_frame", "gi_frame", "cr_frame",
                       "__globals__", "__closure__", "__subclasses__", "__self__", "__func__", "__code__", "__dict__"}
# Parts of a dotted name that lead into the running interpreter however the chain starts (torch.sys.modules)
REACHING_PARTS = {"sys", "modules", "_getframe", "gc", "inspect", "ctypes", "checks", "builtins"}
REACHING_WORDS = {"checks", "modules", "_getframe", "f_back", "f_globals", "f_locals", "__globals__", "__builtins__"}
WHY_REACHING = ("reaches into the running checks ({name}, {where}): code that can see or change what measures "
                "it cannot be graded; an exercise needs only its arguments, torch and the kit's model")


@dataclass(frozen=True)
class Finding:
    """Why a function fails without running: a one-line reason (without the ``FAIL <check>: ``)."""

    reason: str


def _dotted(node: ast.AST, aliases: dict) -> str | None:
    """'captum.attr.Occlusion' for ``Occlusion``, ``ca.Occlusion``, ``captum.attr.Occlusion``... (through
    the module's imports), else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    base = aliases.get(node.id, node.id)
    return ".".join([base, *reversed(parts)])


def _constant_text(node: ast.AST) -> str | None:
    """A string constant, also one glued together from constants ("cap" + "tum")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _constant_text(node.left), _constant_text(node.right)
        if left is not None and right is not None:
            return left + right
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


class Module:
    """One parsed submission file: its imports, its top-level definitions, and what each reaches."""

    def __init__(self, source: str, filename: str):
        self.filename = filename
        self.tree = ast.parse(source, filename)
        self.aliases: dict[str, str] = {}
        self.star: list[str] = []  # modules imported with *
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    # `import captum.attr` binds `captum`; `import captum.attr as ca` binds ca = captum.attr
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name == "*":
                        self.star.append(node.module)
                    else:
                        self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        self.definitions: dict[str, list[ast.AST]] = {}  # module-level name -> what defines it
        self._collect(self.tree.body)
        self.docstrings = _docstrings(self.tree)
        self.at_import = [n for top in self.tree.body for n in _run_at_import(top)]

    def _collect(self, body: list) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.definitions.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for name in [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]:
                    self.definitions.setdefault(name, []).append(node)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for key in ("body", "orelse", "finalbody"):
                    self._collect(getattr(node, key, []))
                for handler in getattr(node, "handlers", []):
                    self._collect(handler.body)

    def reached(self, function: str, skip: tuple = ()) -> list[ast.AST]:
        """Every node a call of ``function`` can run, as far as the source shows: its definition, and the
        definitions of the module-level names it uses, and theirs (``skip``: names that the check replaces
        by stand-ins). Code that runs at import is read separately (:func:`_run_at_import`)."""
        todo = list(self.definitions.get(function, []))
        seen, nodes = set(), []
        while todo:
            top = todo.pop()
            if id(top) in seen:
                continue
            seen.add(id(top))
            for node in ast.walk(top):
                nodes.append(node)
                if isinstance(node, ast.Name) and node.id in self.definitions and node.id not in skip:
                    todo += [d for d in self.definitions[node.id] if id(d) not in seen]
        return nodes

    def findings(self, function: str, forbidden: tuple, skip: tuple = ()) -> Finding | None:
        """The first reason ``function`` fails without running, or None."""
        for module in self.star:
            if _matches(module, forbidden) or any(f.startswith(module + ".") for f in forbidden):
                return Finding(f"imports everything from {module} ({self.filename}), which holds "
                               "implementations of this exercise; import only what you use")
        nodes = self.reached(function, skip)
        reached = {id(node) for node in nodes}
        # Hiding anything at import time hides it from every function: what it defines cannot be read.
        nodes += [node for node in self.at_import if id(node) not in reached]
        parents = {id(child): node for node in nodes for child in ast.iter_child_nodes(node)}
        for node in nodes:
            found = self._finding(node, parents.get(id(node)), id(node) in reached, forbidden)
            if found:
                return found
        return None

    def _finding(self, node: ast.AST, parent, reached: bool, forbidden: tuple) -> Finding | None:
        """What one node shows: a reach into the checks, hidden calls, or a forbidden implementation (only in
        code the function runs; at import time, only the first two)."""
        where = f"{self.filename} line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and node.attr in REACHING_ATTRIBUTES:
            return Finding(WHY_REACHING.format(name="." + node.attr, where=where))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("getattr", "setattr", "delattr") and len(node.args) >= 2 and \
                isinstance(node.args[0], ast.Name) and node.args[0].id in self.aliases and \
                _constant_text(node.args[1]) is None:
            # an attribute of a module named by a computed string: what it reaches cannot be read
            return Finding(WHY_HIDING.format(name=f"getattr({node.args[0].id}, <computed name>)", where=where))
        if isinstance(node, (ast.Name, ast.Attribute)) and not isinstance(parent, ast.Attribute):
            return self._name_finding(node, reached, forbidden, where)
        if not reached:
            if isinstance(node, ast.Constant) and id(node) not in self.docstrings:
                return _word_finding(node.value, where)
            return None
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return _import_finding(node, forbidden, where)
        if isinstance(node, (ast.Constant, ast.BinOp, ast.JoinedStr)) and id(node) not in self.docstrings:
            if isinstance(parent, (ast.BinOp, ast.JoinedStr)):
                return None  # judged as part of the whole expression
            text = _constant_text(node)
            if text is None:
                return None
            word = text.strip()
            f = _matches(word, forbidden) or next((f for f in forbidden if _named_in(word, f)), None)
            if f:
                return Finding(f"names {word[:60]!r} (for {f}): the exercise is to write it yourself ({where})")
            return _word_finding(word, where)
        return None

    def _name_finding(self, node: ast.AST, reached: bool, forbidden: tuple, where: str) -> Finding | None:
        """A whole name chain (a.b.c, not its parts): a reach, a forbidden implementation, or a hidden call."""
        name = _dotted(node, self.aliases)
        if name is None:
            return None
        plain = name.removeprefix("builtins.") if name.startswith("builtins.__") else name
        base = node
        while isinstance(base, ast.Attribute):
            base = base.value
        through_module = isinstance(base, ast.Name) and base.id in self.aliases and \
            REACHING_PARTS & set(plain.split(".")[1:])
        if through_module or any(plain == r or plain.startswith(r + ".") for r in REACHING) or (
                isinstance(node, ast.Name) and node.id in ("globals", "vars", "locals", "__builtins__")
                and node.id not in self.definitions):
            return Finding(WHY_REACHING.format(name=plain, where=where))
        f = _matches(name, forbidden) if reached else None
        if f:
            return Finding(f"calls {f}: the exercise is to write it yourself ({where})")
        plain = name.removeprefix("builtins.")
        if any(plain == h or plain.startswith(h + ".") for h in HIDING):
            return Finding(WHY_HIDING.format(name=plain, where=where))
        return None


def _word_finding(word, where: str) -> Finding | None:
    """A string that names a way to hide calls or to reach into the checks."""
    if word in HIDING_WORDS:
        return Finding(WHY_HIDING.format(name=repr(word), where=where))
    if word in REACHING_WORDS:
        return Finding(WHY_REACHING.format(name=repr(word), where=where))
    return None


def _import_finding(node: ast.AST, forbidden: tuple, where: str) -> Finding | None:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
        [f"{node.module}.{a.name}" for a in node.names if node.module and not node.level]
    for name in names:
        if any(name == r or name.startswith(r + ".") for r in REACHING):
            return Finding(WHY_REACHING.format(name=name, where=where))
        f = _matches(name, forbidden)
        if f:
            what = f if name == f else f"{name}, which holds {f}"
            return Finding(f"imports {what}: the exercise is to write it yourself ({where})")
    return None


def _run_at_import(node: ast.AST):
    """The nodes of a module-level statement that run when the module is imported (not function bodies)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for part in node.decorator_list + node.args.defaults + node.args.kw_defaults:
            if part is not None:
                yield from ast.walk(part)
    elif isinstance(node, ast.ClassDef):
        for part in node.decorator_list + node.bases:
            yield from ast.walk(part)
        for statement in node.body:
            yield from _run_at_import(statement)
    else:
        yield from ast.walk(node)


def _matches(name: str, forbidden: tuple) -> str | None:
    """The forbidden name that ``name`` is, lies inside, or is the module of (``captum.attr``, or a
    third-party package such as ``captum`` itself); else None."""
    for f in forbidden:
        module, root = f.rsplit(".", 1)[0], f.split(".")[0]
        if name == f or name.startswith(f + ".") or name == module or (name == root and root != "convlens"):
            return f
    return None


def _named_in(text: str, forbidden: str) -> bool:
    """Does a string name ``forbidden``: its own last name exactly, or its module anywhere in it?"""
    module, last, root = forbidden.rsplit(".", 1)[0], forbidden.rsplit(".", 1)[1], forbidden.split(".")[0]
    return text == last or module in text or (root != "convlens" and root + "." in text)


def scan(source: str, filename: str, functions: dict[str, tuple[tuple, tuple]]) -> dict[str, Finding]:
    """{function: Finding} for the functions of ``functions`` ({name: (forbidden, stand-in names)}) whose
    source shows a forbidden call. A file that does not parse is left to the import (it reports it)."""
    try:
        module = Module(source, filename)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    found = {}
    for name, (forbidden, skip) in functions.items():
        finding = module.findings(name, forbidden, skip)
        if finding is not None:
            found[name] = finding
    return found
