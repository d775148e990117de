"""checks/relations.py: each relation is found where it holds, and none is claimed where none holds."""
import pytest
import torch

from checks.relations import describe

torch.manual_seed(0)
E = torch.randn(3, 3, 8, 10)
INPUTS = {"images": torch.rand(3, 3, 8, 10)}


@pytest.mark.parametrize("actual, words", [
    (E / 80, "1/H·W (H·W = 80)"),
    (E * 3, "C (C = 3): a division by C is missing"),
    (E * 0.37, "times 0.37: a missing or extra constant factor"),
    (-E, "sign is flipped"),
    (E.abs(), "an absolute value is taken"),
    (E * torch.where(torch.rand_like(E) < 0.3, -1.0, 1.0), "equal up to the sign"),
    (E.roll(1, dims=3), "shifted by one position along the columns"),
    (E * torch.tensor([1.0, 0.5, 2.0]).view(3, 1, 1, 1), "each image is off by its own factor"),
    (E[:1].expand(3, -1, -1, -1), "every image got the same output"),
    (torch.cat([E[:1], E[1:] + 1]), "image 1 matches the reference; images 2, 3 of 3 differ"),
])
def test_each_relation_is_named(actual, words):
    assert words in describe(actual, E, INPUTS, 1e-3)


def test_swapped_axes_are_named():
    square = torch.randn(2, 6, 6)
    assert "axes are in another order" in describe(square.transpose(1, 2), square, {}, 1e-3)


def test_unrelated_outputs_get_no_relation():
    other = torch.Generator().manual_seed(7)
    assert describe(torch.randn(3, 3, 8, 10, generator=other), E, INPUTS, 1e-3) == ""
    assert describe(E + 0.05 * torch.randn(E.shape, generator=other), E, INPUTS, 1e-3) == ""


@pytest.mark.parametrize("kept, left", [([0], "b, c left out"), ([2], "a, b left out"), ([1, 2], "a left out")])
def test_a_sum_that_leaves_out_terms_is_named(kept, left):
    values = [torch.tensor(3.0), torch.tensor(5.0), torch.tensor(11.0)]
    terms = [{"label": name, "output": v} for name, v in zip("abc", values)]
    total = sum(values)
    assert left in describe(sum(values[k] for k in kept), total, {}, 1e-3, terms)
    assert "left out" not in describe(total * 1.5, total, {}, 1e-3, terms)


def test_stored_terms_add_up_to_the_output():
    """The build's terms are the solution on each layer alone; the loss is a sum over layers, so they add up."""
    from checks import references, specs

    spec = specs.SPECS["style_loss"]
    cases = [c for c in references.public_cases("style_loss", "style") if c["terms"]]
    assert cases
    for case in cases:
        total = sum(t["output"].double() for t in case["terms"])
        assert torch.allclose(total, case["output"]["output"].double(), rtol=1e-5), spec.name
