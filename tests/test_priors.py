"""convlens.priors (better priors for feature visualization) and convlens.colour (colour statistics)."""
import math

import pytest
import torch
import torch.nn.functional as F

from convlens import colour
from convlens import priors


def test_fourier_round_trip():
    image = torch.randn(2, 3, 20, 17)  # odd width: the rfft2 has W // 2 + 1 columns
    for decay in (0.0, 1.0, 1.5):
        spectrum = priors.image_to_spectrum(image, decay)
        assert spectrum.shape == (2, 3, 20, 9) and spectrum.is_complex()
        torch.testing.assert_close(priors.spectrum_to_image(spectrum, 20, 17, decay), image, atol=1e-5, rtol=1e-5)


def test_spectrum_scale_formula():
    scale = priors.spectrum_scale(8, 8, decay_power=1.0)
    assert scale.shape == (8, 5)
    assert scale[0, 0] == pytest.approx(8.0)  # DC: frequency floored at 1 / max(H, W)
    assert scale[0, 1] == pytest.approx(8.0)  # the lowest frequency, 1/8 cycle per pixel
    assert scale[2, 2] == pytest.approx(1 / math.hypot(0.25, 0.25))
    assert scale[4, 4] == pytest.approx(1 / math.hypot(0.5, 0.5))


def test_white_spectrum_gives_one_over_f_amplitude():
    # Parameters drawn white: the image's amplitude spectrum must fall as 1 / f (slope -1 in log-log).
    generator = torch.Generator().manual_seed(0)
    size = 64
    white = torch.complex(torch.randn(64, 1, size, size // 2 + 1, generator=generator),
                          torch.randn(64, 1, size, size // 2 + 1, generator=generator))
    image = priors.spectrum_to_image(white, size, size, decay_power=1.0)
    amplitude = torch.fft.rfft2(image, norm="ortho").abs().mean(dim=(0, 1))
    freqs = priors.fourier_frequencies(size, size)
    bands = [(0.05, 0.08), (0.1, 0.16), (0.2, 0.32)]
    means = [amplitude[(freqs >= lo) & (freqs < hi)].mean() for lo, hi in bands]
    centres = [math.sqrt(lo * hi) for lo, hi in bands]
    slope = math.log(means[2] / means[0]) / math.log(centres[2] / centres[0])
    assert slope == pytest.approx(-1.0, abs=0.15)


def test_decorrelated_colour_is_invertible_and_matches_formula():
    values = torch.randn(2, 3, 5, 4)
    rgb = priors.decorrelated_to_rgb(values)
    matrix = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    matrix = matrix / matrix.norm(dim=0).max()
    expected = (matrix @ values.permute(1, 0, 2, 3).reshape(3, -1)).reshape(3, 2, 5, 4).permute(1, 0, 2, 3)
    torch.testing.assert_close(rgb, expected)
    torch.testing.assert_close(priors.rgb_to_decorrelated(rgb), values, atol=1e-4, rtol=1e-4)
    assert priors.COLOUR_SQRT.norm(dim=0).max() == pytest.approx(1.0)


def test_fourier_image_and_transforms_keep_shapes():
    generator = torch.Generator().manual_seed(0)
    image = priors.FourierImage(2, 32, generator=generator)()
    assert image.shape == (2, 3, 32, 32) and 0 < image.min() and image.max() < 1
    assert (image - 0.5).abs().max() < 0.1  # starts as faint clouds around mid-grey
    view = priors.lucid_view(image, generator, pad=4)
    assert view.shape == (2, 3, 40, 40)
    same = priors.random_affine(image, generator, scale=(1.0, 1.0), degrees=0.0, shift=0.0)
    torch.testing.assert_close(same, image, atol=1e-5, rtol=0)
    assert priors.random_backgrounds(3, 16, generator).shape == (3, 3, 16, 16)


def test_short_optimization_raises_the_target(model):
    target = 945  # bell pepper
    with torch.no_grad():
        before = model(priors.FourierImage(1, 96, generator=torch.Generator().manual_seed(0))())[0, target]
    image, rgb, alpha = priors.class_images(model, [target], size=96, steps=12, progress=False)
    assert image.shape == rgb.shape == (1, 3, 96, 96) and (alpha == 1).all()
    with torch.no_grad():
        after = model(image)[0, target]
    assert after > before + 5.0


def test_transparent_image_is_a_composite(model):
    image, rgb, alpha = priors.class_images(model, [945], size=32, steps=2, transparent=True, background=0.9,
                                        progress=False)
    assert alpha.shape == (1, 1, 32, 32) and 0 < alpha.min() and alpha.max() < 1
    torch.testing.assert_close(image, alpha * rgb + (1 - alpha) * 0.9)


def test_a_fourier_image_started_from_a_picture_renders_it():
    picture = torch.rand(2, 3, 24, 24) * 0.8 + 0.1
    rendered = priors.FourierImage(2, 24, start=picture)()
    torch.testing.assert_close(rendered, picture, atol=1e-4, rtol=0)
    bigger = priors.FourierImage(2, 48, start=picture)()  # a final pass at a larger size starts upsampled
    upsampled = F.interpolate(picture, size=(48, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(bigger, upsampled, atol=1e-4, rtol=0)


def test_log_probability_objective_pushes_other_classes_down(model, monkeypatch):
    """The objective itself, not a run: a 24-step run's probabilities are ~1e-5 on this network and flip order
    with the CPU's kernels (the older kernels once gave the score objective the higher one)."""
    objectives = []

    def keep_objective(net, objective, batch, *args, **kwargs):
        objectives.append(objective)
        return torch.zeros(batch, 3, 8, 8), None, None

    monkeypatch.setattr(priors, "optimize_image", keep_objective)
    for objective in ("score", "log_probability"):
        priors.class_images(model, [3], size=8, steps=1, progress=False, objective=objective)
    logits = torch.randn(1, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    # the "network" returns the logits it is given, so the gradient is the objective's with respect to the logits
    score, log_probability = (objective(lambda views: views, logits) for objective in objectives)
    torch.testing.assert_close(score, logits[:, 3])
    torch.testing.assert_close(log_probability, logits.log_softmax(dim=1)[:, 3])
    (pushed,) = torch.autograd.grad(log_probability.sum(), logits)
    (raised,) = torch.autograd.grad(score.sum(), logits)
    others = torch.arange(10) != 3
    # d log p_y / d s_k = -p_k < 0 for every other class k; the score leaves them alone
    torch.testing.assert_close(pushed[0, others], -logits.softmax(dim=1)[0, others].detach())
    assert (raised[0, others] == 0).all() and pushed[0, 3] > 0
    priors.class_images(model, [3], objective="probability", size=8, steps=1, progress=False)
    with pytest.raises(ValueError, match="objective"):  # raised where the objective is evaluated
        objectives[-1](lambda views: views, logits)


def test_restarts_keep_per_class_the_most_robust_run(model):
    kwargs = dict(size=48, steps=3, progress=False)
    runs = [priors.class_images(model, [945, 1], seed=s, **kwargs)[0] for s in (5, 6)]
    kept = priors.class_images(model, [945, 1], seed=5, restarts=2, **kwargs)[0]
    robust = [priors.robustness(model, run, [945, 1], transforms=8, seed=s) for run, s in zip(runs, (5, 6))]
    for i in range(2):
        winner = runs[0] if robust[0][i] >= robust[1][i] else runs[1]
        torch.testing.assert_close(kept[i], winner[i])


def test_screen_counts_views_with_the_target_in_the_judges_top5():
    class Judge(torch.nn.Module):  # ranks class 3 first on bright images, class 7 first on dark ones
        def forward(self, x):
            logits = torch.zeros(len(x), 10)
            bright = x.mean(dim=(1, 2, 3)) > 0.5
            logits[bright, 3] = 1.0
            logits[~bright, 7] = 1.0
            logits[:, :5] += torch.arange(5.0) * 0.1  # classes 0-4 next
            return logits

    images = torch.cat([torch.full((1, 3, 32, 32), 0.9), torch.full((1, 3, 32, 32), 0.1)])
    share = priors.screen(images, [3, 3], judge=Judge(), views=4, size=40, top=5)
    assert share.tolist() == [1.0, 1.0]  # the dark image still has class 3 among the top 5 (0-4)
    share = priors.screen(images, [7, 7], judge=Judge(), views=4, size=40, top=1)
    assert share.tolist() == [0.0, 1.0]


def test_candidates_are_class_images_options(model):
    import inspect

    allowed = set(inspect.signature(priors.class_images).parameters) | set(
        inspect.signature(priors.optimize_image).parameters)
    assert len(priors.CANDIDATES) >= 6 and "today" in priors.CANDIDATES
    for name, options in priors.CANDIDATES.items():
        assert set(options) <= allowed, name


def test_colour_statistics():
    grey = torch.full((1, 3, 8, 8), 0.5)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1.0
    assert colour.saturation(grey).item() == 0 and colour.saturation(red).item() == 1
    assert colour.rms_contrast(grey).item() == 0
    assert colour.histogram_distance(grey, grey).item() == 0
    assert colour.histogram_distance(grey, red).item() == pytest.approx(1.0)
    halves = torch.cat([grey, red], dim=-1)
    assert colour.crop_distance(halves) == pytest.approx(1.0)
    noise = torch.rand(2, 3, 16, 16)
    matched = colour.match_colours(noise * 0.2, noise[:1])
    torch.testing.assert_close(matched.mean(dim=(2, 3)), noise[:1].mean(dim=(2, 3)).expand(2, 3), atol=0.02, rtol=0)


def test_histogram_matching_takes_the_reference_colours():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 24, 24, generator=generator) * 0.3  # dark
    reference = torch.rand(1, 3, 32, 32, generator=generator) * 0.4 + 0.6  # bright, another size
    matched = colour.match_histograms(image, reference)
    assert matched.shape == image.shape
    before = colour.histogram_distance(image, reference)
    after = colour.histogram_distance(matched, reference)
    assert (after < 0.5 * before).all()
    torch.testing.assert_close(matched.mean(dim=(2, 3)), reference.mean(dim=(2, 3)).expand(2, 3), atol=0.02, rtol=0)


def test_histogram_matching_reaches_the_style_images_own_spread():
    """The issue's yardstick: matched to a style image, a photo's colours are as close to the style's as the
    style image's two halves are to each other (12 iterations left 2-3 times that)."""
    import torch.nn.functional as F

    from convlens.images import load_photos, load_style

    photos = load_photos(size=96)[0][:2]
    for name in ("mosaic", "stained_glass"):
        style = F.interpolate(load_style(name, 192)[None], size=96, mode="bilinear", antialias=True)
        matched = colour.match_histograms(photos, style)
        assert (colour.histogram_distance(matched, style) <= colour.crop_distance(style)).all(), name


def test_notebook_3_uses_the_chosen_candidate_and_cites_its_row():
    """The recipe notebook 3 runs is the one the candidate table chose, and the shares it cites are rows of
    that dated table."""
    import ast
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "notebooks" / "3_fooling_and_class_images.ipynb"
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "class_images"]
    assert len(calls) == 1
    options = {k.arg: ast.literal_eval(k.value) for k in calls[0].keywords}
    assert options == priors.CANDIDATES[priors.NOTEBOOK_CANDIDATE]
    table = priors.CANDIDATE_TABLE
    assert set(table["shares"]) <= set(priors.CANDIDATES) and priors.NOTEBOOK_CANDIDATE in table["shares"]
    assert table["shares"][priors.NOTEBOOK_CANDIDATE] == max(table["shares"].values())
