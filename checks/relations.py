"""What a wrong output has to do with the reference, when no stored mistake matches it.

:func:`describe` tries a short list of relations that common bugs leave behind and names the first that
holds: a sum that leaves out some of its terms, a constant factor (and which size of the inputs it equals), a flipped sign, equality up to sign or
up to an absolute value, swapped axes, a one-pixel shift, a factor per image (a normalization over the batch
instead of per image, or the reverse), one image's output given to all, right for the first image only, a change
from the input bounded per image (an L2 ball) where the reference bounds each value.
It reads only the output, the reference and the sizes of the case's inputs: no formula of an exercise.
"""
from __future__ import annotations

import itertools

import torch

FIT = 1e-3  # a relation holds when it explains the output to this fraction of the reference's scale


def describe(actual: torch.Tensor, expected: torch.Tensor, inputs: dict, tol: float, terms=()) -> str:
    """The relation that holds, in words, or ''. ``actual`` and ``expected``: float tensors of one shape; ``terms``: the
    reference's value of each element of a sum alone (``[{"label", "output"}]``), when the case has them."""
    a, e = actual.detach().to(torch.float64), expected.detach().to(torch.float64)
    if a.shape != e.shape or not (torch.isfinite(a).all() and torch.isfinite(e).all()):
        return ""
    scale = e.abs().max().item()
    if scale == 0:
        return ""
    fit = max(FIT, tol)

    def near(x: torch.Tensor, y: torch.Tensor) -> bool:
        return (x - y).abs().max().item() <= fit * scale

    found = _subset_of_terms(a, terms, near)
    if found:
        return found

    for check in (_factor, _sign, _axes, _shift, _per_image, _l2_ball):
        found = check(a, e, near, inputs)
        if found:
            return found
    return ""


def _subset_of_terms(a, terms, near) -> str:
    """The output is the sum over some elements only (a return inside the loop, an overwrite instead of +=,
    a range that starts at 1)."""
    values = [t["output"].to(torch.float64) for t in terms]
    for size in range(1, len(values)):
        for chosen in itertools.combinations(range(len(values)), size):
            if near(a, sum(values[k] for k in chosen)):
                kept = ", ".join(terms[k]["label"] for k in chosen)
                left = ", ".join(t["label"] for k, t in enumerate(terms) if k not in chosen)
                return (f"the output is the sum over {kept} only; {left} left out (a return inside the loop, "
                        "a total overwritten instead of added to, or a loop that skips an element?)")
    return ""


def _sizes(inputs: dict) -> dict[str, int]:
    """Named sizes of the case's first image-like input (N, C, H, W) or feature input (N, C, H, W), with the
    products a normalization uses."""
    for value in inputs.values():
        if isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point():
            n, c, h, w = value.shape
            return {"N": n, "C": c, "H": h, "W": w, "H·W": h * w, "C·H·W": c * h * w, "N·C·H·W": n * c * h * w,
                    "2": 2}
    return {"2": 2}


def _factor(a, e, near, inputs) -> str:
    c = (a * e).sum().item() / (e * e).sum().item()
    if abs(c - 1) < 1e-3 or not near(a, c * e):
        return ""
    if abs(c + 1) < 1e-3:
        return "the sign is flipped everywhere (the output is minus the reference)"
    names = []
    for name, size in _sizes(inputs).items():
        if size > 1 and abs(c * size - 1) < 1e-3:
            names.append(f"1/{name} ({name} = {size}): divided by {name} once too often")
        elif size > 1 and abs(c / size - 1) < 1e-3:
            names.append(f"{name} ({name} = {size}): a division by {name} is missing")
    if a.numel() == 1 and not names:
        return ""  # any number is some multiple of another: only a named size says something
    what = f"the output is the reference times {c:.4g}"
    return what + (f", which is {' or '.join(names)}" if names else ": a missing or extra constant factor")


def _sign(a, e, near, inputs) -> str:
    if near(a, e.abs()) and (e < 0).any():
        return "the output equals |reference|: an absolute value is taken where the reference keeps the sign"
    if near(a.abs(), e) and (a < 0).any():
        return "the reference equals |output|: the absolute value is missing"
    if near(a.abs(), e.abs()):
        return "equal up to the sign of some elements: a sign or an absolute value differs"
    return ""


def _axes(a, e, near, inputs) -> str:
    if a.dim() < 2 or a.dim() > 5:
        return ""
    for order in itertools.permutations(range(a.dim())):
        if order == tuple(range(a.dim())) or tuple(e.shape[i] for i in order) != tuple(a.shape):
            continue
        if near(a, e.permute(order)):
            swapped = [f"{i}<->{j}" for i, j in enumerate(order) if i < j and order[j] == i]
            return ("the axes are in another order (" + (", ".join(f"dims {s}" for s in swapped) or str(order))
                    + "): a transpose, a permute or a view where the reference keeps the axes")
    return ""


def _shift(a, e, near, inputs) -> str:
    for dim in range(a.dim() - 2, a.dim()) if a.dim() >= 2 else ():
        if a.shape[dim] < 4:
            continue
        for step in (1, -1):
            rolled = e.roll(step, dims=dim)
            inner = [slice(None)] * a.dim()
            inner[dim] = slice(1, -1)
            if near(a[tuple(inner)], rolled[tuple(inner)]) and not near(a, e):
                axis = "rows" if dim == a.dim() - 2 else "columns"
                return (f"the output is the reference shifted by one position along the {axis}: an off-by-one "
                        "in a window's or a pixel's index")
    return ""


def _per_image(a, e, near, inputs) -> str:
    if a.dim() < 2 or a.shape[0] < 2:
        return ""
    n = a.shape[0]
    rows_a, rows_e = a.reshape(n, -1), e.reshape(n, -1)
    scale = e.abs().max().item()
    first = (rows_a[0] - rows_e[0]).abs().max().item() <= FIT * scale
    if all((rows_a[i] - rows_a[0]).abs().max().item() <= FIT * scale for i in range(1, n)) and not all(
            (rows_e[i] - rows_e[0]).abs().max().item() <= FIT * scale for i in range(1, n)):
        return ("every image got the same output: one image's result was given to all (an index [0], or a "
                "reduction over the batch axis)")
    norms = (rows_e * rows_e).sum(dim=1)
    if (norms == 0).any():
        return ""
    factors = (rows_a * rows_e).sum(dim=1) / norms
    fitted = (rows_a - factors[:, None] * rows_e).abs().max().item() <= FIT * scale
    if fitted and (factors.max() - factors.min()).item() > 1e-3 * factors.abs().max().item():
        listed = ", ".join(f"{f:.3g}" for f in factors.tolist()[:4])
        return (f"each image is off by its own factor ({listed}): a normalization over the whole batch where "
                "the reference normalizes each image, or the reverse")
    if first:
        differ = [i + 1 for i in range(1, n) if (rows_a[i] - rows_e[i]).abs().max().item() > FIT * scale]
        listed = ", ".join(map(str, differ[:6])) + (", ..." if len(differ) > 6 else "")
        return f"image 1 matches the reference; image{'s' if len(differ) > 1 else ''} {listed} of {n} differ" + (
            "s" if len(differ) == 1 else "")
    return ""


def _l2_ball(a, e, near, inputs) -> str:
    """The output's change from an input of its shape stays inside an L2 ball whose radius is the largest
    change the reference makes to one value: a budget per image where the reference's is per value (an
    L-infinity ball), as when an attack projects with a norm instead of a clamp."""
    for name, value in inputs.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(a.shape) or value.dim() < 2 \
                or not value.is_floating_point():
            continue
        x = value.detach().to(torch.float64)
        mine, theirs = (a - x).flatten(1), (e - x).flatten(1)
        radius = theirs.abs().max().item()
        if radius == 0:
            continue
        norms = mine.norm(dim=1)
        if bool((norms <= radius * (1 + 1e-3)).all()) and bool((norms >= 0.9 * radius).any()) \
                and bool((theirs.norm(dim=1) > 1.5 * radius).any()):
            return (f"each image's change from {name} has an L2 norm of at most {radius:.3g}, the largest change "
                    "the reference makes to one value: the budget is spent per image (an L2 ball) where it is "
                    "per value (an L-infinity ball: every value within epsilon of the original)")
    return ""
