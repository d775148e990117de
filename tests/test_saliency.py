"""Notebook 1: the reference solution (helpers/saliency.py) against Captum and finite differences, the kit's
fast attribution code (convlens/attribution.py) against plain Captum, and deletion/insertion and the
randomization test on small synthetic cases. The checks are tested with the check framework."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens import attribution
from convlens.attribution import occlusion_lite0
from convlens.images import load_photos
from convlens.model import fast_copy
from helpers import saliency

SIZE = 96  # small and fast; `model` is the session fixture (conftest.py)


@pytest.fixture(scope="module")
def batch():
    images, labels, _ = load_photos(["chelsea", "coffee"], size=SIZE)
    return images, labels


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def softmax_of(model):
    return lambda x: F.softmax(model(x), dim=1)


# ------------------------------------------------------------------ the reference solution is right

def test_saliency_score_equals_captum_saliency_max_over_channels(model, batch):
    from captum.attr import Saliency

    images, labels = batch
    ours = saliency.saliency_map(model, images, labels)
    theirs = Saliency(model).attribute(images.clone(), target=labels, abs=True).amax(dim=1)
    assert ours.shape == (2, SIZE, SIZE) and ours.dtype == images.dtype and not ours.requires_grad
    assert (ours >= 0).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_saliency_loss_equals_captum_on_the_per_image_loss(model, batch):
    from captum.attr import Saliency

    images, labels = batch
    ours = saliency.saliency_map(model, images, labels, objective="loss")
    per_image_loss = lambda x: -F.log_softmax(model(x), dim=1)  # noqa: E731 - target picks -log p_y
    theirs = Saliency(per_image_loss).attribute(images.clone(), target=labels, abs=True).amax(dim=1)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    assert rel_err(ours, saliency.saliency_map(model, images, labels)) > 0.05  # a different quantity


def test_saliency_matches_a_finite_difference(model, batch):
    images, labels = batch
    image, label = images[:1].double(), labels[:1]
    net = copy.deepcopy(model).double()
    sal = saliency.saliency_map(net, image, label)[0]
    row, col = divmod(int(sal.argmax()), SIZE)
    channel_grads = []
    for c in range(3):
        step = torch.zeros_like(image)
        step[0, c, row, col] = 1e-4
        up, down = net(image + step)[0, label], net(image - step)[0, label]
        channel_grads.append(((up - down) / 2e-4).abs().item())
    assert max(channel_grads) == pytest.approx(sal[row, col].item(), rel=1e-3)


# 64 px: 7 x 7 window positions; 70 px with window 24, stride 12: the last window overhangs the border.
@pytest.mark.parametrize("size,window,stride,fill", [(64, 16, 8, 0.5), (70, 24, 12, 0.0)])
def test_occlusion_map_equals_captum_occlusion_on_probabilities(model, size, window, stride, fill):
    from captum.attr import Occlusion

    images, labels, _ = load_photos(["chelsea", "coffee"], size=size)
    ours = saliency.occlusion_map(model, images, labels, window=window, stride=stride, fill=fill)
    theirs = Occlusion(softmax_of(model)).attribute(images, sliding_window_shapes=(3, window, window),
                                                     strides=stride, baselines=fill, target=labels)
    assert ours.shape == (2, size, size)
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-4, atol=1e-6)
    assert ours.abs().max() > 1e-3  # the patches did change the probability


@pytest.mark.parametrize("baseline, steps", [(0.0, 8), (0.5, 3), (1.0, 2)])  # Captum needs 2 or more
def test_integrated_gradients_exercise_equals_captum_midpoint_riemann(model, batch, baseline, steps):
    """The exercise's definition is Captum's method="riemann_middle": same points (k + 1/2) / steps, equal
    weights; so the reference solution must give Captum's numbers on the same network. In float64: Captum
    runs all the points as one batch and the solution one step at a time, and in float32 on one thread the two
    batch sizes round differently enough to flip a few ReLU6 gates (a 2e-3 relative difference)."""
    from captum.attr import IntegratedGradients

    images, labels = batch
    model, images = copy.deepcopy(model).double(), images.double()
    ours = saliency.integrated_gradients(model, images, labels, baseline=baseline, steps=steps)
    theirs = IntegratedGradients(model).attribute(images.clone(), baselines=baseline, target=labels, n_steps=steps,
                                                  method="riemann_middle")
    assert ours.shape == images.shape and ours.dtype == images.dtype and not ours.requires_grad
    assert rel_err(ours, theirs) < 1e-6  # float32 rounding of the points themselves: 3e-8


def test_integrated_gradients_exercise_is_complete_with_enough_steps(model):
    """Completeness, written out: the attributions sum to s_y(x) - s_y(baseline) as the steps grow."""
    images, labels, _ = load_photos(["chelsea"], size=64)
    with torch.no_grad():
        gap = (model(images)[0, labels[0]] - model(torch.full_like(images, 0.5))[0, labels[0]]).item()
    total = saliency.integrated_gradients(model, images, labels, baseline=0.5, steps=256).sum().item()
    assert abs(total - gap) < 0.02 * abs(gap), (total, gap)


@pytest.mark.parametrize("stdev, samples, seed", [(0.15, 4, 0), (0.3, 2, 9)])
def test_smoothgrad_exercise_equals_captum_noise_tunnel_over_saliency(model, batch, stdev, samples, seed):
    """The exercise's definition is Captum's NoiseTunnel(Saliency) with nt_type="smoothgrad" (the mean of
    |gradient| over the noisy copies), then the max over channels. Captum draws its own noise, so it is handed
    the docstring's draw, in its order (copies of one image next to each other)."""
    from captum.attr import NoiseTunnel, Saliency

    images, labels = batch
    ours = saliency.smooth_grad(model, images, labels, stdev=stdev, samples=samples, seed=seed)
    noise = stdev * torch.randn((samples, *images.shape), generator=torch.Generator().manual_seed(seed))
    tunnel = NoiseTunnel(Saliency(model))
    tunnel._add_noise_to_input = lambda x, _, copies: (x.repeat_interleave(copies, dim=0)
                                                       + noise.transpose(0, 1).reshape(-1, *x.shape[1:]))
    theirs = tunnel.attribute(images.clone(), nt_type="smoothgrad", nt_samples=samples, stdevs=stdev,
                              target=labels).amax(dim=1)
    assert ours.shape == (2, SIZE, SIZE) and ours.dtype == images.dtype and not ours.requires_grad
    assert rel_err(ours, theirs) < 1e-5
    # The noise matters: without it the map is the vanilla saliency map, and with it the map differs.
    vanilla = saliency.saliency_map(model, images, labels)
    torch.testing.assert_close(saliency.smooth_grad(model, images, labels, stdev=0.0, samples=2), vanilla)
    assert rel_err(ours, vanilla) > 0.05


def test_student_functions_reject_bad_arguments(model, batch):
    images, labels = batch
    with pytest.raises(ValueError, match="objective"):
        saliency.saliency_map(model, images, labels, objective="probability")
    with pytest.raises(ValueError, match="stride"):
        saliency.occlusion_map(model, images, labels, window=8, stride=16)
    with pytest.raises(ValueError, match="samples"):
        saliency.smooth_grad(model, images, labels, samples=0)


# ------------------------------------------------------------------ the fast helpers

def test_fast_copy_leaves_the_model_alone_and_gives_the_same_logits(model, batch):
    images, _ = batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m) for m in model.modules()]
    fast = fast_copy(model)
    assert fast is not model and fast_copy(fast) is fast
    assert [type(m) for m in model.modules()] == kinds
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]) and value.is_contiguous(), key
    assert all(not p.requires_grad for p in fast.parameters())
    with torch.no_grad():
        torch.testing.assert_close(fast(images.contiguous(memory_format=torch.channels_last)), model(images),
                                   rtol=1e-4, atol=1e-4)


# 64, 96 and 160 px take both incremental cuts (sides multiple of 8; at 96 px with stride 12 the last windows
# overhang the border; at 160 px crops sit away from every border), 100 px only the first (multiple of 4),
# 70 px the plain batched path. Both compute the drop of the logit, as Captum's Occlusion on the model.
@pytest.mark.parametrize("size,window,stride,baseline", [
    (64, 16, 8, 0.0), (96, 16, 12, 0.5), (160, 16, 8, 0.5), (100, 20, 10, 0.0), (70, 16, 8, 0.5)])
def test_fast_occlusion_equals_plain_captum_on_the_logits(model, size, window, stride, baseline):
    from captum.attr import Occlusion

    # One photo at 160 px: there plain Captum runs 361 forward passes per photo.
    images, labels, _ = load_photos(["chelsea", "rocket"][:1 if size >= 160 else 2], size=size)
    plain = Occlusion(model).attribute(images, sliding_window_shapes=(3, window, window), strides=stride,
                                       baselines=baseline, target=labels)
    fast = attribution.occlusion_attribution(model, images, labels, window=window, stride=stride,
                                             baseline=baseline, batch_size=8)
    assert fast.shape == plain.shape
    assert plain.abs().max() > 1e-2  # the windows did move the logits
    assert rel_err(fast, plain) < 1e-4


def test_incremental_parts_reproduce_the_full_forward(model):
    fast = fast_copy(model)
    x = torch.rand(2, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        h = x
        for part in occlusion_lite0._lite0_parts(fast):
            h = part(h)
        torch.testing.assert_close(h, fast(x))


@pytest.mark.parametrize("cut", [0, 1])
def test_lite0_cut_reads_measured_by_perturbing_single_positions(model, cut):
    # The incremental occlusion trusts _LITE0_CUTS: output p of a cut reads inputs ratio*p - before ..
    # ratio*p + after. Perturb one input position at a time and see which outputs move.
    ratio, before, after = occlusion_lite0._LITE0_CUTS[cut]
    parts = occlusion_lite0._lite0_parts(fast_copy(model))
    torch.manual_seed(0)  # again: the copy's new Conv2d layers drew from the generator
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        for part in parts[:cut]:
            x = part(x)
        clean = parts[cut](x)
        size = x.shape[-1]
        for position in (0, 1, size // 2 - 1, size // 2, size - 2, size - 1):
            bumped = x.clone()
            bumped[..., position, :] += 1.0  # a whole row, so only the row direction is measured
            moved = (parts[cut](bumped) - clean).abs().amax(dim=(0, 1, 3)) > 1e-5
            expected = [ratio * p - before <= position <= ratio * p + after for p in range(len(moved))]
            assert moved.tolist() == expected, (position, moved.nonzero().flatten().tolist())


def test_integrated_gradients_helper_equals_captum(model, batch):
    from captum.attr import IntegratedGradients

    images, labels = batch
    ours = attribution.fast_integrated_gradients(model, images, labels, steps=8, batch_size=5)
    assert ours.shape == images.shape and ours.is_contiguous() and ours.dtype == images.dtype
    # On the same (folded, channels_last) network Captum gives the same numbers: same points, weights, sums.
    # Compared in float64: in float32 Captum's one batch of 8 points and the helper's batches of 5 and 3 round
    # differently, and with oneDNN off that flips enough ReLU6 gates to move the map by ~1e-3 of its scale.
    fast = fast_copy(model).double()
    images64 = images.double()
    ours64 = attribution.fast_integrated_gradients(fast, images64, labels, steps=8, batch_size=5)
    same_net = IntegratedGradients(fast).attribute(images64.contiguous(memory_format=torch.channels_last),
                                                   target=labels, n_steps=8)
    assert ours64.dtype == torch.float64 and rel_err(ours64, same_net) < 1e-6  # Captum's weights are float32: 2e-8
    # On the original network: gradients are piecewise constant (ReLU6), and the folded BatchNorm's round-off
    # can flip a unit at a kink at one path point, which moves attributions by up to ~1e-2 of the scale and
    # the sums by ~1e-5 of the total |attribution| (measured: 4e-3 and 5e-6 for chelsea at 96 px, 2 threads).
    theirs = IntegratedGradients(model).attribute(images, target=labels, n_steps=8)
    assert rel_err(ours, theirs) < 1e-2
    sum_gap = (ours.sum(dim=(1, 2, 3)) - theirs.sum(dim=(1, 2, 3))).abs()
    assert (sum_gap <= 1e-4 * theirs.abs().sum(dim=(1, 2, 3))).all(), sum_gap


def test_pass_counter_counts_images_through_forward_and_backward(model, batch):
    images, labels = batch
    with attribution.PassCounter(model) as cost:
        saliency.saliency_map(model, images, labels)
        with torch.no_grad():
            model(images[:1])
    assert (cost.forward, cost.backward) == (3, 2) and cost.seconds > 0
    assert not model._forward_hooks  # the hook is gone


def test_attribution_map_reductions():
    a = torch.tensor([[[[1.0]], [[-3.0]], [[2.0]]]])  # (1, 3, 1, 1)
    assert attribution.attribution_map(a).item() == 3.0
    assert attribution.attribution_map(a, "abs_sum").item() == 6.0
    assert attribution.attribution_map(a, "sum").item() == 0.0


def test_superpixels_are_a_compact_label_image(batch):
    images, _ = batch
    labels = attribution.superpixels(images[0], segments=20)
    assert labels.shape == (SIZE, SIZE) and labels.dtype == torch.int64
    found = labels.unique()
    assert torch.equal(found, torch.arange(len(found))) and 10 <= len(found) <= 20


# ------------------------------------------------------------------ deletion and insertion

class SquareDetector(nn.Module):
    """Two classes; class 0's logit grows with the mean brightness inside one square of the image."""

    def __init__(self, square: torch.Tensor):
        super().__init__()
        self.register_buffer("square", square.float())

    def forward(self, x):
        inside = (x.mean(dim=1) * self.square).sum(dim=(1, 2)) / self.square.sum()
        logit = 20.0 * inside - 10.0
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def square_case(size=48):
    square = torch.zeros(size, size)
    square[10:20, 26:36] = 1
    images = square.expand(1, 3, size, size).clone()  # a bright square on black
    oracle = square[None] + 0.01 * torch.rand(1, size, size)
    random = torch.rand(1, size, size)
    return SquareDetector(square), images, torch.tensor([0]), oracle, random


def test_an_oracle_map_beats_a_random_map_at_deletion_and_insertion():
    net, images, labels, oracle, random = square_case()
    scores = {}
    for mode in ("deletion", "insertion"):
        for name, maps in (("oracle", oracle), ("random", random)):
            curves = attribution.causal_curves(net, images, labels, maps, mode=mode, steps=16)
            assert curves.shape == (1, 17) and ((curves >= 0) & (curves <= 1)).all()
            scores[mode, name] = attribution.causal_scores(curves).item()
    assert scores["deletion", "oracle"] < 0.1 < 0.3 < scores["deletion", "random"]
    assert scores["insertion", "oracle"] > 0.9 > 0.8 > scores["insertion", "random"]


def test_causal_curves_end_points():
    net, images, labels, oracle, _ = square_case()
    deletion = attribution.causal_curves(net, images, labels, oracle, mode="deletion", steps=8)
    insertion = attribution.causal_curves(net, images, labels, oracle, mode="insertion", steps=8)
    probability = lambda x: F.softmax(net(x), dim=1)[:, 0]  # noqa: E731
    torch.testing.assert_close(deletion[:, 0], probability(images))
    torch.testing.assert_close(deletion[:, -1], probability(torch.zeros_like(images)))
    torch.testing.assert_close(insertion[:, -1], probability(images))
    assert insertion[0, 0] < 0.05  # the blurred square is too dim for the detector
    assert attribution.causal_scores(torch.ones(2, 5)).tolist() == [1.0, 1.0]


# ------------------------------------------------------------------ cascading randomization

def tiny_net():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    return net.eval().requires_grad_(False)


def test_cascading_randomization_separates_model_dependent_maps():
    net = tiny_net()
    before = copy.deepcopy(net.state_dict())
    images, labels = torch.rand(2, 3, 24, 24), torch.tensor([1, 3])
    explainers = {
        "gradient": lambda m, x, y: saliency.saliency_map(m, x, y),
        "image only": lambda m, x, y: x.mean(dim=1),  # ignores the model: the test must flag it
    }
    stages = [("fc", ["6"]), ("conv2", ["2"]), ("conv1", ["0"])]
    result = attribution.cascading_randomization(net, images, labels, explainers, stages=stages)
    assert result.stages == ["original", "fc", "conv2", "conv1"]
    assert result.maps["gradient"].shape == (4, 2, 24, 24)
    assert result.correlations["image only"].shape == (4, 2)
    assert result.correlations["image only"] == pytest.approx(1.0)
    assert (result.correlations["gradient"][0] == 1.0).all()
    assert abs(result.correlations["gradient"][-1]).max() < 0.8
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_cascade_stages_cover_every_lite0_block_top_down(model):
    stages = attribution.cascade_stages(model)
    names = [name for name, _ in stages]
    assert names[:2] == ["fc", "head"] and names[-1] == "stem"
    paths = [p for _, group in stages for p in group]
    blocks = [p for p in paths if p.startswith("_blocks.")]
    assert blocks == [f"_blocks.{i}" for i in range(15, -1, -1)]
