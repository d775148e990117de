"""Notebook 4: the losses of helpers/style.py against formulas written out independently (numpy,
einsum, loops, finite differences), the optimization loop, and the kit's style-transfer support code
(convlens/style.py, feature extraction in convlens/model.py). The checks are tested with the check framework."""
import numpy as np
import pytest
import torch

from convlens import style
from convlens.images import load_photos, load_style
from convlens.model import extract_features, fast_copy
from helpers import style as st


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _randn(*shape, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- losses vs formulas written out

def _content_formula(w, cur, tgt):
    return w * np.sum((_np(cur) - np.asarray(tgt, dtype=np.float64)) ** 2)


def _gram_formula(feats: np.ndarray, normalize=True) -> np.ndarray:
    """Loops over channel pairs: G[n, c, d] = sum_p F[n, c, p] F[n, d, p] / (C H W)."""
    n, c, h, w = feats.shape
    flat = feats.reshape(n, c, h * w)
    gram = np.zeros((n, c, c))
    for i in range(n):
        for a in range(c):
            for b in range(c):
                gram[i, a, b] = np.dot(flat[i, a], flat[i, b])
    return gram / (c * h * w) if normalize else gram


def _tv_formula(img: np.ndarray, w: float) -> float:
    return w * (np.sum(np.diff(img, axis=2) ** 2) + np.sum(np.diff(img, axis=3) ** 2))


def test_content_loss_matches_the_formula():
    w, cur, tgt = 0.37, _randn(2, 8, 5, 6, seed=1), _randn(1, 8, 5, 6, seed=2)  # the target broadcasts
    expected = _content_formula(w, cur, np.broadcast_to(_np(tgt), cur.shape))
    assert float(st.content_loss(w, cur, tgt)) == pytest.approx(expected, rel=1e-5)
    assert float(st.content_loss(w, cur, cur)) == 0.0


def test_gram_matrix_matches_loops_and_einsum():
    feats = _randn(2, 6, 4, 5, seed=3).relu()  # non-negative, as after an activation
    looped = _gram_formula(_np(feats))
    einsum = torch.einsum("nchw,ndhw->ncd", feats.double(), feats.double()) / feats[0].numel()
    np.testing.assert_allclose(_np(st.gram_matrix(feats)), looped, rtol=1e-4, atol=1e-6 * np.abs(looped).max())
    np.testing.assert_allclose(_np(einsum), looped, rtol=1e-9)
    unnormalized = _gram_formula(_np(feats), normalize=False)
    np.testing.assert_allclose(_np(st.gram_matrix(feats, normalize=False)), unnormalized, rtol=1e-4,
                               atol=1e-6 * np.abs(unnormalized).max())
    gram = st.gram_matrix(feats)
    assert gram.shape == (2, 6, 6) and torch.allclose(gram, gram.transpose(1, 2))


def test_gram_normalization_makes_it_independent_of_the_image_size():
    """A texture tiled 2 x 2 has the same normalized Gram matrix as one tile (the point of dividing by H W)."""
    tile = torch.rand(1, 8, 5, 7)
    tiled = tile.repeat(1, 1, 2, 2)
    assert torch.allclose(st.gram_matrix(tile), st.gram_matrix(tiled), rtol=1e-5)


def test_style_loss_matches_the_formula():
    layers, weights = list(style.DEFAULT_SETTINGS.style_layers), list(style.DEFAULT_SETTINGS.style_weights)
    channels = [16, 40, 80, 112]
    feats = {layer: _randn(2, c, 6, 5, seed=10 + i).relu() for i, (layer, c) in enumerate(zip(layers, channels))}
    targets = [st.gram_matrix(_randn(1, c, 7, 7, seed=20 + i).relu()) for i, c in enumerate(channels)]
    expected = sum(w * np.sum((_gram_formula(_np(feats[layer])) - _np(t)) ** 2)
                   for layer, t, w in zip(layers, targets, weights))
    got = st.style_loss(feats, layers, targets, weights)
    assert float(got) == pytest.approx(expected, rel=1e-4)


def test_style_loss_with_no_layers_is_zero():
    assert float(st.style_loss({}, [], [], [])) == 0.0


def test_tv_loss_matches_numpy():
    images, w = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(4)), 0.6
    expected = _tv_formula(_np(images), w)
    assert float(st.tv_loss(images, w)) == pytest.approx(expected, rel=1e-5)
    assert float(st.tv_loss(torch.full((1, 3, 5, 5), 0.3), w)) == 0.0


def test_tv_loss_gradient_matches_finite_differences():
    img = torch.rand(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: st.tv_loss(x, 0.7), (img,))


def test_content_and_style_loss_gradients_match_finite_differences():
    cur = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    target_gram = st.gram_matrix(torch.randn(1, 4, 5, 5, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda x: st.content_loss(0.3, x, tgt), (cur,))
    assert torch.autograd.gradcheck(lambda x: st.style_loss({"a": x}, ["a"], [target_gram], [2.0]), (cur,))


def test_losses_follow_the_input_dtype():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    assert st.tv_loss(x, 1.0).dtype == torch.float64
    assert st.gram_matrix(x).dtype == torch.float64
    assert st.content_loss(1.0, x, x).dtype == torch.float64


# --------------------------------------------------------------------------- features and support code

def test_extract_features_matches_a_full_forward_stops_early_and_leaves_no_hooks(model):
    images = load_photos(["chelsea"], size=96)[0]
    seen = {}
    probe = model._blocks[8].register_forward_hook(lambda m, i, o: seen.setdefault("block8", o))
    deep = model._blocks[12].register_forward_hook(lambda m, i, o: seen.setdefault("block12", o))
    try:
        with torch.no_grad():
            model(images)
            full = seen.pop("block8")
            seen.clear()
            feats = extract_features(model, images, ["block3", "block8"])
    finally:
        probe.remove()
        deep.remove()
    assert torch.equal(feats["block8"], full)
    assert "block12" not in seen, "the forward pass went past the deepest requested layer"
    assert feats["block3"].shape == (1, 40, 12, 12)
    assert all(not m._forward_hooks for m in model.modules())


def test_fast_copy_gives_the_same_features(model):
    images = load_photos(["coffee"], size=96)[0]
    layers = ["block1", "block5", style.expanded(8)]
    fast = fast_copy(model)
    with torch.no_grad():
        want, got = extract_features(model, images, layers), extract_features(fast, images, layers)
    for layer in layers:
        err = (got[layer] - want[layer]).abs().max() / want[layer].abs().max()
        assert err < 1e-4, layer
    assert all(not p.requires_grad for p in fast.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules()), "BatchNorm was not folded"
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "the original was changed"


def test_softmax_smoothing_keeps_the_mean_and_orders_values():
    feats = torch.randn(2, 3, 4, 5) * 10
    smooth = style.softmax_smoothing(feats)
    assert torch.allclose(smooth.mean(dim=(2, 3)), torch.ones(2, 3), atol=1e-5)
    assert (smooth > 0).all()
    flat_f, flat_s = feats.flatten(2), smooth.flatten(2)
    assert torch.equal(flat_f.argsort(-1), flat_s.argsort(-1))  # monotone per channel


def test_blended_style_targets_are_the_weighted_average(model):
    a, b = load_style("mosaic", 64)[None], load_style("swirls", 64)[None]
    settings = style.DEFAULT_SETTINGS
    ta = style.compute_style_targets(model, a, settings, st.gram_matrix)
    tb = style.compute_style_targets(model, b, settings, st.gram_matrix)
    mixed = style.compute_style_targets(model, [a, b], settings, st.gram_matrix, mix=[0.25, 0.75])
    assert len(ta) == len(settings.style_layers)
    feats = extract_features(model, a, settings.style_layers)
    for layer, target in zip(settings.style_layers, ta):  # one image: its own Gram matrices
        torch.testing.assert_close(target, st.gram_matrix(feats[layer]))
    for x, y, m in zip(ta, tb, mixed):
        assert torch.allclose(m, 0.25 * x + 0.75 * y, rtol=1e-5, atol=1e-7)
        assert not m.requires_grad and not m.is_inference()


def test_preserve_colour_keeps_luminance_and_chroma():
    stylized, content = torch.rand(1, 3, 8, 8) * 0.5 + 0.25, torch.rand(1, 3, 8, 8) * 0.5 + 0.25
    out = style.preserve_colour(stylized, content)
    y = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((out * y).sum(1), (stylized * y).sum(1), atol=1e-3)
    cb = torch.tensor([-0.168736, -0.331264, 0.5]).view(1, 3, 1, 1)
    assert torch.allclose((out * cb).sum(1), (content * cb).sum(1), atol=1e-3)


# --------------------------------------------------------------------------- the optimization loop

@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_reference_loop_lowers_the_loss_and_the_style_loss(model, optimizer):
    content = load_photos(["chelsea"], size=64)[0]
    style = load_style("mosaic", 64)[None]
    image, history = st.style_transfer(model, content, style, steps=20, optimizer=optimizer)
    assert len(history) == 20
    assert history.total[-1] < 0.5 * history.total[0]
    assert history.style[-1] < 0.2 * history.style[0]
    assert history.content[0] == 0.0  # it starts from the content image
    assert image.shape == content.shape and not image.requires_grad
    assert 0 <= image.min() and image.max() <= 1
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_loop_from_noise_is_seeded(model):
    content = load_photos(["coffee"], size=48)[0]
    settings = style.DEFAULT_SETTINGS.scaled(content=0.0)
    one, h1 = st.style_transfer(model, content, [], settings, steps=3, init="noise", seed=3)
    two, h2 = st.style_transfer(model, content, [], settings, steps=3, init="noise", seed=3)
    assert torch.equal(one, two) and h1.total == h2.total
    assert h1.style[0] == 0.0  # no style targets: only content (weight 0) and TV


def test_style_net_trains_and_keeps_the_shape(model):
    photos = load_photos(["chelsea", "coffee"], size=64)[0]
    style_image = load_style("mosaic", 64)[None]
    targets = style.compute_style_targets(model, style_image, style.DEFAULT_SETTINGS, st.gram_matrix)
    torch.manual_seed(0)
    with torch.no_grad():
        before = float(style.perceptual_loss(model, st, style.StyleNet()(photos), photos, targets))
    net, losses = style.train_style_net(model, st, photos, style_image, steps=8, batch_size=2, crop=64)
    assert len(losses) == 8 and np.isfinite(losses).all()
    with torch.no_grad():
        out = net(photos)
        after = float(style.perceptual_loss(model, st, out, photos, targets))
    assert after < before
    assert out.shape == photos.shape and 0 <= out.min() and out.max() <= 1


def test_perceptual_loss_uses_the_given_losses(model):
    # The losses come from the module passed in (the student's), not from a copy inside the library.
    photos = load_photos(["chelsea"], size=64)[0]
    targets = style.compute_style_targets(model, load_style("mosaic", 64)[None], style.DEFAULT_SETTINGS,
                                          st.gram_matrix)

    class Counted:
        """helpers.style's functions, recording which are called."""

        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            def counted(*args, **kwargs):
                self.calls.append(name)
                return getattr(st, name)(*args, **kwargs)
            return counted

    losses = Counted()
    with torch.no_grad():
        ours = style.perceptual_loss(model, losses, photos, photos, targets)
        plain = style.perceptual_loss(model, st, photos, photos, targets)
    assert sorted(losses.calls) == ["content_loss", "style_loss", "tv_loss"]
    assert float(ours) == float(plain) > 0


def test_procedural_styles_are_reproducible():
    from PIL import Image

    from tools import make_styles

    for name in ("stripes", "mosaic"):
        saved = np.asarray(Image.open(make_styles.STYLES_DIR / f"{name}.png").convert("RGB"))
        assert np.array_equal(make_styles.STYLES[name](), saved), name
