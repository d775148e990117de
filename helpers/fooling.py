"""Notebook 3 exercises: fooling images and class visualization, by gradient ascent on the input pixels.

    fooling_step              one normalized gradient-ascent step on the target class's raw score
    make_fooling_image        repeat it until the model predicts the target (then a few more steps)
    class_visualization_step  one jittered, L2-regularized ascent step for class visualization
    pgd_attack                projected gradient descent: the most damaging change within an L-infinity budget

Write your code between the TODO markers. Images are float RGB in [0, 1], shape (N, 3, H, W); the model
normalizes internally, so "keep the image valid" means clamp to [0, 1]. Class indices are (N,) int64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from convlens.model import as_targets


def fooling_step(model, images: torch.Tensor, targets: torch.Tensor, step_size: float) -> torch.Tensor:
    """One gradient-ascent step that raises each image's score for its target class.

    Args:
        model: classifier taking (N, 3, H, W) images in [0, 1] and returning (N, 1000) raw scores.
        images: (N, 3, H, W) float in [0, 1]; not modified.
        targets: (N,) int64 class indices, one per image.
        step_size: L2 length of each image's step, in [0, 1] pixel units (e.g. 1.0).
    Returns:
        (N, 3, H, W) new images, detached, in [0, 1]: each image moved by a step of L2 length ``step_size``
        in the direction in which its raw target score (before softmax) rises fastest, then clipped to
        [0, 1]. Each image's step depends on that image and its own target only.
    """
    # TODO START fooling_step
    # One step, for every image at once; each image's step has L2 length step_size.
    # Hints: under Exercise 1 in notebook 3.
    images = images.detach().clone().requires_grad_(True)
    scores = model(images).gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(scores, images)
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (images + step_size * grad / norms).clamp(0, 1).detach()
    # TODO END fooling_step


def make_fooling_image(model, images: torch.Tensor, targets, step_size: float = 1.0, max_steps: int = 100,
                       extra_steps: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Change images just enough that the model predicts the target classes (Szegedy et al. 2014).

    Each image takes :func:`fooling_step` steps. The model's top-1 class is checked once before the first step
    and after every step. An image stops as soon as its target was top-1 at ``extra_steps + 1`` checks in a
    row, so the result is not balanced on the decision boundary; losing the target starts that count again.
    The others go on. Caps: an image never fooled stops after ``max_steps`` steps; an image fooled at least
    once stops after ``max_steps + extra_steps`` steps in all, whether or not it holds the target then.

    Args:
        model: classifier on [0, 1] images.
        images: (N, 3, H, W) or (3, H, W) float in [0, 1]; not modified.
        targets: (N,) int64 tensor, a list of N ints, or one int for every image.
        step_size: L2 length of every step (see :func:`fooling_step`).
        max_steps: cap on the steps taken before the model predicts the target.
        extra_steps: steps the target must stay top-1 for after the first success.
    Returns:
        fooled: images of the same shape, in [0, 1], detached.
        steps: (N,) int64 on the images' device: the number of steps after which the model first predicted
            the target (0 if it already did), or -1 for an image that was not fooled within ``max_steps``.
    """
    single = images.dim() == 3
    batch = images[None] if single else images
    targets = as_targets(targets, batch.shape[0], batch.device)
    # TODO START make_fooling_image
    # Call fooling_step, only on the images that are still moving. Leave the results in `fooled`
    # (N, 3, H, W) and `steps` (N,) int64: the return line below uses them. Hints: under Exercise 2.
    fooled = batch.detach().clone()
    with torch.no_grad():
        hit = model(fooled).argmax(dim=1) == targets
    steps = torch.where(hit, 0, -1)
    streak = hit.long()
    taken = torch.zeros_like(steps)
    while True:
        cap = torch.where(steps >= 0, max_steps + extra_steps, max_steps)
        moving = (streak <= extra_steps) & (taken < cap)
        if not moving.any():
            break
        index = moving.nonzero().flatten()
        fooled[index] = fooling_step(model, fooled[index], targets[index], step_size)
        taken[index] += 1
        with torch.no_grad():
            hit = model(fooled[index]).argmax(dim=1) == targets[index]
        streak[index] = torch.where(hit, streak[index] + 1, 0)
        first = index[hit & (steps[index] < 0)]
        steps[first] = taken[first]
    # TODO END make_fooling_image
    return (fooled[0] if single else fooled), steps


def class_visualization_step(model, images: torch.Tensor, targets: torch.Tensor, l2_reg: float,
                             learning_rate: float, jitter: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """One step of class visualization (Simonyan et al. 2014) with jitter (Yosinski et al. 2015).

    The objective of image I is its raw target score minus ``l2_reg`` times its squared L2 norm. The step
    (of L2 length ``learning_rate`` per image, where the objective rises fastest) is taken at the image
    shifted by ``jitter`` (wrapping around, as ``torch.roll`` does); the result is aligned with the input
    again and clipped to [0, 1].

    Args:
        model: classifier on [0, 1] images.
        images: (N, 3, H, W) float in [0, 1]; not modified.
        targets: (N,) int64 class per image.
        l2_reg: weight of the squared L2 norm of each image (>= 0).
        learning_rate: L2 length of each image's step (the gradient is divided by its own L2 norm).
        jitter: (ox, oy) pixels to roll right (width, dim 3) and down (height, dim 2); may be negative.
    Returns:
        (N, 3, H, W) new images in [0, 1], detached, unshifted (aligned with the input).
    """
    # TODO START class_visualization_step
    # The step is taken at the shifted images; the result is aligned with the input again.
    # Hints: under Exercise 3 in notebook 3.
    ox, oy = jitter
    shifted = torch.roll(images.detach(), shifts=(oy, ox), dims=(2, 3)).requires_grad_(True)
    scores = model(shifted).gather(1, targets.view(-1, 1)).sum()
    objective = scores - l2_reg * shifted.pow(2).sum()
    (grad,) = torch.autograd.grad(objective, shifted)
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    stepped = shifted + learning_rate * grad / norms
    return torch.roll(stepped, shifts=(-oy, -ox), dims=(2, 3)).clamp(0, 1).detach()
    # TODO END class_visualization_step


def pgd_attack(model, images: torch.Tensor, labels: torch.Tensor, epsilon: float, step_size: float,
               steps: int) -> torch.Tensor:
    """Untargeted projected gradient descent in an L-infinity ball (Madry et al. 2018).

    Look for the change of the images that raises the model's cross-entropy loss for their labels most,
    among changes of at most ``epsilon`` per value. Each of the ``steps`` steps moves every value by
    ``step_size``, up or down, whichever direction raises the loss (the sign of its gradient); after each
    step, the images are brought back to the nearest point within ``epsilon`` of the ORIGINAL images in
    every value, and within [0, 1]. The attack starts from the images themselves (no random start).

    Args:
        model: classifier on [0, 1] images, (N, 3, H, W) -> (N, 1000) raw scores.
        images: (N, 3, H, W) float in [0, 1]; not modified.
        labels: (N,) int64: the classes the attack moves each image away from.
        epsilon: the budget, >= 0, in [0, 1] pixel units (e.g. 2 / 255).
        step_size: > 0, how far every value moves per step (e.g. epsilon / 4).
        steps: >= 0 number of steps.
    Returns:
        (N, 3, H, W) detached images with |result - images| <= epsilon everywhere, in [0, 1].
    """
    # TODO START pgd_attack
    # Write one step and one projection, then repeat. Hints: under Exercise 4 in notebook 3.
    original = images.detach()
    attacked = original.clone()
    for _ in range(steps):
        attacked.requires_grad_(True)
        loss = F.cross_entropy(model(attacked), labels.to(attacked.device), reduction="sum")
        (grad,) = torch.autograd.grad(loss, attacked)
        with torch.no_grad():
            stepped = attacked + step_size * grad.sign()
            attacked = torch.min(torch.max(stepped, original - epsilon), original + epsilon).clamp(0, 1)
    return attacked.detach()
    # TODO END pgd_attack
