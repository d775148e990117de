"""What a wrong output has to do with the reference, when no stored mistake matches it.

:func:`describe` tries a short list of relations that common bugs leave behind and names the first that
holds: a sum that leaves out some of its terms, only the images with one value of another output (a count)
differing, an output that is (nearly) zero, a constant factor (and which size of the inputs it equals), a flipped sign, equality up to sign or
up to an absolute value, swapped axes, a one-pixel shift, a factor per image (a normalization over the batch
instead of per image, or the reverse), one image's output given to all, right for the first image only, a change
from the input bounded per image (an L2 ball) where the reference bounds each value, a factor per channel, a
rescaling with an offset, a square or a square root of the reference, the reference's signs at one size, one
clipped to the other's range, values zeroed by a mask, a product with an input, an extra term that grows with
an input, and equality away from the border. A factor is named by the size or the number argument it equals.
It reads only the output, the reference and the sizes of the case's inputs: no formula of an exercise.
"""
from __future__ import annotations

import functools
import itertools

import torch

FIT = 1e-3  # a relation holds when it explains the output to this fraction of the reference's scale


def describe(actual: torch.Tensor, expected: torch.Tensor, inputs: dict, tol: float, terms=(),
             others: dict | None = None, numbers: dict | None = None, changes: bool = False) -> str:
    """The relation that holds, in words, or ''. ``actual`` and ``expected``: float tensors of one shape; ``inputs``:
    the case's inputs, or only their shapes (``torch.Size``) where the outputs are changes from one (``changes``);
    ``terms``: the reference's value of each element of a sum alone (``[{"label", "output"}]``), when the case has
    them; ``others``: the reference's other outputs of the same call ({name: tensor}), such as a count per image;
    ``numbers``: the case's number arguments ({words naming one: value}), which a factor may equal."""
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
    largest = a.abs().max().item()
    if largest <= fit * scale:
        # Then any small factor "fits" (a saturated sigmoid, a gradient that never arrived): say only this.
        return ("the output is zero everywhere" if largest == 0 else
                f"the output is nearly zero everywhere (at most {largest / scale:.2g} of the reference's scale)")

    found = _by_other_output(a, e, near, others or {})
    if found:
        return found
    for check in (functools.partial(_factor, numbers=numbers or {}), _sign, _axes, _shift,
                  functools.partial(_per_image, changes=changes), _l2_ball, _per_channel, _offset, _power, _signs,
                  _clamped, _one_size, _zeroed, _times_input, _plus_input, _border):
        found = check(a, e, near, inputs)
        if found:
            return found
    return ""


def _explains(a, fitted) -> bool:
    """A fitted relation says something about the output only where it leaves little of it unexplained: beside
    a large reference, any output near zero "fits" every small factor."""
    return (a - fitted).abs().max().item() <= 0.1 * a.abs().max().item()


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
        if isinstance(value, torch.Size) and len(value) == 4 or (
                isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point()):
            n, c, h, w = value if isinstance(value, torch.Size) else value.shape
            return {"N": n, "C": c, "H": h, "W": w, "H·W": h * w, "C·H·W": c * h * w, "N·C·H·W": n * c * h * w,
                    "2": 2}
    return {"2": 2}


def _base_sizes(sizes: dict) -> dict[str, int]:
    """The single sizes and the products a normalization uses, without the 2."""
    return {name: size for name, size in sizes.items() if name != "2" and size > 1}


def _factor(a, e, near, inputs, numbers: dict) -> str:
    c = (a * e).sum().item() / (e * e).sum().item()
    if abs(c - 1) < 1e-3 or not near(a, c * e) or not _explains(a, c * e):
        return ""
    if abs(c + 1) < 1e-3:
        return "the sign is flipped everywhere (the output is minus the reference)"
    names = []
    sizes = _sizes(inputs)
    for name, size in sizes.items():
        if size > 1 and abs(c * size - 1) < 1e-3:
            names.append(f"1/{name} ({name} = {size}): divided by {name} once too often")
        elif size > 1 and abs(c / size - 1) < 1e-3:
            names.append(f"{name} ({name} = {size}): a division by {name} is missing")
        elif name != "2" and size > 1 and abs(c * size ** 0.5 - 1) < 1e-3:
            names.append(f"1/√{name} ({name} = {size}): divided by √{name} once too often, or one norm taken over "
                         f"all {name} where the reference takes one for each")
        elif name != "2" and size > 1 and abs(c / size ** 0.5 - 1) < 1e-3:
            names.append(f"√{name} ({name} = {size}): divided by √{name} where the reference divides by {name}")
    for words, value in numbers.items():  # after the sizes: a size is the likelier cause where both fit
        if abs(value) not in (0, 1) and abs(c / value - 1) < 1e-3:
            names.append(f"{words}: that number applied once more than the reference applies it")
        elif abs(value) not in (0, 1) and abs(c * value - 1) < 1e-3:
            names.append(f"1/{words}: that number left out")
    if not names:  # one size in the place of another: C·C where the reference divides by C·H·W is H·W/C
        for (top, p), (bottom, q) in itertools.permutations(_base_sizes(sizes).items(), 2):
            if p != q and abs(c * q / p - 1) < 1e-3 and len(names) < 2:  # two where sizes coincide (N = C)
                names.append(f"{top}/{bottom} ({top} = {p}, {bottom} = {q}): divided by {bottom} where the "
                             f"reference divides by {top}")
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


def _by_other_output(a, e, near, others: dict) -> str:
    """The images that differ are exactly those that share one value of another output, a count per image (the
    step at which each image was fooled, say): the code goes wrong in the branch that handles those images."""
    n = a.shape[0] if a.dim() >= 2 else 0
    differ = [i for i in range(n) if not near(a[i], e[i])]
    if not 0 < len(differ) < n:
        return ""
    for name, values in others.items():
        if values.is_floating_point() or tuple(values.shape) != (n,):
            continue
        for value in sorted(set(values.tolist())):
            if [i for i in range(n) if values[i].item() == value] == differ:
                listed = ", ".join(str(i + 1) for i in differ[:6]) + (", ..." if len(differ) > 6 else "")
                return (f"only the image{'s' if len(differ) > 1 else ''} whose {name} is {value} in the reference "
                        f"differ{'' if len(differ) > 1 else 's'} (image{'s' if len(differ) > 1 else ''} {listed} of "
                        f"{n}); the others match: look at how your code treats an image with {name} {value}")
    return ""


def _per_image(a, e, near, inputs, changes: bool = False) -> str:
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
    factors = _factors_along(a, e, 0)
    if factors is None:
        return ""
    fitted = (rows_a - factors[:, None] * rows_e).abs().max().item() <= FIT * scale
    if fitted and _unequal(factors) and _explains(rows_a, factors[:, None] * rows_e):
        listed = ", ".join(f"{f:.3g}" for f in factors.tolist()[:4])
        if changes:  # a step's length, or how many steps an image took, is per image too
            return (f"each image's change is off by its own factor ({listed}): another number of steps or another "
                    "step length for each image, or a normalization over the whole batch where the reference "
                    "normalizes each image (or the reverse)")
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


def _offset(a, e, near, inputs) -> str:
    """a = k·e + c with a constant c that matters: something subtracted (or not) everywhere."""
    if a.numel() < 2:
        return ""
    x, y = e.flatten(), a.flatten()
    centred = x - x.mean()
    if (centred * centred).sum().item() == 0:
        return ""
    k = ((y - y.mean()) * centred).sum().item() / (centred * centred).sum().item()
    c = (y.mean() - k * x.mean()).item()
    scale = e.abs().max().item()
    if abs(c) <= FIT * scale or not near(a, k * e + c) or not _explains(a, k * e + c):
        return ""
    if abs(k - 1) < 1e-3:
        return (f"the output is the reference plus {c:.4g} everywhere: a constant offset (a baseline, a mean or a "
                "minimum subtracted where the reference does not, or the reverse)")
    return (f"the output is the reference times {k:.4g} plus {c:.4g}: a rescaling with an offset (a "
            "normalization by a range, or a baseline, a mean or a minimum subtracted)")


def _power(a, e, near, inputs) -> str:
    """a = k·e² or k·√e (keeping signs): a square where the reference takes the value, or the reverse."""
    if a.numel() < 2:
        return ""
    for p, words in ((2.0, "squared: a square where the reference takes the value (or its absolute value)"),
                     (0.5, "square-rooted: the reference squares a value the output takes as it is")):
        shaped = e.sign() * e.abs().pow(p)
        norm = (shaped * shaped).sum().item()
        if norm == 0:
            continue
        k = (a * shaped).sum().item() / norm
        if k != 0 and near(a / k, shaped) and not near(shaped, e):
            return f"the output is the reference {words}" + ("" if abs(k - 1) < 1e-3 else f", times {k:.4g}")
    return ""


def _factors_along(a, e, dim: int):
    """The least-squares factor of each slice along ``dim`` (a ≈ factor · e within it), or None where a slice of
    the reference is all zero."""
    rows_a = a.transpose(0, dim).reshape(a.shape[dim], -1)
    rows_e = e.transpose(0, dim).reshape(a.shape[dim], -1)
    norms = (rows_e * rows_e).sum(dim=1)
    return None if (norms == 0).any() else (rows_a * rows_e).sum(dim=1) / norms


def _unequal(factors) -> bool:
    return (factors.max() - factors.min()).item() > 1e-3 * factors.abs().max().item()


def _per_channel(a, e, near, inputs) -> str:
    """A factor of its own for each channel (axis 1 of an (N, C, ...) output; an (N, H, W) map has none)."""
    if a.dim() < 3 or a.shape[1] < 2:
        return ""
    sizes = _sizes(inputs)
    if a.dim() == 3 and (a.shape[1] != sizes.get("C") or tuple(a.shape[1:]) == (sizes.get("H"), sizes.get("W"))):
        return ""
    factors = _factors_along(a, e, 1)
    if factors is None or not _unequal(factors):
        return ""
    fitted = e * factors.view(1, -1, *([1] * (a.dim() - 2)))
    if not near(a, fitted) or not _explains(a, fitted):
        return ""
    listed = ", ".join(f"{f:.3g}" for f in factors.tolist()[:4])
    return (f"each channel is off by its own factor ({listed}): something computed per channel (a weight, a "
            "normalization, a colour channel) where the reference treats the channels alike, or the reverse")


def _clamped(a, e, near, inputs) -> str:
    """One is the other clipped to a range: a clamp, a ReLU or a max with zero too many, or one missing."""
    if a.numel() < 2:
        return ""
    for clipped, whole, words in ((a, e, "the output is the reference clipped to {range} ({share} of the values cut): "
                                   "a clamp, a ReLU or a maximum with zero that the reference does not take"),
                                  (e, a, "the reference is the output clipped to {range} ({share} of the output's "
                                   "values lie outside): a clamp, a ReLU or a maximum with zero is missing")):
        low, high = clipped.min(), clipped.max()
        share = ((whole < low) | (whole > high)).float().mean().item()
        if share > 0.01 and near(clipped, whole.clamp(low, high)):
            return words.format(range=f"[{low.item():.3g}, {high.item():.3g}]", share=f"{share:.0%}")
    return ""


def _signs(a, e, near, inputs) -> str:
    """Every value is ±b, with the reference's sign: the same directions, one size for all (sign steps of
    another length, or a bound every value reaches)."""
    if a.numel() < 2:
        return ""
    size = a.abs().max()
    moved = e != 0
    if size == 0 or not bool(moved.any()) or not near(a, size * e.sign()):
        return ""
    return (f"every value is ±{size.item():.3g} with the reference's sign, where the reference's reach "
            f"{e.abs().max().item():.3g}: the same directions with another size (a step length or a bound)")


def _at_one_size(t, scale) -> tuple[float, float]:
    """(b, the share of t's non-zero values at ±b), b the largest |value|: how much of t sits at one size."""
    moved = t[t != 0].abs()
    if moved.numel() == 0:
        return 0.0, 0.0
    size = moved.max().item()
    return size, ((moved - size).abs() <= FIT * scale).double().mean().item()


def _one_size(a, e, near, inputs) -> str:
    """Most of the reference's values sit at one size ±b (sign steps, or the bound they reach) and the output's
    sit at another size, or at sizes of their own, with the reference's signs: the directions are right and the
    sizes are not."""
    if a.numel() < 16:
        return ""
    scale = e.abs().max().item()
    theirs, their_share = _at_one_size(e, scale)
    mine, my_share = _at_one_size(a, scale)
    moved = (e != 0) & (a != 0)
    agree = (a.sign() == e.sign())[moved].double().mean().item() if bool(moved.any()) else 0.0
    if their_share < 0.5 or agree < 0.9:
        return ""
    if my_share >= 0.5 and abs(mine - theirs) > FIT * scale:
        return (f"most values are ±{mine:.3g} ({my_share:.0%} of those that move) where the reference's are "
                f"±{theirs:.3g} ({their_share:.0%}), with its signs at {agree:.0%}: one size for every value, another "
                "than the reference's (one step kept, or each step taken from the same start?)")
    if my_share < 0.2:
        return (f"most of the reference's values are ±{theirs:.3g} ({their_share:.0%} of those that move); the "
                f"output has their signs at {agree:.0%} but sizes of its own: the values themselves (scaled) where "
                "the reference takes their sign")
    return ""


def _zeroed(a, e, near, inputs) -> str:
    """One equals the other where it is not zero, and is zero at some values where the other is not: a mask."""
    if a.numel() < 2:
        return ""
    scale = e.abs().max().item()
    for mine, theirs, words in ((a, e, "the output is 0 at {share} of the values where the reference is not, "
                                 "and equals it elsewhere: a mask, a ReLU or a condition that zeroes values "
                                 "the reference keeps"),
                                (e, a, "the reference is 0 at {share} of the values where the output is not, "
                                 "and equals it elsewhere: a mask, a ReLU or a condition that zeroes values is "
                                 "missing")):
        dropped = (mine.abs() <= FIT * scale) & (theirs.abs() > FIT * scale)
        share = dropped.float().mean().item()
        if share > 0.01 and near(torch.where(dropped, torch.zeros_like(theirs), theirs), mine):
            return words.format(share=f"{share:.0%}")
    return ""


def _border(a, e, near, inputs) -> str:
    """Equal away from the edges, different within a few pixels of them: how windows, padding or the last
    row or column are handled at the border."""
    if a.dim() < 2 or min(a.shape[-2:]) < 8:
        return ""
    for margin in range(1, min(a.shape[-2:]) // 4 + 1):
        inner = a[..., margin:-margin, margin:-margin], e[..., margin:-margin, margin:-margin]
        if near(*inner):
            return (f"the output matches the reference except within {margin} pixel{'s' if margin > 1 else ''} "
                    "of the border: how windows, padding or the last row and column are handled at the edges")
    return ""


def _plus_input(a, e, near, inputs) -> str:
    """The output is the reference plus a multiple of an input of its shape (plus a constant): an extra term
    that grows with the input, such as a sum started at a non-zero value and then multiplied by the input."""
    for name, value in inputs.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(a.shape) or not value.is_floating_point():
            continue
        x, d = value.detach().to(torch.float64).flatten(), (a - e).flatten()
        centred = x - x.mean()
        spread = (centred * centred).sum().item()
        if spread == 0:
            continue
        k = (centred * (d - d.mean())).sum().item() / spread
        c = (d.mean() - k * x.mean()).item()
        extra = k * x + c
        if (extra.abs().max().item() > FIT * e.abs().max().item() and near(a.flatten(), e.flatten() + extra)
                and (d - extra).abs().max().item() <= 0.1 * d.abs().max().item()):
            term = f"{k:.4g} × {name}" + (f" + {c:.4g}" if abs(c) > FIT * e.abs().max().item() else "")
            return (f"the output is the reference plus {term}: an extra term that grows with {name} (a sum that "
                    f"starts at a value other than zero, then multiplied by {name}, or a term added once too often)")
    return ""


def _times_input(a, e, near, inputs) -> str:
    """The output is the reference times an input of its shape, element by element, or the reference is the
    output times it (gradient × input where the method takes the gradient alone, or the reverse)."""
    for name, value in inputs.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(a.shape) or not value.is_floating_point():
            continue
        x = value.detach().to(torch.float64)
        if near(x, torch.ones_like(x)):
            continue
        if near(a, e * x):
            return (f"the output is the reference times {name}, element by element: a product with the input "
                    "(such as gradient × input) that the reference does not take")
        if near(a * x, e):
            return (f"the reference is the output times {name}, element by element: a product with the input "
                    "(such as gradient × input) is missing")
    return ""
