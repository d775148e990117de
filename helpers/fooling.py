"""Notebook 3: fooling images and class visualization, done by gradient ascent on the input pixels.

Every image here is float RGB in [0, 1], shape (N, 3, H, W); the model normalizes internally, so "keep the
image valid" means clamp to [0, 1]. Class indices are int64 tensors of shape (N,).

The student writes three functions (between TODO markers):

* :func:`fooling_step` - one normalized gradient-ascent step on the target class's raw score;
* :func:`make_fooling_image` - repeat it until the model predicts the target (then a few more steps);
* :func:`class_visualization_step` - one jittered, L2-regularized ascent step for class visualization.

The rest is support code the notebook uses: :func:`create_class_visualization` (the loop with random jitter
and blur) and, for "Going further", :func:`deep_dream` and :func:`visualize_channel` (the FGSM and PGD
attacks there come from ``captum.robust``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from helpers.images import gaussian_blur
from helpers.model import as_targets, extract_features


def fooling_step(model, images: torch.Tensor, targets: torch.Tensor, step_size: float) -> torch.Tensor:
    """One gradient-ascent step that raises each image's score for its target class.

    Args:
        model: classifier taking (N, 3, H, W) images in [0, 1] and returning (N, 1000) raw scores.
        images: (N, 3, H, W) float in [0, 1]; not modified.
        targets: (N,) int64 class indices, one per image.
        step_size: L2 length of each image's step, in [0, 1] pixel units (e.g. 1.0).
    Returns:
        (N, 3, H, W) new images, detached, clamped to [0, 1]: ``clamp(x + step_size * g / ||g||_2)`` where
        ``g`` is the gradient of that image's raw target score (before softmax) with respect to its pixels
        and ``||g||_2`` is the L2 norm of that one image's gradient.
    """
    # TODO START fooling_step
    # 1. Work on a copy of the images that requires grad (never change the caller's tensor).
    # 2. Run the model and pick each image's raw score for its target (no softmax, no loss): scores.gather.
    # 3. Get the gradient of the sum of those scores with respect to the copy (torch.autograd.grad).
    # 4. Divide each image's gradient by its own L2 norm (over C, H, W), step UP by step_size times it,
    #    clamp to [0, 1] and return the result detached.
    images = images.detach().clone().requires_grad_(True)
    scores = model(images).gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(scores, images)
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (images + step_size * grad / norms).clamp(0, 1).detach()
    # TODO END fooling_step


def make_fooling_image(model, images: torch.Tensor, targets, step_size: float = 1.0, max_steps: int = 100,
                       extra_steps: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Change images just enough that the model predicts the target classes (Szegedy et al. 2014).

    Each image takes :func:`fooling_step` steps until the model's top-1 class is its target, then goes on
    until the target has stayed top-1 for ``extra_steps`` more steps, so the result is not balanced on the
    decision boundary; then it stops while the others go on. An image not fooled within ``max_steps`` steps
    stops there; none takes more than ``max_steps + extra_steps`` steps in all.

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
    # Keep, per image: the current image, the number of steps taken, the step of the first success
    # (-1 = not yet) and the "streak": how many checks in a row found the target top-1 (check once before
    # any step, then after every step). An image is still moving while its streak is <= extra_steps and it
    # has taken < max_steps steps (< max_steps + extra_steps once it has been fooled). Each round: take ONE
    # fooling_step on just the moving images (index them), then update their predictions (under
    # torch.no_grad()), streaks and first successes. Stop when no image is moving. Leave the results in
    # `fooled` (N, 3, H, W) and `steps` (N,) int64: the return line below uses them.
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

    Shift the images by ``jitter`` (``torch.roll``, wrapping around), take a normalized gradient-ascent
    step on ``score_target(I) - l2_reg * ||I||_2^2`` at the shifted images, shift back, clamp to [0, 1].

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
    # 1. Roll a copy by (oy, ox) over dims (2, 3) and make it require grad.
    # 2. objective = sum over images of (raw target score - l2_reg * sum of its squared pixels).
    # 3. Step UP along each image's gradient divided by its own L2 norm, times learning_rate.
    # 4. Roll back by (-oy, -ox), clamp to [0, 1], return detached.
    ox, oy = jitter
    shifted = torch.roll(images.detach(), shifts=(oy, ox), dims=(2, 3)).requires_grad_(True)
    scores = model(shifted).gather(1, targets.view(-1, 1)).sum()
    objective = scores - l2_reg * shifted.pow(2).sum()
    (grad,) = torch.autograd.grad(objective, shifted)
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    stepped = shifted + learning_rate * grad / norms
    return torch.roll(stepped, shifts=(-oy, -ox), dims=(2, 3)).clamp(0, 1).detach()
    # TODO END class_visualization_step


def create_class_visualization(model, targets, size: int = 160, num_steps: int = 100, l2_reg: float = 1e-3,
                               learning_rate: float = 5.0, max_jitter: int = 8, blur_every: int = 10,
                               blur_sigma: float = 0.5, seed: int = 0, device=None,
                               progress: bool = True) -> torch.Tensor:
    """Generate one image per target class from random noise with :func:`class_visualization_step`.

    Each step uses a fresh random jitter in [-max_jitter, max_jitter]^2 (shared by the batch); every
    ``blur_every`` steps the images are blurred with a Gaussian of ``blur_sigma`` pixels
    (:func:`helpers.images.gaussian_blur`, torchvision's), which removes the high-frequency patterns the
    network likes but people do not see as objects.

    Args:
        model: classifier on [0, 1] images.
        targets: one class index or a list / (N,) tensor of them; all images are optimized as one batch.
        size: side of the square images (the model accepts any size; 128 is quick, 224 clearer).
            For cleaner pictures at 224 px: ``num_steps=150, l2_reg=3e-3, blur_every=5, blur_sigma=1.0``.
        num_steps, l2_reg, learning_rate, max_jitter, blur_every, blur_sigma: see above.
        seed: seeds the noise and the jitter (a private torch.Generator; the global RNG is untouched).
        device: default: the model's device.
        progress: show a tqdm progress bar.
    Returns:
        (N, 3, size, size) float32 images in [0, 1].
    """
    device = device or next(model.parameters()).device
    targets = torch.as_tensor(targets, dtype=torch.int64).reshape(-1).to(device)
    generator = torch.Generator().manual_seed(seed)
    images = _noise_images(len(targets), size, generator, device)

    def step(images: torch.Tensor, jitter: tuple[int, int]) -> torch.Tensor:
        return class_visualization_step(model, images, targets, l2_reg, learning_rate, jitter=jitter)

    return _jittered_ascent(images, step, num_steps, max_jitter, blur_every, blur_sigma, generator, progress,
                            "class visualization")


def _noise_images(count: int, size: int, generator: torch.Generator, device) -> torch.Tensor:
    """Faint noise around mid-gray, so every pixel can move both ways: (count, 3, size, size) in [0, 1]."""
    return (0.5 + 0.1 * torch.randn(count, 3, size, size, generator=generator)).clamp(0, 1).to(device)


def _jittered_ascent(images: torch.Tensor, step, num_steps: int, max_jitter: int, blur_every: int,
                     blur_sigma: float, generator: torch.Generator, progress: bool, desc: str) -> torch.Tensor:
    """``num_steps`` times: draw a jitter (ox, oy) in [-max_jitter, max_jitter]^2 from ``generator``, then
    ``images = step(images, (ox, oy))``; every ``blur_every`` steps (0: never), except after the last,
    blur the images (Gaussian, ``blur_sigma`` pixels). Returns the images detached."""
    for index in tqdm(range(num_steps), desc=desc, disable=not progress, leave=False):
        ox, oy = torch.randint(-max_jitter, max_jitter + 1, (2,), generator=generator).tolist()
        images = step(images, (ox, oy))
        if blur_every and (index + 1) % blur_every == 0 and index + 1 < num_steps:
            images = gaussian_blur(images, blur_sigma)
    return images.detach()


# --- Going further (support code, not an exercise) ---------------------------------------------------------

def layer_activation(model, layer: str, images: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` (a short name like ``"block10"``) for ``images`` (N, 3, H, W) in [0, 1].

    The forward pass stops at that layer (nothing after it is computed) and the hook is always removed.
    Gradients flow through the returned activation.
    """
    return extract_features(model, images, [layer])[layer]


def _objective_step(model, objective, learning_rate: float):
    """A step for :func:`_jittered_ascent`: roll the images by the jitter, take a normalized gradient-ascent
    step of L2 length ``learning_rate`` on ``objective(model, images) -> scalar``, roll back, clamp to [0, 1]."""
    def step(images: torch.Tensor, jitter: tuple[int, int]) -> torch.Tensor:
        ox, oy = jitter
        shifted = torch.roll(images.detach(), shifts=(oy, ox), dims=(2, 3)).requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(model, shifted), shifted)
        norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        return torch.roll(shifted + learning_rate * grad / norms, shifts=(-oy, -ox), dims=(2, 3)).clamp(0, 1)
    return step


def deep_dream(model, image: torch.Tensor, layer: str = "block10", octaves: int = 3, octave_scale: float = 1.4,
               steps_per_octave: int = 8, learning_rate: float = 4.0, max_jitter: int = 16, seed: int = 0,
               progress: bool = True) -> torch.Tensor:
    """DeepDream (Mordvintsev et al. 2015): amplify whatever ``layer`` already sees in ``image``.

    Gradient ascent on ``0.5 * mean(activation ** 2)`` of the layer, at ``octaves`` scales from small to full
    size. At each scale the image is the photo resized to that scale plus the "detail" dreamed so far
    (upsampled), so the large patterns found at coarse scales are refined at finer ones.

    Args:
        image: (1, 3, H, W) or (3, H, W) in [0, 1].
        layer: short layer name; early blocks give textures, late blocks object parts.
    Returns:
        (1, 3, H, W) dreamed image in [0, 1].
    """
    base = (image[None] if image.dim() == 3 else image).detach()
    height, width = base.shape[-2:]
    generator = torch.Generator().manual_seed(seed)
    objective = lambda m, x: 0.5 * layer_activation(m, layer, x).pow(2).mean()
    detail = None
    for k in reversed(range(octaves)):  # smallest scale first
        size = [max(32, round(height / octave_scale ** k)), max(32, round(width / octave_scale ** k))]
        scaled = F.interpolate(base, size=size, mode="bilinear", align_corners=False, antialias=True)
        start = scaled if detail is None else (scaled + F.interpolate(detail, size=size, mode="bilinear",
                                                                      align_corners=False)).clamp(0, 1)
        dreamed = _jittered_ascent(start, _objective_step(model, objective, learning_rate), steps_per_octave,
                                   max_jitter, 0, 0.5, generator, progress, f"dream {size[0]}x{size[1]}")
        detail = dreamed - scaled
    return dreamed


def visualize_channel(model, layer: str, channel: int, size: int = 128, num_steps: int = 40,
                      learning_rate: float = 5.0, max_jitter: int = 4, blur_every: int = 4,
                      blur_sigma: float = 0.5, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """An image that excites one channel of ``layer``: jittered ascent on the channel's mean activation.

    Starts from faint noise around mid-gray; same jitter / blur / clamp recipe as class visualization.
    Returns (1, 3, size, size) in [0, 1].
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    images = _noise_images(1, size, generator, device)
    objective = lambda m, x: layer_activation(m, layer, x)[:, channel].mean()
    return _jittered_ascent(images, _objective_step(model, objective, learning_rate), num_steps, max_jitter,
                            blur_every, blur_sigma, generator, progress, f"{layer} channel {channel}")
