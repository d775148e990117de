"""Tests for helpers/fooling.py and the image-making loops of convlens/visualize.py.

The reference solution is compared with independent versions (torch.func gradients with the roll written as
index arithmetic, central finite differences on a tiny float64 network, a one-image-at-a-time loop), and
the behaviour claims are tested on the real model (the session's ``model`` fixture from tests/conftest.py):
every photo can be fooled, class visualizations reach their class, DeepDream and single-channel images
raise the activations they climb. The checks are tested with the check framework.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.images import load_photos
from convlens.visualize import create_class_visualization, deep_dream, layer_activation, pixel_channel_image
from helpers.fooling import class_visualization_step, fooling_step, make_fooling_image, pgd_attack


@pytest.fixture(scope="module")
def tiny():
    """A small float64 network (3 x 6 x 6 images -> 5 classes) for finite differences and loop tests."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 6, 3, padding=1), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def finite_difference_grad(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of f at x (float64). f maps a batch (B, *x.shape) to B scalars; every
    coordinate's two shifted copies of x go through f in one batch."""
    n = x.numel()
    shifts = torch.eye(n, dtype=x.dtype).view(n, *x.shape) * eps
    values = f(torch.cat([x + shifts, x - shifts]))
    return ((values[:n] - values[n:]) / (2 * eps)).view(x.shape)


def roll_by_index(x: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """out[..., i, j] = x[..., (i - oy) % H, (j - ox) % W], written out without torch.roll."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h) - oy) % h
    cols = (torch.arange(w) - ox) % w
    return x[..., rows, :][..., cols]


# --- the reference solution against independent versions -------------------------------------------------

def test_fooling_step_matches_finite_differences(tiny):
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.6 + 0.2
    targets = torch.tensor([3, 1])
    out = fooling_step(tiny, x, targets, step_size=0.05)
    for i in range(2):
        g = finite_difference_grad(lambda batch: tiny(batch)[:, targets[i]], x[i])
        expected = (x[i] + 0.05 * g / g.norm()).clamp(0, 1)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-8)
    assert out.dtype == x.dtype and not out.requires_grad


def test_fooling_step_matches_torch_func_on_the_model(model):
    images, _, _ = load_photos(["flower", "rocket"], size=64)
    targets = torch.tensor([130, 945])
    # One image per call: in a batch, float32 round-off can move a ReLU6 unit across its kink, which changes
    # a few gradient values by ~1e-3 (the batched, per-image normalization is tested on the tiny network).
    for i in range(2):
        out = fooling_step(model, images[i:i + 1], targets[i:i + 1], step_size=2.0)[0]
        g = torch.func.grad(lambda img: model(img[None])[0, targets[i]])(images[i])
        expected = (images[i] + 2.0 * g / g.norm()).clamp(0, 1)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_class_visualization_step_matches_finite_differences(tiny):
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.6 + 0.2
    targets = torch.tensor([0, 4])
    l2_reg, lr, (ox, oy) = 0.05, 0.1, (2, -1)
    out = class_visualization_step(tiny, x, targets, l2_reg, lr, jitter=(ox, oy))
    for i in range(2):
        shifted = roll_by_index(x[i], ox, oy)
        objective = lambda batch: tiny(batch)[:, targets[i]] - l2_reg * batch.pow(2).flatten(1).sum(1)
        g = finite_difference_grad(objective, shifted)
        expected = roll_by_index(shifted + lr * g / g.norm(), -ox, -oy).clamp(0, 1)
        torch.testing.assert_close(out[i], expected, rtol=0, atol=1e-8)


def test_class_visualization_step_matches_written_out_formula(model):
    g = torch.Generator().manual_seed(3)
    images = (0.5 + 0.2 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1)
    targets = torch.tensor([130, 980])
    l2_reg, lr, (ox, oy) = 5e-3, 3.0, (-4, 7)
    for i in range(2):
        out = class_visualization_step(model, images[i:i + 1], targets[i:i + 1], l2_reg, lr, jitter=(ox, oy))[0]
        shifted = roll_by_index(images[i], ox, oy)
        score_grad = torch.func.grad(lambda img: model(img[None])[0, targets[i]])(shifted)
        grad = score_grad - 2 * l2_reg * shifted  # d/dI of score - l2_reg * ||I||^2
        expected = roll_by_index(shifted + lr * grad / grad.norm(), -ox, -oy).clamp(0, 1)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def sequential_fooling(model, image, target, step_size, max_steps, extra_steps):
    """The stopping rule for one image, written as a plain loop: returns (image, first success or -1)."""
    first, streak, taken = -1, 0, 0
    with torch.no_grad():
        if model(image[None]).argmax(1).item() == target:
            first, streak = 0, 1
    while streak <= extra_steps and taken < (max_steps + extra_steps if first >= 0 else max_steps):
        image = fooling_step(model, image[None], torch.tensor([target]), step_size)[0]
        taken += 1
        with torch.no_grad():
            hit = model(image[None]).argmax(1).item() == target
        streak = streak + 1 if hit else 0
        if hit and first < 0:
            first = taken
    return image, first


def test_batched_fooling_loop_matches_one_image_at_a_time(tiny):
    x = torch.rand(5, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        predicted = tiny(x).argmax(1)
    targets = torch.tensor([0, 1, 2, 3, 4])
    targets[0] = predicted[0]  # one image starts out fooled: it only takes the extra steps
    fooled, steps = make_fooling_image(tiny, x, targets, step_size=0.2, max_steps=40, extra_steps=2)
    assert steps.dtype == torch.int64 and steps.shape == (5,)
    assert steps[0] == 0
    for i in range(5):
        image, first = sequential_fooling(tiny, x[i], int(targets[i]), 0.2, 40, 2)
        assert steps[i] == first
        torch.testing.assert_close(fooled[i], image, rtol=0, atol=1e-12)
    assert torch.equal(x, x.clone())  # input untouched
    with torch.no_grad():
        assert (tiny(fooled).argmax(1)[steps >= 0] == targets[steps >= 0]).all()


def test_fooling_loop_respects_the_cap_and_single_images(tiny):
    x = torch.rand(3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        target = int(tiny(x[None]).argmin(1))
    fooled, steps = make_fooling_image(tiny, x, target, step_size=1e-4, max_steps=3, extra_steps=2)
    assert fooled.shape == x.shape and steps.tolist() == [-1]
    assert (fooled - x).norm() <= 3 * 1e-4 + 1e-12  # exactly max_steps steps of length step_size at most


# --- the behaviour claims on the real model -------------------------------------------------------

def test_reference_fools_every_photo_for_three_random_targets(model):
    # All shipped photos, at 128 px to keep the suite quick, each with three fixed random targets: one batch
    # of 24 images that the loop steps until each one is done.
    images, labels, _ = load_photos(size=128)
    n = len(images)
    targets = torch.randint(0, 1000, (3, n), generator=torch.Generator().manual_seed(0)).flatten()
    assert not (targets == labels.repeat(3)).any()
    fooled, steps = make_fooling_image(model, images.repeat(3, 1, 1, 1), targets, step_size=1.0,
                                       max_steps=100, extra_steps=1)
    with torch.no_grad():
        predicted = model(fooled).argmax(1)
    assert ((steps >= 1) & (steps <= 100)).all(), steps.tolist()
    assert torch.equal(predicted, targets)
    assert fooled.min() >= 0 and fooled.max() <= 1


def test_class_visualization_reaches_the_target(model):
    targets = [130, 945, 980]  # flamingo, bell pepper, volcano
    images = create_class_visualization(model, class_visualization_step, targets, size=128, steps=50, seed=0,
                                        progress=False)
    assert images.shape == (3, 3, 128, 128) and images.min() >= 0 and images.max() <= 1
    with torch.no_grad():
        probs = model(images).softmax(1)
    assert torch.equal(probs.argmax(1), torch.tensor(targets))
    assert (probs[torch.arange(3), targets] > 0.9).all(), probs[torch.arange(3), targets]


def test_pixel_space_channel_image_makes_its_channel_the_most_active(model):
    layer, channel = "block5", 7
    noise = (0.5 + 0.1 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    image = pixel_channel_image(model, layer, channel, size=64, steps=20, seed=0, progress=False)
    assert image.shape == (1, 3, 64, 64) and image.min() >= 0 and image.max() <= 1
    with torch.no_grad():
        before = layer_activation(model, layer, noise)[0, channel].mean()
        means = layer_activation(model, layer, image)[0].mean(dim=(1, 2))  # one per channel
    assert means.argmax() == channel, means.topk(3)  # measured: 28 against 16 for the runner-up
    assert means[channel] > 5 * max(before.item(), 1.0), (before, means[channel])  # measured: 0.9 -> 28


def test_deep_dream_amplifies_what_the_layer_sees(model):
    photo = load_photos(["flower"], size=96)[0]
    dreamed = deep_dream(model, photo, layer="block10", progress=False)
    assert dreamed.shape == (1, 3, 96, 96) and dreamed.min() >= 0 and dreamed.max() <= 1
    with torch.no_grad():
        energy = [0.5 * layer_activation(model, "block10", x).pow(2).mean() for x in (photo, dreamed)]
    assert energy[1] > 1.3 * energy[0], energy  # measured: 32 -> 53
    assert (dreamed - photo).abs().mean() < 0.15  # still the photo, with patterns on it (measured: 0.07)


def test_pgd_attack_equals_captum_pgd_on_a_smooth_network(tiny):
    """Independent cross-check: Captum's PGD (untargeted, L-infinity, no random start, bounds [0, 1])."""
    from captum.robust import PGD

    torch.manual_seed(5)
    images = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    labels = tiny(images).argmax(dim=1)
    ours = pgd_attack(tiny, images, labels, epsilon=0.05, step_size=0.02, steps=6)
    # Captum's default loss is -log(output), for a model that outputs probabilities; ours gives raw scores.
    pgd = PGD(tiny, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=0.0, upper_bound=1.0)
    pgd.fgsm.zero_thresh = 0.0  # Captum leaves values whose gradient is below 1e-6 alone; the contract does not
    theirs = pgd.perturb(images, radius=0.05, step_size=0.02, step_num=6, target=labels)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (ours - images).abs().max() <= 0.05 + 1e-6 and ours.min() >= 0 and ours.max() <= 1


def test_pgd_attack_agrees_with_captum_on_the_model(model):
    """On EfficientNet-Lite0 the sign of a gradient near 0 may differ with round-off: the two attacks agree on
    almost every value and on which photos they fool."""
    from captum.robust import PGD

    images, labels, _ = load_photos(["chelsea", "coffee", "rocket"], size=96)
    eps = 1 / 255
    ours = pgd_attack(model, images, labels, epsilon=eps, step_size=eps / 4, steps=4)
    pgd = PGD(model, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=0.0, upper_bound=1.0)
    pgd.fgsm.zero_thresh = 0.0
    theirs = pgd.perturb(images, radius=eps, step_size=eps / 4, step_num=4, target=labels)
    assert ((ours - theirs).abs() > 1e-6).float().mean() < 0.01
    with torch.no_grad():
        assert torch.equal(model(ours).argmax(dim=1) != labels, model(theirs).argmax(dim=1) != labels)
    assert (ours - images).abs().max() <= eps + 1e-6
