"""Mistakes generated from the reference solutions: every single edit of a kind students make, applied to the
body of one exercise function (instructor-only, like the exercises' records in tools/exercises/).

Each operator finds the places in the function's syntax tree where it applies and makes one mutant per place.
A mutant carries words for what changed, taken from the operator, never the solution's code: "an average where the
reference sums", "a term of a sum left out". The reference build (tools/build_references.py) runs every mutant on
every case and stores a sketch of its outputs where they differ from the reference's (checks/judge/sketch.py), so a
FAIL line can name the nearest mutant when no hand-written mistake matches. Loops judged by outcomes are left to
their stored mistakes: one edit of a loop rarely tells which outcome moves.

    python -m tools.mutants saliency_map      # lists the mutants of one function
"""
from __future__ import annotations

import ast
import copy
import sys
import types
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]

REDUCTIONS = {"sum": "mean", "mean": "sum"}
REDUCTION_WORDS = {("sum", "mean"): "an average where the reference sums",
                   ("mean", "sum"): "a sum where the reference averages"}
WRAPPED = ("differences that wrap around the border (the last row or column also taken against the first) where "
           "the reference stops at the edge")
# Edits that a student makes at every place at once when they hold one convention the other way round.
EVERYWHERE = {"a shift in the opposite direction", "an average where the reference sums",
              "a sum where the reference averages", "a value that is not squared", "an absolute value left out", WRAPPED,
              "log-probabilities (a log-softmax) where the reference uses probabilities (a softmax)"}
# One arithmetic operator written for another (the classic replacement; division into multiplication is below).
ARITHMETIC = {ast.Mult: ((ast.Add, "an addition where the reference multiplies"),),
              ast.Add: ((ast.Mult, "a multiplication where the reference adds"),
                        (ast.Sub, "a subtraction where the reference adds")),
              ast.Sub: ((ast.Add, "an addition where the reference subtracts"),)}
# Other values a string argument is often given by mistake.
KEYWORD_CHOICES = {"reduction": {"sum": ["mean"], "mean": ["sum"]},
                   "mode": {"bilinear": ["nearest", "bicubic"], "nearest": ["bilinear"]}}
# What a function's gradient is usually called: where it is used, the gradient times the input is a classic slip.
GRADIENT_NAMES = {"grad", "grads", "gradient", "gradients"}
# Reductions over one axis, and what each takes: replaced by the axis' first entry.
ONE_ENTRY = {"amax": "the maximum", "amin": "the minimum", "sum": "the sum", "mean": "the average",
             "norm": "the norm"}
AXIS_CALLS = {"sum", "mean", "amax", "amin", "max", "min", "norm", "softmax", "log_softmax", "argmax", "flatten",
              "cumsum", "roll"}


def _is_call(node: ast.AST, names) -> str | None:
    """The name of a call's function (``x.sum(...)``, ``torch.sum(...)``) when it is one of ``names``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names:
        return node.func.attr
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
        return node.func.id
    return None


def _edits(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(words, replacement node) for every mutation of ``node`` itself."""
    name = _is_call(node, REDUCTIONS)
    if name:
        other = copy.deepcopy(node)
        other.func = copy.deepcopy(node.func)
        if isinstance(other.func, ast.Attribute):
            other.func.attr = REDUCTIONS[name]
        else:
            other.func.id = REDUCTIONS[name]
        yield REDUCTION_WORDS[(name, REDUCTIONS[name])], other
    name = _is_call(node, AXIS_CALLS)
    if name:
        for keyword in node.keywords:
            if keyword.arg in ("dim", "dims", "start_dim") and isinstance(keyword.value, ast.Constant) \
                    and isinstance(keyword.value.value, int):
                for shift in (-1, 1):
                    other = copy.deepcopy(node)
                    next(k for k in other.keywords if k.arg == keyword.arg).value = ast.Constant(keyword.value.value + shift)
                    yield f"the {name} taken over another axis", other
    name = _is_call(node, ONE_ENTRY)
    if name and isinstance(node.func, ast.Attribute) and not node.args:
        dims = [k for k in node.keywords if k.arg == "dim"]
        if len(dims) == 1 and isinstance(dims[0].value, ast.Constant) and isinstance(dims[0].value.value, int):
            # x.amax(dim=1) -> x.select(1, 0): one entry of the axis (a channel, a row) stands for all of them
            keep = any(k.arg == "keepdim" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords)
            yield f"one entry of an axis (its first) where the reference takes {ONE_ENTRY[name]} over it", ast.Call(
                ast.Attribute(node.func.value, "narrow" if keep else "select", ast.Load()),
                [dims[0].value, ast.Constant(0)] + ([ast.Constant(1)] if keep else []), [])
    if _is_call(node, {"norm"}):
        has_p = [k for k in node.keywords if k.arg == "p"]
        for p, words in ((1, "an L1 norm where the reference takes L2"),
                         (float("inf"), "an L-infinity norm (the largest value) where the reference takes L2")):
            if has_p and isinstance(has_p[0].value, ast.Constant) and has_p[0].value.value != 2:
                continue
            other = copy.deepcopy(node)
            other.keywords = [k for k in other.keywords if k.arg != "p"] + [
                ast.keyword("p", ast.Constant(p) if p != float("inf") else ast.parse("float('inf')").body[0].value)]
            yield words, other
    if _is_call(node, {"roll"}):
        for keyword in node.keywords:
            if keyword.arg == "shifts" and isinstance(keyword.value, ast.Tuple):
                other = copy.deepcopy(node)
                shifts = next(k for k in other.keywords if k.arg == "shifts")
                shifts.value = ast.Tuple([ast.UnaryOp(ast.USub(), e) for e in shifts.value.elts], ast.Load())
                yield "a shift in the opposite direction", other
                swapped = copy.deepcopy(node)
                shifts = next(k for k in swapped.keywords if k.arg == "shifts")
                shifts.value = ast.Tuple(list(reversed(shifts.value.elts)), ast.Load())
                yield "a shift with its two directions (down, right) swapped", swapped
    name = _is_call(node, {"sum", "mean"})
    if name and isinstance(node.func, ast.Attribute):
        yield (f"a maximum where the reference {'sums' if name == 'sum' else 'averages'}",
               ast.Call(ast.Attribute(node.func.value, "amax", ast.Load()), node.args, node.keywords))
    if _is_call(node, {"abs"}) and isinstance(node.func, ast.Attribute):
        yield "a square where the reference takes the absolute value", ast.Call(
            ast.Attribute(node.func.value, "pow", ast.Load()), [ast.Constant(2)], [])
        yield "the positive part (a ReLU) where the reference takes the absolute value", ast.Call(
            ast.Attribute(node.func.value, "clamp", ast.Load()), [], [ast.keyword("min", ast.Constant(0))])
    name = _is_call(node, {"zeros_like", "new_zeros", "zeros"})
    if name:
        # an accumulator (a sum, a count) that starts at one
        other = copy.deepcopy(node)
        if isinstance(other.func, ast.Attribute):
            other.func.attr = name.replace("zeros", "ones")
        else:
            other.func.id = name.replace("zeros", "ones")
        yield "a sum or count started at one where the reference starts it at zero", other
    if isinstance(node, ast.If) and not node.orelse:
        # inside a loop: the loop ends at the first item the condition holds for (a break outside one: no mutant)
        stops = copy.deepcopy(node)
        stops.body = stops.body + [ast.Break()]
        yield "the loop stops at the first item its condition holds for where the reference goes through all", stops
    if _is_call(node, {"sign"}) and isinstance(node.func, ast.Attribute):
        yield "the raw values where the reference takes their sign", node.func.value
    if _is_call(node, {"reshape", "view"}) and isinstance(node.func, ast.Attribute) and len(node.args) == 3:
        # (n, c, h * w) -> (n, h * w, c).transpose(1, 2): a reshape that reads the axes in another order
        reordered = ast.Call(node.func, [node.args[0], node.args[2], node.args[1]], [])
        yield "the axes reshaped in another order (a reshape where the reference keeps the axis order)", ast.Call(
            ast.Attribute(reordered, "transpose", ast.Load()), [ast.Constant(1), ast.Constant(2)], [])
    name = _is_call(node, {"amax"})
    if name and isinstance(node.func, ast.Attribute):
        for other, words in (("mean", "an average where the reference takes the maximum"),
                             ("sum", "a sum where the reference takes the maximum"),
                             ("norm", "an L2 norm where the reference takes the maximum")):
            yield words, ast.Call(ast.Attribute(node.func.value, other, ast.Load()), node.args, node.keywords)
        inner = node.func.value
        if _is_call(inner, {"abs"}) and isinstance(inner.func, ast.Attribute):
            # x.abs().amax(...) -> x.amax(...).abs(): the order of two steps
            yield "the maximum taken before the absolute value where the reference takes it after", ast.Call(
                ast.Attribute(ast.Call(ast.Attribute(inner.func.value, "amax", ast.Load()), node.args, node.keywords),
                              "abs", ast.Load()), [], [])
    if _is_call(node, {"pow"}) and isinstance(node.func, ast.Attribute):
        yield "a value that is not squared", node.func.value
        yield "an absolute value where the reference squares", ast.Call(
            ast.Attribute(node.func.value, "abs", ast.Load()), [], [])
    if _is_call(node, {"sum"}) and isinstance(node.func, ast.Attribute) and not node.args and not node.keywords:
        yield "a square root taken of a sum of squares (a distance where the reference has its square)", ast.Call(
            ast.Attribute(node, "sqrt", ast.Load()), [], [])
    if _is_call(node, {"clamp", "clamp_"}) and isinstance(node.func, ast.Attribute) and \
            [k.arg for k in node.keywords] == ["min"] and isinstance(node.keywords[0].value, ast.Constant) \
            and node.keywords[0].value.value == 0:
        yield "an absolute value where the reference clamps at zero", ast.Call(
            ast.Attribute(node.func.value, "abs", ast.Load()), [], [])
    if _is_call(node, {"clamp", "clamp_"}) and isinstance(node.func, ast.Attribute) and \
            [k.arg for k in node.keywords] in (["min"], ["max"]):
        side = {"min": "max", "max": "min"}[node.keywords[0].arg]
        yield "a clamp on the other side (it keeps what the reference removes)", ast.Call(
            node.func, node.args, [ast.keyword(side, node.keywords[0].value)])
    if isinstance(node, ast.Call):
        for keyword in node.keywords:
            value = keyword.value.value if isinstance(keyword.value, ast.Constant) else None
            others = ([not value] if isinstance(value, bool) else
                      KEYWORD_CHOICES.get(keyword.arg, {}).get(value, []) if isinstance(value, str) else [])
            for other in others:
                changed = copy.deepcopy(node)
                next(k for k in changed.keywords if k.arg == keyword.arg).value = ast.Constant(other)
                yield f"{keyword.arg}={other!r} where the reference passes {keyword.arg}={value!r}", changed
        for keyword in node.keywords:
            if isinstance(keyword.value, ast.Name) and keyword.value.id == keyword.arg:
                yield f"the argument `{keyword.arg}` not passed on (the callee's default used)", ast.Call(
                    node.func, node.args, [k for k in node.keywords if k is not keyword])
        if isinstance(node.func, ast.Name) and node.func.id == "model":
            for function, words in (("softmax", "probabilities (a softmax)"),
                                    ("log_softmax", "log-probabilities (a log-softmax)")):
                yield f"{words} where the reference uses the class scores (logits)", ast.Call(
                    ast.Attribute(ast.Name("torch", ast.Load()), function, ast.Load()), [node],
                    [ast.keyword("dim", ast.Constant(1))])
        if _is_call(node, {"gather"}) and isinstance(node.func, ast.Attribute):
            yield "every class's score where the reference picks one class per image", node.func.value
        if _is_call(node, {"softmax"}) and node.args:
            yield "class scores (logits) where the reference uses probabilities (a softmax)", node.args[0]
    if _is_call(node, {"abs"}) and isinstance(node.func, ast.Attribute):
        yield "an absolute value left out", node.func.value
    if _is_call(node, {"clamp", "clamp_", "clip"}) and isinstance(node.func, ast.Attribute):
        yield "a clamp left out", node.func.value
    if _is_call(node, {"relu"}) and isinstance(node.func, ast.Attribute) and node.func.attr == "relu" and node.args:
        yield "a ReLU left out", node.args[0]
    inner = node.args[0] if isinstance(node, ast.Call) and len(node.args) == 1 else None
    outer = _is_call(node, {"relu", "abs"})
    reduced = _is_call(inner, {"sum", "mean"}) if inner is not None else None
    if outer and reduced and isinstance(inner.func, ast.Attribute):
        # f(x.sum()) -> f(x).sum(): the function moved inside the reduction
        moved = copy.deepcopy(node)
        moved.args = [inner.func.value]
        yield (f"a {'ReLU' if outer == 'relu' else 'absolute value'} taken of each term before the "
               f"{reduced} where the reference takes it after"), ast.Call(
            ast.Attribute(moved, reduced, ast.Load()), inner.args, inner.keywords)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) and node.right.value == 2:
            yield "a value that is not squared", node.left
        if isinstance(node.op, ast.Sub):
            yield "the two sides of a difference swapped (its sign)", ast.BinOp(node.right, ast.Sub(), node.left)
            yield "a subtracted term left out (x where the reference has x - y)", node.left
        if isinstance(node.op, ast.Add):
            yield "a term of a sum left out", node.left
            yield "a term of a sum left out", node.right
        if isinstance(node.op, ast.Mult):
            yield "a factor of a product left out", node.left
            yield "a factor of a product left out", node.right
            for weight, total in ((node.left, node.right), (node.right, node.left)):
                if isinstance(total, ast.BinOp) and isinstance(total.op, (ast.Add, ast.Sub)):
                    # re-associated: the weight reaches one term of the sum only
                    yield "a weight applied to one term of a sum only", ast.BinOp(
                        ast.BinOp(weight, ast.Mult(), total.left), total.op, total.right)
                    yield "a weight applied to one term of a sum only", ast.BinOp(
                        total.left, total.op, ast.BinOp(weight, ast.Mult(), total.right))
        if isinstance(node.op, ast.Div) and isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Add) \
                and isinstance(node.left.right, ast.Constant) and node.left.right.value == 0.5:
            # (k + 0.5) / n, the midpoint of the k-th of n intervals: the other ways to place n points on [0, 1]
            count = node.right
            yield ("points from one end of the path to the other (torch.linspace(0, 1, steps)) where the reference "
                   "takes the midpoints of equal intervals"), ast.BinOp(node.left.left, ast.Div(), ast.Call(
                       ast.Name("max", ast.Load()), [ast.BinOp(count, ast.Sub(), ast.Constant(1)), ast.Constant(1)], []))
            yield "points at the right ends of the intervals where the reference takes their midpoints", ast.BinOp(
                ast.BinOp(node.left.left, ast.Add(), ast.Constant(1)), ast.Div(), count)
        if isinstance(node.op, ast.Mult):
            for weight, squared in ((node.left, node.right), (node.right, node.left)):
                inside = _weight_inside_square(weight, squared)
                if inside is not None:
                    yield "a weight inside a square where the reference applies it outside", inside
                for one_side in _weight_on_one_side(weight, squared):
                    yield ("a weight on one side of a difference inside a square where the reference weights the "
                           "squared difference"), one_side
        if isinstance(node.op, ast.Sub) and all(isinstance(side, ast.Subscript) for side in (node.left, node.right)):
            apart = _neighbours_apart(node)
            if apart is not None:
                yield "neighbours two apart where the reference takes adjacent ones", apart
            wrapped = _wrapped(node)
            if wrapped is not None:
                yield WRAPPED, wrapped
        for other, words in ARITHMETIC.get(type(node.op), ()):
            yield words, ast.BinOp(node.left, other(), node.right)
        if isinstance(node.op, ast.Sub) and all(isinstance(side, ast.Subscript) for side in (node.left, node.right)):
            for across in _other_axes(node):
                yield "differences along another axis than the reference's", across
        if isinstance(node.op, ast.MatMult):
            yield "the two factors of a matrix product swapped", ast.BinOp(node.right, ast.MatMult(), node.left)
        if isinstance(node.op, ast.Div):
            yield "a division left out", node.left
            yield "a multiplication where the reference divides", ast.BinOp(node.left, ast.Mult(), node.right)
    squared = node.func.value if _is_call(node, {"pow"}) and isinstance(node.func, ast.Attribute) and node.args \
        and isinstance(node.args[0], ast.Constant) and node.args[0].value == 2 else \
        node.left if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and \
        isinstance(node.right, ast.Constant) and node.right.value == 2 else None
    if isinstance(squared, ast.BinOp) and isinstance(squared.op, ast.Sub):
        yield "a difference of squares where the reference squares a difference", ast.BinOp(
            ast.BinOp(squared.left, ast.Pow(), ast.Constant(2)), ast.Sub(),
            ast.BinOp(squared.right, ast.Pow(), ast.Constant(2)))
    if _is_call(node, {"full_like"}) and len(node.args) == 2:
        yield "the input scaled by the value where the reference fills with the value (a constant)", ast.BinOp(
            node.args[1], ast.Mult(), node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and all(
            isinstance(side, ast.Name) for side in (node.left, node.right)):
        yield "a square root taken of a sum of terms (a norm where the reference has its square)", ast.Call(
            ast.Attribute(ast.Name("torch", ast.Load()), "sqrt", ast.Load()), [node], [])
    if isinstance(node, ast.Subscript):
        channel = _one_channel(node)
        if channel is not None:
            yield "one colour channel where the reference takes all three", channel
    if isinstance(node, ast.Return) and node.value is not None and not isinstance(node.value, ast.Tuple):
        yield "a square root taken of the result", ast.Return(ast.Call(
            ast.Attribute(node.value, "sqrt", ast.Load()), [], []))
        # an attribution times the input (gradient x input); a NameError where there is no `images` drops it
        yield "the result multiplied by the input image", ast.Return(ast.BinOp(node.value, ast.Mult(),
                                                                               ast.Name("images", ast.Load())))
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        yield "the last value kept where the reference adds up every one (= where it has +=)", ast.Assign(
            [node.target], node.value)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        flip = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}.get(type(node.ops[0]))
        if flip:
            yield "a comparison on the other side of its boundary (< against <=)", ast.Compare(
                node.left, [flip()], node.comparators)
    if _is_call(node, {"range"}) and node.args:
        end = 1 if len(node.args) >= 2 else 0  # range(stop) or range(start, stop[, step])
        for shift, words in ((-1, "a loop range that stops one early"), (1, "a loop range that goes one further")):
            other = copy.deepcopy(node)
            other.args[end] = ast.BinOp(other.args[end], ast.Add(), ast.Constant(shift))
            yield words, other
    if _is_call(node, {"zip"}) and len(node.args) >= 2:
        for place in range(len(node.args)):
            # one of the paired sequences in the reverse order: its items go with the others' wrong items
            other = copy.deepcopy(node)
            other.args[place] = ast.Subscript(ast.Call(ast.Name("list", ast.Load()), [other.args[place]], []),
                                              ast.Slice(None, None, ast.UnaryOp(ast.USub(), ast.Constant(1))),
                                              ast.Load())
            yield "items paired with the wrong partners (one of the sequences zipped together in reverse)", other
    yield from _substituted_operations(node)


def _substituted_operations(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """One operation for another of the same kind: a log-softmax for a softmax, a fourth power for a square, the
    gradient times the input or its sign for the gradient, centred rows in a matrix product."""
    name = _is_call(node, {"softmax"})
    if name:
        other = copy.deepcopy(node)
        if isinstance(other.func, ast.Attribute):
            other.func.attr = "log_softmax"
        else:
            other.func.id = "log_softmax"
        yield "log-probabilities (a log-softmax) where the reference uses probabilities (a softmax)", other
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant) \
            and node.right.value == 2:
        yield "a fourth power where the reference squares", ast.BinOp(node.left, ast.Pow(), ast.Constant(4))
    if _is_call(node, {"pow"}) and isinstance(node.func, ast.Attribute) and node.args and \
            isinstance(node.args[0], ast.Constant) and node.args[0].value == 2:
        yield "a fourth power where the reference squares", ast.Call(node.func, [ast.Constant(4)], [])
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in GRADIENT_NAMES:
        yield "the gradient times the input image (gradient x input) where the reference takes the gradient alone", \
            ast.BinOp(ast.Name(node.id, ast.Load()), ast.Mult(), ast.Name("images", ast.Load()))
        yield "the sign of the gradient where the reference uses the gradient itself", ast.Call(
            ast.Attribute(ast.Name(node.id, ast.Load()), "sign", ast.Load()), [], [])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and isinstance(node.left, ast.Name):
        name = node.left.id
        centred = ast.parse(f"({name} - {name}.mean(dim=-1, keepdim=True))").body[0].value
        yield ("rows centred (their mean taken off) before a matrix product, a covariance where the reference "
               "multiplies the raw values"), _Rename(name, centred, only_range_steps=False).visit(copy.deepcopy(node))


def _weight_inside_square(weight: ast.expr, squared: ast.expr) -> ast.expr | None:
    """``w * x.pow(2)...`` -> ``(w * x).pow(2)...``: the same chain of method calls with the weight moved
    inside its square."""
    moved = copy.deepcopy(squared)
    node = moved
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "pow" and node.args and isinstance(node.args[0], ast.Constant) \
                and node.args[0].value == 2:
            node.func.value = ast.BinOp(copy.deepcopy(weight), ast.Mult(), node.func.value)
            return moved
        node = node.func.value
    return None


def _weight_on_one_side(weight: ast.expr, squared: ast.expr) -> Iterator[ast.expr]:
    """``w * (a - b).pow(2)...`` -> ``(w * a - b).pow(2)...`` and ``(a - w * b).pow(2)...``: the weight reaches
    one side of the squared difference only."""
    node = squared
    path = []
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "pow" and node.args and isinstance(node.args[0], ast.Constant) \
                and node.args[0].value == 2 and isinstance(node.func.value, ast.BinOp) \
                and isinstance(node.func.value.op, ast.Sub):
            for side in ("left", "right"):
                moved = copy.deepcopy(squared)
                inner = moved
                for _ in path:
                    inner = inner.func.value
                difference = inner.func.value
                setattr(difference, side, ast.BinOp(copy.deepcopy(weight), ast.Mult(), getattr(difference, side)))
                yield moved
            return
        path.append(node)
        node = node.func.value


def _neighbours_apart(node: ast.BinOp) -> ast.expr | None:
    """``x[..., 1:] - x[..., :-1]`` -> ``x[..., 2:] - x[..., :-2]``: every constant slice bound moved one
    further from zero, on both sides of the difference."""
    changed = copy.deepcopy(node)
    moved = 0
    for side in (changed.left, changed.right):
        for part in ast.walk(side.slice):
            if isinstance(part, ast.Slice):
                for bound in ("lower", "upper"):
                    value = getattr(part, bound)
                    if isinstance(value, ast.Constant) and value.value == 1:
                        setattr(part, bound, ast.Constant(2))
                        moved += 1
                    elif isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub) and \
                            isinstance(value.operand, ast.Constant) and value.operand.value == 1:
                        setattr(part, bound, ast.UnaryOp(ast.USub(), ast.Constant(2)))
                        moved += 1
    return changed if moved >= 2 else None


def _wrapped(node: ast.BinOp) -> ast.expr | None:
    """``x[:, :, 1:, :] - x[:, :, :-1, :]`` -> ``x - torch.roll(x, 1, dims=2)``: neighbours' differences that
    also take the first row against the last (as a circular shift does)."""
    left, right = node.left, node.right
    if not (isinstance(left.value, ast.Name) and isinstance(right.value, ast.Name) and left.value.id == right.value.id
            and isinstance(left.slice, ast.Tuple) and isinstance(right.slice, ast.Tuple)
            and len(left.slice.elts) == len(right.slice.elts)):
        return None
    def bound(value):
        if isinstance(value, ast.Constant):
            return value.value
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub) and isinstance(value.operand, ast.Constant):
            return -value.operand.value
        return value
    axes = []
    for axis, (a, b) in enumerate(zip(left.slice.elts, right.slice.elts)):
        if not (isinstance(a, ast.Slice) and isinstance(b, ast.Slice)) or a.step or b.step:
            return None
        spans = ((bound(a.lower), bound(a.upper)), (bound(b.lower), bound(b.upper)))
        if spans == ((1, None), (None, -1)):
            axes.append(axis)
        elif spans != ((None, None), (None, None)):
            return None
    if len(axes) != 1:
        return None
    name = ast.Name(left.value.id, ast.Load())
    return ast.BinOp(name, ast.Sub(), ast.Call(ast.Attribute(ast.Name("torch", ast.Load()), "roll", ast.Load()),
                                               [copy.deepcopy(name), ast.Constant(1)],
                                               [ast.keyword("dims", ast.Constant(axes[0]))]))


def _other_axes(node: ast.BinOp) -> Iterator[ast.expr]:
    """``x[:, :, 1:, :] - x[:, :, :-1, :]`` -> ``x[:, :, :, 1:] - x[:, :, :, :-1]`` or ``x[:, 1:, :, :] -
    x[:, :-1, :, :]``: the same difference taken along another axis (not the batch's)."""
    for side in (node.left, node.right):
        if not (isinstance(side.slice, ast.Tuple) and len(side.slice.elts) == 4):
            return
    sliced = [i for i in range(1, 4) if ast.dump(node.left.slice.elts[i]) != ast.dump(ast.Slice())]
    if len(sliced) != 1:
        return
    for other in range(1, 4):
        if other == sliced[0]:
            continue
        changed = copy.deepcopy(node)
        for side in (changed.left, changed.right):
            elts = side.slice.elts
            elts[sliced[0]], elts[other] = elts[other], elts[sliced[0]]
        if ast.dump(changed) != ast.dump(node):
            yield changed


def _one_channel(node: ast.Subscript) -> ast.Subscript | None:
    """``x[:, :, a:b, c:d]`` -> ``x[:, 0, a:b, c:d]``: one colour channel where the reference takes all."""
    if isinstance(node.slice, ast.Tuple) and len(node.slice.elts) == 4:
        second = node.slice.elts[1]
        if isinstance(second, ast.Slice) and second.lower is None and second.upper is None and second.step is None:
            changed = copy.deepcopy(node)
            changed.slice.elts[1] = ast.Constant(0)
            return changed
    return None


class _Context:
    """What an edit of one node needs to know of its function: which names hold a norm, which hold the gradient
    of which tensor, and the place of a point along a path (``(k + 0.5) / steps``), if any."""

    def __init__(self, norms: set[str], gradient_of: dict[str, str], path_place: ast.expr | None,
                 hook_output: dict[str, str] | None = None):
        self.norms, self.gradient_of, self.path_place = norms, gradient_of, path_place
        self.hook_output = hook_output or {}

    @classmethod
    def of(cls, function: ast.FunctionDef) -> "_Context":
        norms, gradient_of, path_place, hook_output = set(), {}, None, {}
        for node in ast.walk(function):
            if isinstance(node, ast.FunctionDef) and node is not function and len(node.args.args) == 3:
                # a forward hook (module, inputs, output): {output's name: inputs' name}
                hook_output[node.args.args[2].arg] = node.args.args[1].arg
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                if isinstance(target, ast.Name) and any(_is_call(n, {"norm"}) for n in ast.walk(value)):
                    norms.add(target.id)
                if _is_call(value, {"grad"}) and len(value.args) >= 2 and isinstance(value.args[1], ast.Name) \
                        and isinstance(target, ast.Tuple) and len(target.elts) == 1 and isinstance(target.elts[0], ast.Name):
                    gradient_of[target.elts[0].id] = value.args[1].id
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.left, ast.BinOp) \
                    and isinstance(node.left.op, ast.Add) and isinstance(node.left.right, ast.Constant) \
                    and node.left.right.value == 0.5:
                path_place = node
        return cls(norms, gradient_of, path_place, hook_output)

    def edits(self, node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Name) \
                and node.right.id in self.norms:
            words = "the sign of each value (an L-infinity step) where the reference divides by the L2 norm"
            top = node.left
            if isinstance(top, ast.BinOp) and isinstance(top.op, ast.Mult):
                yield words, ast.BinOp(top.left, ast.Mult(), ast.Call(ast.Attribute(top.right, "sign", ast.Load()), [], []))
            else:
                yield words, ast.Call(ast.Attribute(top, "sign", ast.Load()), [], [])
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.hook_output:
            yield "the layer's input where the reference reads its output (in a forward hook)", ast.Subscript(
                ast.Name(self.hook_output[node.id], ast.Load()), ast.Constant(0), ast.Load())
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.gradient_of:
            yield "the values that were differentiated where the reference uses their gradient", \
                ast.Name(self.gradient_of[node.id], ast.Load())
        if self.path_place is not None and isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            yield ("each term weighted by its point's place along the path where the reference weighs every point "
                   "alike"), ast.AugAssign(node.target, ast.Add(),
                                           ast.BinOp(copy.deepcopy(self.path_place), ast.Mult(), node.value))


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST):
        self.target, self.replacement = target, replacement

    def generic_visit(self, node):
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                value[:] = [self.replacement if v is self.target else v for v in value]
            elif value is self.target:
                setattr(node, field, self.replacement)
        return super().generic_visit(node)


def _substitutions(function: ast.FunctionDef) -> Iterator[tuple[str, str, ast.expr]]:
    """(words, name, what stands for it) for values that can stand for each other: the sizes unpacked from one
    ``.shape`` (``n, c, h, w = x.shape``), the integer settings a loop's ``range`` steps by, and an argument
    ignored (its default, or 0, used instead). Each substitution is applied at every place the name is used
    that way (one mistake, written everywhere)."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) and \
                isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
            names = [t.id for t in node.targets[0].elts if isinstance(t, ast.Name)]
            for a in names:
                for b in names:
                    if a != b:
                        yield "one of the input's sizes used where the reference uses another", a, ast.Name(b)
    params = [a.arg for a in function.args.args]
    steps = {n.args[2].id for n in ast.walk(function) if _is_call(n, {"range"}) and len(n.args) == 3
             and isinstance(n.args[2], ast.Name)}
    for a in steps:
        for b in params:
            if b != a and b not in ("model", "images", "labels", "targets"):
                yield f"the loop steps by `{b}` where the contract says `{a}`", a, ast.Name(b)
    numbers = [a.arg for a in function.args.args
               if isinstance(a.annotation, ast.Name) and a.annotation.id in ("float", "int")]
    for a in numbers:
        for b in numbers:
            if a != b and a not in steps:  # a loop's step: the words above say more
                yield f"the argument `{b}` used where the reference uses `{a}`", a, ast.Name(b)
    defaults = function.args.defaults
    for arg, default in zip(function.args.args[len(params) - len(defaults):], defaults):
        if isinstance(default, ast.Constant) and default.value is not None:
            yield f"the argument `{arg.arg}` ignored: its default ({default.value!r}) used every time", arg.arg, \
                ast.Constant(default.value)
            if type(default.value) in (int, float) and default.value != 0:
                yield f"0 used where the reference uses the argument `{arg.arg}`", arg.arg, ast.Constant(0)
            if type(default.value) is float and 0 < default.value < 1:
                yield f"1.0 used where the reference uses the argument `{arg.arg}`", arg.arg, ast.Constant(1.0)
                # a spread given as a standard deviation, used as a variance (or the reverse)
                yield f"the argument `{arg.arg}` squared where the reference uses it as it is", arg.arg, \
                    ast.BinOp(ast.Name(arg.arg, ast.Load()), ast.Pow(), ast.Constant(2))
                if "images" in params:
                    for dims, where in (("(1, 2, 3)", "each image's mean"), ("(2, 3)", "each channel's mean")):
                        yield f"{where} used where the reference uses the argument `{arg.arg}`", arg.arg, \
                            ast.parse(f"images.mean(dim={dims}, keepdim=True)").body[0].value


class _Rename(ast.NodeTransformer):
    """Every read of ``name`` (or only its use as a ``range`` step) becomes a copy of ``other``."""

    def __init__(self, name: str, other: ast.expr, only_range_steps: bool):
        self.name, self.other, self.only_range_steps = name, other, only_range_steps

    def _other(self):
        other = copy.deepcopy(self.other)
        if isinstance(other, ast.Name):
            other.ctx = ast.Load()
        return other

    def visit_Call(self, node):
        self.generic_visit(node)
        if self.only_range_steps and _is_call(node, {"range"}) and len(node.args) == 3 and \
                isinstance(node.args[2], ast.Name) and node.args[2].id == self.name:
            node.args[2] = self._other()
        return node

    def visit_Name(self, node):
        if not self.only_range_steps and node.id == self.name and isinstance(node.ctx, ast.Load):
            return self._other()
        return node


TAKEN_OF_EACH_TERM = {"abs": "the absolute value", "square": "the square"}


def _taken_of_the_sum(function: ast.FunctionDef) -> Iterator[tuple[str, list[ast.stmt]]]:
    """(words, the function's new body) for ``total += x.abs()`` inside a loop of the function's body, with
    ``total`` read after the loop: ``total += x`` and ``total.abs()`` where it is read after the loop, the
    absolute value (or square) of the sum where the reference adds up the absolute values (or squares)."""
    body = function.body
    for place, statement in enumerate(body):
        if not isinstance(statement, (ast.For, ast.While)):
            continue
        for index, node in enumerate(ast.walk(statement)):
            name = _is_call(node.value, TAKEN_OF_EACH_TERM) if isinstance(node, ast.AugAssign) else None
            if not name or not isinstance(node.op, ast.Add) or not isinstance(node.target, ast.Name) \
                    or not isinstance(node.value.func, ast.Attribute) or node.value.args:
                continue
            total = node.target.id
            new = copy.deepcopy(body)
            twin = list(ast.walk(new[place]))[index]
            twin.value = twin.value.func.value
            before = ast.dump(ast.Module(new[place + 1:], []))
            after = [_Rename(total, ast.parse(f"{total}.{name}()").body[0].value, only_range_steps=False).visit(s)
                     for s in new[place + 1:]]
            if ast.dump(ast.Module(after, [])) == before:
                continue  # the total is not read after the loop
            yield (f"{TAKEN_OF_EACH_TERM[name]} taken of the sum where the reference adds up "
                   f"{'absolute values' if name == 'abs' else 'squares'}"), new[:place + 1] + after


def _predicted_class(function: ast.FunctionDef) -> ast.stmt | None:
    """``labels = model(images).detach().argmax(dim=1)``, put first in a function that explains given labels:
    the mistake of explaining the class the model predicts."""
    params = {a.arg for a in function.args.args}
    if not {"model", "images", "labels"} <= params:
        return None
    return ast.parse("labels = model(images).detach().argmax(dim=1)").body[0]


def mutants(topic: str, function: str, limit: int = 100) -> list[tuple[str, str]]:
    """[(words, the module's source with one edit in ``function``)], at most ``limit``, simplest first (in the
    order of the function's body), duplicates (the same source) dropped."""
    source = (ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    target = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if target is None:
        return []
    body = target.body[1:] if ast.get_docstring(target) else target.body
    found, seen = [], {ast.unparse(tree)}
    sizes: dict[str, list[str]] = {}
    for words, name, other in _substitutions(target):
        if words.startswith("one of the input's sizes"):
            sizes.setdefault(name, []).append(other.id)

    def product_of_sizes(node) -> bool:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            return product_of_sizes(node.left) and product_of_sizes(node.right)
        return isinstance(node, ast.Name) and node.id in sizes

    context = _Context.of(target)

    def edits(node):
        yield from _edits(node)
        yield from context.edits(node)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in sizes:
            for other in sizes[node.id]:  # this one use only
                yield "one of the input's sizes used where the reference uses another", ast.Name(other, ast.Load())
        if isinstance(node, ast.BinOp) and product_of_sizes(node):
            for size in sizes:  # c * h * w -> n * c * h * w, c * c * h * w, ...
                yield "one more of the input's sizes in a product of sizes (an extra factor in a normalization)", \
                    ast.BinOp(ast.Name(size, ast.Load()), ast.Mult(), node)

    # One edit made consistently at every place it applies (a student who flips one convention flips it
    # everywhere): both rolls of a jitter the other way, every sum an average.
    places: dict[str, list] = {}
    for statement in body:
        for node in ast.walk(statement):
            for words, replacement in _edits(node):
                if words in EVERYWHERE:
                    places.setdefault(words, []).append((node, replacement))
    walk = list(ast.walk(tree))
    for words, pairs in places.items():
        nodes = [node for node, _ in pairs]
        if len(pairs) < 2 or len({id(n) for n in nodes}) < len(nodes) or any(
                inner is not outer and inner in ast.walk(outer) for outer in nodes for inner in nodes):
            continue
        mutated = copy.deepcopy(tree)
        twins = list(ast.walk(mutated))
        for node, replacement in pairs:
            _Replace(twins[walk.index(node)], copy.deepcopy(replacement)).visit(mutated)
        ast.fix_missing_locations(mutated)
        text = ast.unparse(mutated)
        if text not in seen:
            seen.add(text)
            found.append((f"{words}, at every place it occurs", text))

    for statement in body:
        for node in ast.walk(statement):
            for words, replacement in edits(node):
                mutated = copy.deepcopy(tree)
                # the same node in the copy: found by its position in a walk of the same shape
                index = [i for i, n in enumerate(ast.walk(tree)) if n is node][0]
                twin = list(ast.walk(mutated))[index]
                new = copy.deepcopy(replacement)
                _Replace(twin, new).visit(mutated)
                ast.fix_missing_locations(mutated)
                try:
                    text = ast.unparse(mutated)
                    compile(text, f"helpers/{topic}.py", "exec")
                except (SyntaxError, ValueError, RecursionError):
                    continue
                if text in seen:
                    continue
                seen.add(text)
                found.append((words, text))
                if len(found) >= limit:
                    return found
    for words, name, other in _substitutions(target):
        mutated = copy.deepcopy(tree)
        twin = next(n for n in mutated.body if isinstance(n, ast.FunctionDef) and n.name == function)
        renamer = _Rename(name, other, only_range_steps=words.startswith("the loop steps"))
        twin.body = [renamer.visit(statement) for statement in twin.body]
        ast.fix_missing_locations(mutated)
        text = ast.unparse(mutated)
        if text not in seen and len(found) < limit:
            seen.add(text)
            found.append((words, text))
    for words, new_body in _taken_of_the_sum(target):
        mutated = copy.deepcopy(tree)
        twin = next(n for n in mutated.body if isinstance(n, ast.FunctionDef) and n.name == function)
        twin.body = new_body
        ast.fix_missing_locations(mutated)
        text = ast.unparse(mutated)
        if text not in seen and len(found) < limit:
            seen.add(text)
            found.append((words, text))
    statement = _predicted_class(target)
    if statement is not None and len(found) < limit:
        mutated = copy.deepcopy(tree)
        twin = next(n for n in mutated.body if isinstance(n, ast.FunctionDef) and n.name == function)
        twin.body.insert(len(twin.body) - len(body), statement)
        ast.fix_missing_locations(mutated)
        found.append(("the class the model predicts explained where the reference explains the given labels",
                      ast.unparse(mutated)))
    return found


def mutant_module(topic: str, text: str, name: str) -> types.ModuleType:
    """A mutant's source loaded as a module (under another name than the solution's)."""
    path = ROOT / "helpers" / f"{topic}.py"
    module = types.ModuleType(f"helpers.{topic}")
    module.__file__ = str(path)
    exec(compile(text, str(path), "exec"), module.__dict__)  # noqa: S102 - the instructor's own solution, edited
    return module


if __name__ == "__main__":
    from checks.child.specs import SPECS

    for name in sys.argv[1:] or list(SPECS):
        found = mutants(SPECS[name].topic, name)
        print(f"{name}: {len(found)} mutants")
        for words, _ in found:
            print(f"    {words}")
