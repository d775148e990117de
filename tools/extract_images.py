"""Copy the sample photos and textures that ship inside scikit-image, scikit-learn and matplotlib
into datasets/. Run once by a maintainer (those three packages are not needed by the kit itself):

    python tools/extract_images.py

Photos are saved as JPEG (quality 92) with the longer side capped at 640 px; textures as PNG.
Sources and licences are recorded by hand in datasets/README.md, datasets/photos.csv and datasets/more_photos.csv.
"""
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image
from skimage import data as skdata
from sklearn.datasets import load_sample_image

ROOT = Path(__file__).resolve().parents[1] / "datasets"
MAX_SIDE = 640


def _save(array: np.ndarray, path: Path) -> None:
    img = Image.fromarray(array)
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        img.convert("RGB").save(path, quality=92)
    else:
        img.save(path)
    print(f"{path.relative_to(ROOT)}: {img.size[0]}x{img.size[1]} {img.mode}")


def main() -> None:
    photos = {
        "chelsea": skdata.chelsea(),
        "coffee": skdata.coffee(),
        "rocket": skdata.rocket(),
        "motorcycle": skdata.stereo_motorcycle()[0],
        "camera": skdata.camera(),
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
        "grace_hopper": np.asarray(
            Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
        ),
    }
    for name, array in photos.items():
        _save(array, ROOT / "photos" / f"{name}.jpg")
    # No ImageNet label: the neighbour figure of notebook 1 (datasets/more_photos.csv).
    for name in ("astronaut", "coins"):
        _save(getattr(skdata, name)(), ROOT / "more_photos" / f"{name}.jpg")
    for name in ("brick", "gravel", "grass"):
        _save(getattr(skdata, name)(), ROOT / "styles" / f"{name}.png")


if __name__ == "__main__":
    main()
