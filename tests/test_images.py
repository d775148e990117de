"""Image loading: every PIL mode becomes RGB in [0, 1]; broken files raise an error that names the file."""
import numpy as np
import pytest
import torch
from PIL import Image

from convlens.images import (ImageLoadError, load_image, load_photos, load_style, read_photo_table, side_by_side,
                             style_names, to_numpy_image, to_pil)


def _save(tmp_path, name, img):
    path = tmp_path / name
    img.save(path)
    return path


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = _save(tmp_path, "gray.png", Image.fromarray(np.full((40, 60), 128, np.uint8)))
    x = load_image(path, size=None)
    assert x.shape == (3, 40, 60) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, 128 / 255))


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    array = np.full((10, 10), 65535 // 2, dtype=np.uint16)
    path = _save(tmp_path, "deep.png", Image.fromarray(array))
    x = load_image(path, size=None)
    assert abs(x.mean().item() - 0.5) < 0.01


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    path = _save(tmp_path, "clear.png", Image.fromarray(rgba, "RGBA"))
    assert torch.allclose(load_image(path, size=None), torch.ones(3, 8, 8))


def test_palette_image(tmp_path):
    img = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P")
    x = load_image(_save(tmp_path, "pal.gif", img), size=None)
    assert x.shape == (3, 8, 8) and 0 <= x.min() and x.max() <= 1


def test_resize_and_center_crop(tmp_path):
    path = _save(tmp_path, "wide.png", Image.new("RGB", (300, 100), (10, 20, 30)))
    assert load_image(path, size=50).shape == (3, 50, 50)
    assert load_image(path, size=50, crop=False).shape == (3, 50, 150)


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (200, 200), (200, 10, 10)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match="cut.jpg"):
        load_image(path)


def test_non_image_and_missing_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageLoadError, match="notes.png: not an image"):
        load_image(text)
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "absent.jpg")


def test_pixel_limit(tmp_path):
    path = _save(tmp_path, "big.png", Image.new("L", (300, 300)))
    with pytest.raises(ImageLoadError, match="big.png: 300x300 pixels is over the limit"):
        load_image(path, max_pixels=300 * 299)


def test_shipped_photos_and_table():
    table = read_photo_table()
    assert len(table) == 8 and all(p.path.is_file() and p.label in p.accepted for p in table)
    images, labels, photos = load_photos(["chelsea", "coffee"], size=128)
    assert images.shape == (2, 3, 128, 128) and labels.tolist() == [281, 967]
    assert 0 <= images.min() and images.max() <= 1
    with pytest.raises(KeyError, match="unknown photo"):
        load_photos(["dog"])


def test_shipped_styles():
    names = style_names()
    assert {"brick", "gravel", "grass"} <= set(names)
    assert load_style("brick", 64).shape == (3, 64, 64)


def test_round_trip_to_pil():
    x = torch.rand(3, 16, 16)
    back = torch.from_numpy(np.array(to_pil(x))).permute(2, 0, 1).float() / 255
    assert (back - x).abs().max() <= 0.5 / 255 + 1e-6
    assert to_numpy_image(x[None]).shape == (16, 16, 3)


def test_side_by_side_resizes_each_half():
    left, right = torch.zeros(3, 50, 80), torch.ones(3, 60, 40)
    both = side_by_side(left, right, size=32)
    assert both.shape == (3, 32, 32)
    assert both[:, :, :16].abs().max() < 1e-6 and (both[:, :, 16:] - 1).abs().max() < 1e-6
