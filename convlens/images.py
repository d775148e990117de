"""Loading the shipped photos and style images as tensors, and turning tensors back into pictures.

Every tensor image in the kit is float, RGB, values in [0, 1]: (3, H, W) for one image, (N, 3, H, W) for a
batch. The classifier normalizes internally (see convlens/model.py), so there is no separate "preprocess".
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image, UnidentifiedImageError

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"
MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; larger files are refused rather than filling memory


class ImageLoadError(ValueError):
    """A file that cannot be used as an image; the message names the file and the reason."""


@dataclass(frozen=True)
class Photo:
    """One row of datasets/photos.csv: a shipped photo and the ImageNet classes a person sees in it."""

    name: str
    path: Path
    label: int  # the ImageNet index a person would give it
    accepted: tuple[int, ...]  # every index that is also a right answer (e.g. tabby / tiger cat)
    description: str


def _as_rgb(img: Image.Image, path) -> Image.Image:
    """Grayscale, 16-bit, palette, CMYK and alpha images -> 8-bit RGB (alpha composited on white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(img, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0  # 16-bit data stored in an int container
        img = Image.fromarray((array / top * 255.0).round().clip(0, 255).astype(np.uint8))
    elif img.mode == "F":
        array = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((array.clip(0, 1) * 255.0).round().astype(np.uint8))
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def open_rgb(path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file as an 8-bit RGB PIL image, fully decoded.

    Raises ImageLoadError (naming the file) for a missing, non-image, truncated or too-large file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{path}: {width}x{height} pixels is over the limit of {max_pixels:,}; resize it first"
                )
            img.load()
            return _as_rgb(img, path)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: damaged or truncated image ({err})") from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{path}: too many pixels ({err})") from None


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> (3, H, W) float32 tensor in [0, 1]."""
    return TF.to_dtype(TF.pil_to_tensor(img), torch.float32, scale=True)


def load_image(path, size: int | None = 224, crop: bool = True, max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Load an image file as a (3, size, size) float32 tensor in [0, 1].

    Args:
        path: any format PIL reads; grayscale, palette, RGBA and 16-bit images are converted to RGB.
        size: the shorter side is resized to ``size`` (antialiased); ``None`` keeps the original size.
        crop: also center-crop to a ``size`` x ``size`` square (what the classifier expects).
    """
    tensor = pil_to_tensor(open_rgb(path, max_pixels))
    if size is not None:
        tensor = TF.resize(tensor, size, antialias=True).clamp(0, 1)
        if crop:
            tensor = TF.center_crop(tensor, [size, size])
    return tensor


def read_photo_table(datasets_dir: Path = DATASETS_DIR) -> list[Photo]:
    """The rows of datasets/photos.csv, in file order."""
    with open(datasets_dir / "photos.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        Photo(
            name=row["name"],
            path=datasets_dir / "photos" / row["file"],
            label=int(row["label"]),
            accepted=tuple(int(i) for i in row["accepted"].split()),
            description=row["description"],
        )
        for row in rows
    ]


def load_photos(names=None, size: int = 224, datasets_dir: Path = DATASETS_DIR):
    """Load shipped photos as a batch.

    Args:
        names: photo names from datasets/photos.csv (e.g. ``["chelsea", "coffee"]``); ``None`` = all of them.
        size: side of the square crop.
    Returns:
        images (N, 3, size, size) float32 in [0, 1], labels (N,) int64 ImageNet indices, and the Photo rows.
    """
    table = {p.name: p for p in read_photo_table(datasets_dir)}
    names = list(table) if names is None else list(names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise KeyError(f"unknown photo(s) {unknown}; shipped: {sorted(table)}")
    photos = [table[n] for n in names]
    images = torch.stack([load_image(p.path, size) for p in photos])
    labels = torch.tensor([p.label for p in photos], dtype=torch.int64)
    return images, labels, photos


def style_names(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """Names (file stems) of the style images in datasets/styles/."""
    return sorted(p.stem for p in (datasets_dir / "styles").glob("*.png"))


def load_style(name: str, size: int = 256, datasets_dir: Path = DATASETS_DIR) -> torch.Tensor:
    """A style image from datasets/styles/ as (3, size, size) float32 in [0, 1] (gray textures become RGB)."""
    path = datasets_dir / "styles" / f"{name}.png"
    if not path.is_file():
        raise KeyError(f"unknown style {name!r}; shipped: {style_names(datasets_dir)}")
    return load_image(path, size)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (..., 3, H, W) images with torchvision, on a kernel of +-3 sigma
    (side ``2 * ceil(3 * sigma) + 1``); reflected at the borders."""
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(images, kernel_size=[kernel, kernel], sigma=[sigma, sigma])


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> (H, W, 3) float numpy array for plt.imshow (clamped)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [0, 1] -> 8-bit RGB PIL image (values outside [0, 1] are clamped)."""
    return Image.fromarray((to_numpy_image(image) * 255.0).round().astype(np.uint8))


def side_by_side(left: torch.Tensor, right: torch.Tensor, size: int = 224) -> torch.Tensor:
    """One (3, size, size) image holding two photos: each (3, H, W) in [0, 1] is squeezed to (size, size // 2)
    (antialiased) and ``left`` goes in the left half."""
    halves = [F.interpolate(img[None], size=(size, size // 2), mode="bilinear", antialias=True,
                            align_corners=False)[0] for img in (left, right)]
    return torch.cat(halves, dim=-1).clamp(0, 1)


def load_more_photos(size: int = 224, datasets_dir: Path = DATASETS_DIR):
    """The photos of datasets/more_photos.csv, which have no ImageNet label: other images of related content
    (another portrait, more round things) for the nearest-neighbour figure of notebook 1.

    Returns:
        images (N, 3, size, size) float32 in [0, 1] (centre crops) and their names, in file order.
    """
    with open(datasets_dir / "more_photos.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    images = torch.stack([load_image(datasets_dir / "more_photos" / row["file"], size) for row in rows])
    return images, [row["name"] for row in rows]
