"""The attribution explorer (convlens/explorer.py) without a browser: it builds, each choice changes the
picture, a method whose exercise is not written shows a message, bad uploads show the loader's error, and
its deletion curve is the library's. Small images (96 px) and a short curve keep it fast."""
from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
import torch
from PIL import Image

from convlens.attribution import causal_curves
from convlens.explorer import CAPTUM_GRAD_CAM, YOURS_GRAD_CAM, YOURS_SALIENCY, explorer
from helpers import gradcam, saliency as sal

SIZE, STEPS = 96, 4


@pytest.fixture(autouse=True, scope="module")
def _notebook_threads():
    """The notebooks' thread rule (convlens.runtime): on a busy 2-core machine every core is many times slower."""
    from convlens.runtime import choose_threads

    before = torch.get_num_threads()
    torch.set_num_threads(choose_threads())
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ex(model):
    return explorer(model, saliency=sal.saliency_map, grad_cam=gradcam.grad_cam, size=SIZE, deletion_steps=STEPS)


def png_bytes(color=(200, 30, 30), fmt="png") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), color).save(buffer, format=fmt)
    return buffer.getvalue()


def test_it_builds_and_shows_a_map_and_a_curve(ex):
    assert Image.open(io.BytesIO(ex.picture.value)).size == (SIZE, SIZE)
    assert Image.open(io.BytesIO(ex.curve.value)).size[0] > 0
    assert len(ex.klass.options) == 5 and ex.klass.value == ex.klass.options[0][1]  # top 5, the top chosen
    assert "%" in ex.klass.options[0][0]
    assert ex.method.value == YOURS_SALIENCY and "deletion area" in ex.message.value
    assert {YOURS_GRAD_CAM, CAPTUM_GRAD_CAM, "Guided Backprop (Captum)"} <= set(ex.method.options)
    assert any(m.startswith("Integrated Gradients") for m in ex.method.options)
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_photo_class_method_and_layer_each_change_the_picture(ex):
    seen = [ex.picture.value]

    def changed():
        assert ex.picture.value not in seen
        seen.append(ex.picture.value)

    ex.photo.value = "coffee"
    changed()
    ex.klass.value = ex.klass.options[2][1]
    changed()
    ex.method.value = CAPTUM_GRAD_CAM
    changed()
    assert not ex.layer.disabled
    ex.layer.value = "block10"
    changed()
    ex.method.value = "Saliency (Captum)"
    assert ex.layer.disabled  # only Grad-CAM has a layer


def test_a_class_typed_by_name_is_added_to_the_choices(ex):
    ex.typed.value = "goldfish"
    assert ex.klass.value == 1 and len(ex.klass.options) == 6
    assert "goldfish" in ex.message.value
    ex.typed.value = "no such thing"
    assert "No ImageNet class" in ex.message.value


def test_a_method_not_written_yet_shows_a_message(model):
    def saliency_map(model, images, labels, objective="score"):
        raise NotImplementedError("saliency_map: write your code between TODO START and TODO END")

    ex = explorer(model, saliency=saliency_map, grad_cam=gradcam.grad_cam, size=SIZE, deletion_steps=STEPS)
    assert "not written yet" in ex.message.value and "helpers/saliency.py" in ex.message.value
    plain = ex.picture.value
    ex.method.value = YOURS_GRAD_CAM  # the other methods still work
    assert "deletion area" in ex.message.value and ex.picture.value != plain
    ex.method.value = YOURS_SALIENCY
    saliency_map.__code__ = sal.saliency_map.__code__  # written and saved (autoreload patches in place)
    ex.redraw.click()
    assert "deletion area" in ex.message.value and ex.picture.value != plain


def test_a_student_bug_is_shown_not_raised(model):
    ex = explorer(model, saliency=lambda m, x, y: x.sum(), size=SIZE, deletion_steps=STEPS)
    assert "raised ValueError" in ex.message.value and "expected a map of shape (1, 96, 96)" in ex.message.value


def test_new_code_gives_a_new_map_and_old_choices_come_from_the_cache(model):
    calls = []

    def saliency_map(model, images, labels, objective="score"):
        calls.append(1)
        return images.mean(1)

    ex = explorer(model, saliency=saliency_map, size=SIZE, deletion_steps=STEPS)
    ex.method.value = "Saliency (Captum)"
    ex.method.value = YOURS_SALIENCY
    assert len(calls) == 1  # chosen again: cached

    def edited(model, images, labels, objective="score"):  # what autoreload does when the file is saved
        calls.append(2)
        return images.amax(1)

    saliency_map.__code__ = edited.__code__
    before = ex.picture.value
    ex.method.value = "Saliency (Captum)"
    ex.method.value = YOURS_SALIENCY
    assert calls == [1, 2] and ex.picture.value != before


@pytest.mark.parametrize("data, why", [(b"not an image at all", "not an image file"),
                                       (png_bytes()[:60], "damaged or truncated")], ids=["text", "truncated"])
def test_a_bad_upload_shows_the_loaders_error(ex, data, why):
    photo, picture = ex.photo.value, ex.picture.value
    ex.upload.value = ({"name": "holiday.png", "type": "image/png", "size": len(data), "content": memoryview(data),
                        "last_modified": datetime.now(timezone.utc)},)
    assert why in ex.message.value and "holiday.png" in ex.message.value
    assert "convlens-upload" not in ex.message.value  # the temporary path is not shown
    assert ex.photo.value == photo and ex.picture.value == picture and ex.upload.value == ()


def test_a_good_upload_is_chosen(ex):
    assert ex.add_upload("red.jpg", png_bytes(fmt="jpeg"))
    assert ex.photo.value == "upload: red.jpg" and "deletion area" in ex.message.value
    assert ex.images["upload: red.jpg"].shape == (1, 3, SIZE, SIZE)


def test_the_deletion_curve_is_the_librarys(ex):
    key, label = ex.photo.value, ex.klass.value
    heat = torch.rand(SIZE, SIZE)
    ours = ex._deletion_curve(key, label, heat)
    library = causal_curves(ex.model, ex.images[key], torch.tensor([label]), heat[None], steps=STEPS)[0]
    assert torch.allclose(ours, library, atol=1e-5)


@pytest.mark.parametrize("prefix", ["Integrated Gradients", "SmoothGrad"])
def test_a_multi_pass_method_shows_a_first_look_then_the_full_map(ex, prefix):
    pictures = []
    ex.picture.observe(lambda change: pictures.append(change["new"]), "value")
    name = next(m for m in ex.method.options if m.startswith(prefix))
    ex.select(method=name)
    assert len(pictures) == 2 and pictures[0] != pictures[1]  # the first look, then the full map
    assert ex.timing["map"] < ex.timing["final map"] <= ex.timing["total"]
    (heat, _), = [value for key, value in ex.results.items() if key[2] == name]
    if prefix == "Integrated Gradients":  # the full map is Captum's IG with all the steps
        from captum.attr import IntegratedGradients

        image = ex.images[ex.photo.value]
        expected = IntegratedGradients(ex.model).attribute(image, target=int(ex.klass.value), n_steps=16).sum(1)
        # Batched differently, a ReLU6 kink can flip at a path point (see test_saliency): compare as a whole.
        assert (heat - expected).norm() < 1e-2 * expected.norm()
    pictures.clear()
    ex.select(method=YOURS_SALIENCY)
    ex.select(method=name)  # kept: one picture, at once
    assert len(pictures) == 2 and "first look" not in ex.message.value
