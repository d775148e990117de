"""checks/judge/relations.py: each relation is found where it holds, and none is claimed where none holds."""
import pytest
import torch

from checks.judge.relations import describe

torch.manual_seed(0)
E = torch.randn(3, 3, 8, 10)
INPUTS = {"images": torch.rand(3, 3, 8, 10)}


@pytest.mark.parametrize("actual, words", [
    (E / 80, "1/H·W (H·W = 80)"),
    (E * 3, "C (C = 3): a division by C is missing"),
    (E * 0.37, "times 0.37: a missing or extra constant factor"),
    (E * 3 ** -0.5, "1/√C (C = 3): divided by √C once too often, or one norm taken over all C"),
    (E * 240 ** 0.5, "√C·H·W (C·H·W = 240): divided by √C·H·W where the reference divides by C·H·W"),
    (-E, "sign is flipped"),
    (E.abs(), "an absolute value is taken"),
    (E * torch.where(torch.rand_like(E) < 0.3, -1.0, 1.0), "equal up to the sign"),
    (E.roll(1, dims=3), "shifted by one position along the columns"),
    (E * torch.tensor([1.0, 0.5, 2.0]).view(3, 1, 1, 1), "each image is off by its own factor"),
    (E[:1].expand(3, -1, -1, -1), "every image got the same output"),
    (torch.cat([E[:1], E[1:] + 1]), "image 1 matches the reference; images 2, 3 of 3 differ"),
    (E * torch.tensor([1.0, 0.5, 2.0]).view(1, 3, 1, 1), "each channel is off by its own factor (1, 0.5, 2)"),
    (E + 0.4, "the reference plus 0.4 everywhere"),
    (2 * E - 0.4, "the reference times 2 plus -0.4"),
    (E.sign() * E.pow(2), "the output is the reference squared"),
    (E.sign() * E.abs().sqrt() * 3, "the output is the reference square-rooted: the reference squares a value the "
                                    "output takes as it is, times 3"),
    (E.clamp(-1, 1), "the output is the reference clipped to [-1, 1]"),
    (E.sign() * 0.25, "every value is ±0.25 with the reference's sign"),
    (E.clamp(min=0), "clipped to [0,"),
    (E * (torch.rand(E.shape, generator=torch.Generator().manual_seed(3)) > 0.3),
     "the output is 0 at 3"),  # about 30 %
    (E * INPUTS["images"], "the output is the reference times images, element by element"),
    (torch.where(torch.arange(10) % 9 == 0, E * 0.5, E), "except within 1 pixel of the border"),
    (E * 1.25, "W/H (W = 10, H = 8): divided by H where the reference divides by W"),
    (E + 0.25 * INPUTS["images"], "the reference plus 0.25 × images: an extra term that grows with images"),
])
def test_each_relation_is_named(actual, words):
    assert words in describe(actual, E, INPUTS, 1e-3)


def test_a_factor_equal_to_a_number_argument_names_it():
    said = describe(E * 0.3, E, INPUTS, 1e-3, numbers={"the argument 0.3": 0.3, "`window` (8)": 8.0})
    assert "which is the argument 0.3: that number applied once more" in said, said
    said = describe(torch.tensor(2.5), torch.tensor(20.0), {}, 1e-3, numbers={"`window` (8)": 8.0})
    assert "which is 1/`window` (8): that number left out" in said, said
    assert describe(torch.tensor(2.5), torch.tensor(20.0), {}, 1e-3, numbers={"`fill` (0.5)": 0.5}) == ""


def test_a_factor_fitted_to_an_output_near_zero_is_not_a_relation():
    """An output far smaller than the reference 'fits' any small factor per slice: a relation must explain
    the output itself, and a map (N, H, W) has no channel axis."""
    maps = torch.rand(2, 16, 12, generator=torch.Generator().manual_seed(2)) - 0.7
    for k in (0.02, 0.03):  # a square of the reference, 50 and 33 times smaller
        said = describe(k * maps.pow(2), maps, {"images": torch.rand(2, 3, 16, 12)}, 1e-2)
        assert "times" not in said and "channel" not in said and "own factor" not in said, said


def test_a_change_off_by_a_factor_per_image_may_be_a_number_of_steps():
    said = describe(E * torch.tensor([1.0, 0.5, 2.0]).view(3, 1, 1, 1), E, INPUTS, 1e-3, changes=True)
    assert said.startswith("each image's change is off by its own factor (1, 0.5, 2): another number of steps")


def test_the_images_that_differ_are_named_by_another_output_they_share():
    """Only the images with one value of a count per image (here steps = -1) differ: that value is named."""
    actual = torch.cat([E[:1], E[1:] + 1])
    said = describe(actual, E, INPUTS, 1e-3, others={"steps": torch.tensor([4, -1, -1])})
    assert "only the images whose steps is -1 in the reference differ (images 2, 3 of 3)" in said
    # images 2 and 3 do not share a value: the looser relation of the first image only
    said = describe(actual, E, INPUTS, 1e-3, others={"steps": torch.tensor([4, -1, 0])})
    assert said.startswith("image 1 matches the reference")


def test_a_loss_off_by_one_of_the_cases_weights_names_the_weight():
    from checks.child.outcomes import Outcome, weight_relation

    losses = Outcome("losses", "within", 1e-3, says="the losses", parts=("total", "content", "style", "tv"))
    reference = {"losses": torch.tensor([3.5, 0.5, 2.0, 1.0])}
    weights = {"content_weight": 0.5, "style_weights[0]": 2.0, "tv_weight": 0.1}
    twice = weight_relation(losses, {"losses": torch.tensor([3.25, 0.25, 2.0, 1.0])}, reference, weights)
    assert twice == "content is 0.5 times the reference's: the weight content_weight (0.5) applied twice"
    left_out = weight_relation(losses, {"losses": torch.tensor([4.0, 0.5, 2.0, 10.0])}, reference, weights)
    assert left_out == "tv is 1/0.1 times the reference's: the weight tv_weight (0.1) left out"
    assert weight_relation(losses, {"losses": torch.tensor([3.6, 0.6, 2.0, 1.0])}, reference, weights) == ""


def test_a_recorded_total_that_leaves_out_or_doubles_a_part_says_which():
    """A history whose totals are each the same other sum of their own parts (content, style, tv): the part
    left out or counted twice is named, and the outcome's generic hint gives way to it."""
    from checks.child.outcomes import STYLE_RUN, _total_terms, describe, relation

    unsummed = next(o for o in STYLE_RUN if o.name == "unsummed")
    parts = torch.tensor([[0.5, 2.0, 0.25], [0.4, 1.5, 0.3], [0.3, 1.2, 0.2]], dtype=torch.float64)

    def said(counts):
        totals = parts @ torch.tensor(counts, dtype=torch.float64)
        mine = {"unsummed": torch.tensor(1.0), "total_terms": _total_terms(torch.cat([totals[:, None], parts], 1))}
        return relation(unsummed, mine, {}, {})

    assert said([1, 1, 0]) == "each recorded total leaves tv out"
    assert said([2, 1, 1]) == "each recorded total counts content twice"
    assert said([1, 1, 1]) == ""
    noisy = torch.cat([(parts.sum(1) * torch.tensor([1.0, 1.1, 0.9], dtype=torch.float64))[:, None], parts], 1)
    assert _total_terms(noisy).numel() == 0  # no one sum fits every row
    off, none = {"unsummed": torch.tensor(0.2)}, {"unsummed": torch.tensor(0.0)}
    assert describe(unsummed, off, none).endswith(unsummed.hint)
    assert not describe(unsummed, off, none, hint=False).endswith(unsummed.hint)


def test_a_run_with_the_right_evaluations_and_little_progress_names_its_step_size():
    from checks.child.outcomes import STYLE_RUN, relation

    reached = next(o for o in STYLE_RUN if o.name == "reached")
    reference = {"evaluations": torch.tensor(8.0), "progress": torch.tensor(10.0)}

    def run(evaluations, reached_loss):
        return {"evaluations": torch.tensor(evaluations), "start": torch.tensor([40.0, 1, 1, 1]),
                "reached": torch.tensor(reached_loss)}

    assert "its steps are shorter" in relation(reached, run(8.0, 38.0), reference, {})  # 20 % of the way
    assert "its steps are longer" in relation(reached, run(8.0, 20.0), reference, {})  # 200 %
    assert relation(reached, run(8.0, 31.0), reference, {}) == ""  # 90 %: no relation to state
    assert relation(reached, run(5.0, 38.0), reference, {}) == ""  # fewer evaluations: not the step size


def test_parts_recorded_in_another_order_are_named():
    from checks.child.outcomes import Outcome, relation

    losses = Outcome("losses", "within", 1e-3, says="the losses", parts=("total", "content", "style", "tv"))
    reference = {"losses": torch.tensor([3.5, 0.5, 2.0, 1.0])}
    swapped = relation(losses, {"losses": torch.tensor([3.5, 2.0, 0.5, 1.0])}, reference, {})
    assert swapped.startswith("content and style hold each other's values")
    assert relation(losses, {"losses": torch.tensor([3.5, 2.0, 0.6, 1.0])}, reference, {}) == ""


def test_a_wrong_dtype_or_a_zero_division_says_how_to_fix_it():
    from checks.judge import _structure

    counts = torch.tensor([3, -1, 0])
    problem, _, hint = _structure(counts.float(), counts, "steps")
    assert problem == "steps: dtype float32, expected int64" and "dtype=torch.int64" in hint
    zero = torch.zeros(2, 4, 4)
    problem, finding, hint = _structure(zero / zero, zero, "")
    assert finding == "NaN values" and "the reference is 0 at each of them" in hint
    nonzero = torch.ones(2, 4, 4)
    problem, _, hint = _structure(zero / zero, nonzero, "")
    assert "(a division by zero?)" in problem and hint == ""


def test_a_missing_clamp_mask_or_product_is_named_from_the_reference_side():
    assert "the reference is the output clipped to [-1, 1]" in describe(E, E.clamp(-1, 1), INPUTS, 1e-3)
    mask = torch.rand(E.shape, generator=torch.Generator().manual_seed(4)) > 0.5
    assert "the reference is 0 at" in describe(E, E * mask, INPUTS, 1e-3)
    assert "the reference is the output times images" in describe(E, E * INPUTS["images"], INPUTS, 1e-3)


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
    from checks.judge import references
    from checks.child import specs

    spec = specs.SPECS["style_loss"]
    cases = [c for c in references.public_cases("style_loss", "style") if c["terms"]]
    assert cases
    for case in cases:
        total = sum(t["output"].double() for t in case["terms"])
        assert torch.allclose(total, case["output"]["output"].double(), rtol=1e-5), spec.name


def test_a_change_bounded_per_image_is_told_from_one_bounded_per_value():
    """An attack projected onto an L2 ball where the contract's ball is L-infinity: the relation reads the
    radius off the reference (its largest change to one value) and needs no argument of the exercise."""
    generator = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 8, 8, generator=generator) * 0.5 + 0.25
    step = torch.randn(2, 3, 8, 8, generator=generator)
    box = images + 0.05 * step.sign()  # the reference: every value moved by epsilon
    ball = images + 0.05 * step / step.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert "an L2 ball" in describe(ball, box, {"images": images}, 1e-4)
    assert "L2 ball" not in describe(box * 1.01, box, {"images": images}, 1e-4)
    assert "L2 ball" not in describe(ball, box, {}, 1e-4)  # nothing to measure the change from


@pytest.mark.parametrize("topic, check, edits, words", [
    # Written differently from the operators that name them (another axis, another statement, another form):
    # occlusion with a white patch, or the image's per-channel mean, instead of `fill`
    ("saliency", "occlusion_map", [{"replace": "= fill\n", "with": "= 1.0\n"}], "1.0 used where"),
    ("saliency", "occlusion_map", [{"replace": "= fill\n", "with": "= images.mean(dim=(-1, -2), keepdim=True)\n"}],
     "each channel's mean used where"),
    # log-probabilities for the occluded image only
    ("saliency", "occlusion_map", [{"replace": "prob = F.softmax(model(occluded)", "with": "prob = F.log_softmax(model(occluded)"}],
     "log-probabilities (a log-softmax) where the reference uses probabilities"),
    # gradient x input inside saliency's maximum
    ("saliency", "saliency_map", [{"replace": "return grad.abs().amax(dim=1)", "with": "return (images * grad).abs().amax(dim=1)"}],
     "gradient x input"),
    # each path gradient weighted by its alpha
    ("saliency", "integrated_gradients", [{"replace": "total += grad\n", "with": "total = total + grad * ((k + 0.5) / steps)\n"}],
     "weighted by its point's place along the path"),
    # Grad-CAM's weights averaged from the activations instead of their gradients
    ("gradcam", "grad_cam", [{"replace": "weights = grads.mean(dim=(2, 3), keepdim=True)",
                              "with": "weights = activations.mean(dim=(2, 3), keepdim=True)"}],
     "the values that were differentiated where the reference uses their gradient"),
    # the fooling step along the gradient's sign (an FGSM-like step)
    ("fooling", "fooling_step", [{"replace": "step_size * grad / norms", "with": "grad.sign() * step_size"}],
     "an L-infinity step"),
    # a centred Gram matrix (a covariance), centred in a statement of its own
    ("style", "gram_matrix", [{"replace": "    gram = flat @ flat.transpose(1, 2)\n",
                               "with": "    flat = flat - flat.mean(dim=2, keepdim=True)\n    gram = flat @ flat.transpose(1, 2)\n"}],
     "rows centred"),
    # total variation with fourth powers in one direction
    ("style", "tv_loss", [{"replace": "img[:, :, :, :-1]).pow(2).sum()", "with": "img[:, :, :, :-1]) ** 4).sum()"},
                          {"replace": "horizontal = (img", "with": "horizontal = ((img"}],
     "a fourth power where the reference squares"),
    # integrated gradients with path points from torch.linspace(0, 1, steps) instead of interval midpoints
    ("saliency", "integrated_gradients", [{"replace": "(k + 0.5) / steps", "with": "k / max(steps - 1, 1)"}],
     "torch.linspace(0, 1, steps)"),
    # PGD projected onto an L2 ball of radius epsilon
    ("fooling", "pgd_attack", [{"replace": "attacked = torch.min(torch.max(stepped, original - epsilon), "
                                           "original + epsilon).clamp(0, 1)",
                                "with": "delta = stepped - original\n            attacked = (original + delta * "
                                        "(epsilon / delta.flatten(1).norm(dim=1)).clamp(max=1).view(-1, 1, 1, 1)"
                                        ").clamp(0, 1)"}],
     "an L2 ball"),
    # occlusion windows stepped by the window instead of the stride: a mutant that reproduces the output to
    # round-off is named before a looser relation ("image 1 matches the reference")
    ("saliency", "occlusion_map",
     [{"replace": "for top in range(0, height - window + stride, stride):",
       "with": "for top in range(0, height - window + stride, window):"},
      {"replace": "for left in range(0, width - window + stride, stride):",
       "with": "for left in range(0, width - window + stride, window):"}],
     "the loop steps by `window` where the contract says `stride`"),
    # class visualization with the jitter rolled the other way, both there and back
    ("fooling", "class_visualization_step",
     [{"replace": "shifted = torch.roll(images.detach(), shifts=(oy, ox), dims=(2, 3))",
       "with": "shifted = torch.roll(images.detach(), shifts=(-oy, -ox), dims=(2, 3))"},
      {"replace": "return torch.roll(stepped, shifts=(-oy, -ox), dims=(2, 3))",
       "with": "return torch.roll(stepped, shifts=(oy, ox), dims=(2, 3))"}],
     "a shift in the opposite direction, at every place it occurs"),
    # SmoothGrad's absolute value taken once, of the average, instead of each copy's
    ("saliency", "smooth_grad", [{"replace": "total += grad.abs()", "with": "total = total + grad"},
                                 {"replace": "return (total / samples).amax(dim=1)",
                                  "with": "return (total / samples).abs().amax(dim=1)"}],
     "the absolute value taken of the sum where the reference adds up absolute values"),
    # SmoothGrad's stdev used as a variance
    ("saliency", "smooth_grad", [{"replace": "noise = stdev * torch.randn(",
                                  "with": "noise = stdev * stdev * torch.randn("}],
     "the argument `stdev` squared"),
    # the cap of max_steps + extra_steps given to images never fooled too
    ("fooling", "make_fooling_image", [{"replace": "cap = torch.where(steps >= 0, max_steps + extra_steps, max_steps)",
                                        "with": "cap = max_steps + extra_steps"}],
     "only the images whose steps is -1 in the reference differ"),
    # the content weight applied again to the content loss
    # saliency from the first colour channel only, by indexing
    ("saliency", "saliency_map", [{"replace": "return grad.abs().amax(dim=1)", "with": "return grad[:, 0].abs()"}],
     "one entry of an axis (its first) where the reference takes the maximum over it"),
    # total variation whose horizontal differences wrap around, written with the tensor's roll method
    ("style", "tv_loss", [{"replace": "horizontal = (img[:, :, :, 1:] - img[:, :, :, :-1])",
                           "with": "horizontal = (img.roll(1, 3) - img)"}],
     "differences that wrap around the border"),
    # the style weight on the Gram matrix only, written as a product on the right inside a power
    ("style", "style_loss", [{"replace": "term = weight * (gram_matrix(feats[layer]) - target).pow(2).sum()",
                              "with": "term = ((gram_matrix(feats[layer]) * weight - target) ** 2).sum()"}],
     "a weight on one side of a difference inside a square"),
    # the layer weights taken in reverse order
    ("style", "style_loss", [{"replace": "zip(style_layers, style_targets, style_weights)",
                              "with": "zip(style_layers, style_targets, reversed(style_weights))"}],
     "items paired with the wrong partners"),
    # total variation's second difference taken along the rows again (across the colour channels is named on
    # colour cases, but a hidden case's grey image has none: there it is "only the vertical differences")
    ("style", "tv_loss", [{"replace": "horizontal = (img[:, :, :, 1:] - img[:, :, :, :-1]).pow(2).sum()",
                           "with": "horizontal = torch.diff(img, dim=-2).pow(2).sum()"}],
     "differences along another axis than the reference's"),
    # one path point too many
    ("saliency", "integrated_gradients", [{"replace": "for k in range(steps):", "with": "for k in range(1 + steps):"}],
     "a loop range that goes one further"),
    # occlusion's drop in log-probabilities, written as the log of the softmax
    ("saliency", "occlusion_map", [{"replace": "original = F.softmax(model(images), dim=1)",
                                    "with": "original = F.softmax(model(images), dim=1).log()"},
                                   {"replace": "prob = F.softmax(model(occluded), dim=1)",
                                    "with": "prob = F.softmax(model(occluded), dim=1).log()"}],
     "log-probabilities (a log-softmax) where the reference uses probabilities (a softmax), at every place"),
    # saliency as the gradient's positive part, written with F.relu
    ("saliency", "saliency_map", [{"replace": "return grad.abs().amax(dim=1)", "with": "return F.relu(grad).amax(dim=1)"}],
     "the positive part (a ReLU) where the reference takes the absolute value"),
    # guided backprop hooking the first activation only, by a condition on the handles kept so far
    ("gradcam", "guided_backprop", [{"replace": "if isinstance(module, nn.ReLU):",
                                     "with": "if isinstance(module, nn.ReLU) and len(handles) == 0:"}],
     "the loop stops at the first item its condition holds for"),
    # Grad-CAM on the layer's input, read as the last of the hook's inputs
    ("gradcam", "grad_cam", [{"replace": "saved[\"activations\"] = output", "with": "saved[\"activations\"] = inputs[-1]"}],
     "the layer's input where the reference reads its output"),
    # integrated gradients' sum started at one, written as a sum
    ("saliency", "integrated_gradients", [{"replace": "total = torch.zeros_like(images)\n    for k in range(steps):",
                                           "with": "total = 1 + torch.zeros_like(images)\n    for k in range(steps):"}],
     "a sum or count started at one"),
    # total variation's weight applied twice (a factor no size explains: the case's number argument)
    ("style", "tv_loss", [{"replace": "return tv_weight * (vertical + horizontal)",
                           "with": "return tv_weight * tv_weight * (vertical + horizontal)"}],
     "that number applied once more than the reference applies it"),
    # a Gram matrix divided by C·C (H·W/C times the reference)
    ("style", "gram_matrix", [{"replace": "gram = gram / (c * h * w)", "with": "gram = gram / c ** 2"}],
     "divided by C where the reference divides by H·W"),
    ("style", "style_transfer", [{"replace": "total = c_loss + s_loss + t_loss",
                                  "with": "c_loss = c_loss * settings.content_weight\n"
                                          "        total = c_loss + s_loss + t_loss"}],
     "the weight content_weight ("),
])
def test_mistakes_unlike_the_stored_ones_are_named(topic, check, edits, words):
    """Mistakes reviewers wrote that no stored mistake describes, named by a generated mutant (one edit, or
    one edit made at every place it applies) or by a relation, on the public cases (what a student sees) and
    the hidden ones (the grader)."""
    from checks.judge import references
    from checks.child import specs
    from checks.child.compute import compute_case
    from checks.judge import run_check
    from tools.build_references import HIDDEN_DIR, mutated_module

    module, spec = mutated_module(topic, edits, check), specs.SPECS[check]
    for folder in (references.REFERENCES_DIR, HIDDEN_DIR):
        cases = [c for c in references.load(folder / f"{topic}.pt")["cases"] if c["check"] == check]
        verdict = run_check(spec, cases, lambda case: compute_case(spec, module, case))
        assert not verdict.passed and words in verdict.line and verdict.line.startswith(f"FAIL {check}: "), \
            verdict.line


def test_an_output_near_zero_is_said_to_be_so_not_given_a_tiny_factor():
    generator = torch.Generator().manual_seed(3)
    e = torch.rand(2, 8, 8, generator=generator) + 0.5
    tiny = 1e-7 * torch.rand(2, 8, 8, generator=generator)  # unrelated to e: only small
    said = describe(tiny, e, {}, 1e-3)
    assert said.startswith("the output is nearly zero everywhere") and "times" not in said, said
    assert describe(torch.zeros_like(e), e, {}, 1e-3) == "the output is zero everywhere"
    assert describe(0.3 * e, e, {}, 1e-3).startswith("the output is the reference times 0.3")


def test_a_scalar_off_by_an_unnamed_factor_is_not_given_a_size():
    # A size is named only when the factor is 1/size (or size) to 1e-3: a tiny factor is no 1/C·H·W.
    inputs = {"features": torch.zeros(2, 28, 14, 14)}
    said = describe(torch.tensor(-5.0e-6), torch.tensor(3822.0), inputs, 1e-3, ())
    assert "which is" not in said, said
    half = describe(torch.tensor(0.5 * 3822.0), torch.tensor(3822.0), inputs, 1e-3, ())
    assert "1/N (N = 2)" in half and "1/2" in half, half


def test_a_single_number_names_a_stored_mistake_only_when_it_is_that_number():
    """A loss 1 % from a stored mistake's is another edit's by chance (2 % would match it); 1e-5 is round-off."""
    from types import SimpleNamespace

    from checks.judge import _stored_cause

    spec = SimpleNamespace(outputs=("output",), mistake_tol=2e-2)
    case = {"output": {"output": torch.tensor(100.0)},
            "mistakes": [{"cause": "halved", "output": {"output": torch.tensor(50.0)}}]}
    assert _stored_cause(spec, case, {"output": torch.tensor(50.0005)})[0] == "halved"
    assert _stored_cause(spec, case, {"output": torch.tensor(50.5)})[0] == ""
    many = {"output": {"output": torch.ones(64)}, "mistakes": [{"cause": "halved", "output": {"output": torch.full((64,), 0.5)}}]}
    assert _stored_cause(spec, many, {"output": torch.full((64,), 0.505)})[0] == "halved"  # a map keeps 2 %


def test_a_step_is_judged_by_its_change_from_the_input():
    """An output that is an input moved a little (an attack, an ascent step) is compared by its change: a tenth of
    the reference's step is not "near" a stored mistake that never steps, though both images are within 1 %."""
    from checks.child import specs
    from checks.judge import _stored_cause, judge_case
    from checks.child.core import CaseResult

    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    step = 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(2)).sign()
    case = {"inputs": {"images": images}, "output": {"output": images + step},
            "mistakes": [{"cause": "never stepped", "output": {"output": images.clone()}}], "mutants": []}
    spec = specs.SPECS["pgd_attack"]
    assert _stored_cause(spec, case, {"output": images + step / 10}) == ("", float("inf"))
    assert _stored_cause(spec, case, {"output": images.clone()})[0] == "never stepped"
    verdict = judge_case(spec, case, CaseResult({"output": images + step / 10}))
    assert verdict.line.startswith("FAIL pgd_attack: ") and \
        "compared as changes from images: the output is the reference times 0.1" in verdict.line, verdict.line


def test_values_at_one_size_with_the_references_signs_are_named():
    """A sign step kept at one size where the reference's reach a bound, and scaled values where the reference
    takes their sign: the directions agree and the sizes do not."""
    signs = E.sign()
    bound = 0.05 * signs * (E.abs() > 0.1)  # most values at the bound, some not moved
    one_step = 0.02 * signs * (E.abs() > 0.1)
    one_step[0, 0, 0, :4] = -one_step[0, 0, 0, :4]  # a few later steps turned back: no factor, no sign relation
    assert "most values are ±0.02" in describe(one_step, bound, {}, 1e-4)
    scaled = 0.05 * E / E.abs().max() * (E.abs() > 0.1)
    assert "the output has their signs at 100% but sizes of its own" in describe(scaled, bound, {}, 1e-4)
