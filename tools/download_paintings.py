"""Optional: download a few public-domain paintings to use as style images: ``python tools/download_paintings.py``.

Nothing in the kit needs these: the notebooks use the procedural styles in datasets/styles/. When you are
online, this fetches a handful of famous paintings (all public domain: their painters died more than 70 years
ago) from Wikimedia Commons, shrinks them to 512 px on the shorter side and saves them as PNG in
datasets/styles/extra/. Use one in notebook 4 with::

    from convlens.images import load_image
    style = load_image(ROOT / "datasets/styles/extra/starry_night.png", 192)[None]

Offline, or if a file has moved, it says so for each painting and exits with code 1 if none arrived.
"""
from __future__ import annotations

import argparse
import io
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image

OUT_DIR = Path(__file__).resolve().parents[1] / "datasets" / "styles" / "extra"
# name -> Wikimedia Commons file name (Special:FilePath redirects to the current file, scaled to ?width=).
PAINTINGS = {
    "starry_night": "Van Gogh - Starry Night - Google Art Project.jpg",
    "great_wave": "Tsunami by hokusai 19th century.jpg",
    "composition_vii": "Vassily Kandinsky, 1913 - Composition 7.jpg",
    "the_scream": "Edvard Munch, 1893, The Scream, oil, tempera and pastel on cardboard, 91 x 73 cm, "
                  "National Gallery of Norway.jpg",
    "water_lilies": "Claude Monet - Water Lilies - 1906, Ryerson.jpg",
}
USER_AGENT = "convlens-course-kit/1.0 (offline teaching kit; downloads a few public-domain paintings once)"
SIDE = 512


def url_for(file_name: str, width: int = 1024) -> str:
    quoted = urllib.parse.quote(file_name.replace(" ", "_"))
    return f"https://commons.wikimedia.org/wiki/Special:FilePath/{quoted}?width={width}"


def fetch(file_name: str, timeout: float) -> Image.Image:
    request = urllib.request.Request(url_for(file_name), headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(50_000_000)
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
    scale = SIDE / min(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    return img


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per download")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = 0
    for name, file_name in PAINTINGS.items():
        path = args.out / f"{name}.png"
        if path.is_file():
            print(f"{name}: already there ({path})")
            saved += 1
            continue
        try:
            fetch(file_name, args.timeout).save(path)
        except (urllib.error.URLError, OSError, ValueError) as err:  # offline, moved file, not an image
            print(f"{name}: not downloaded ({type(err).__name__}: {err})")
            continue
        saved += 1
        print(f"{name}: saved {path}")
    if not saved:
        print("nothing downloaded: are you offline? The kit works without these paintings.")
        return 1
    print(f"{saved} of {len(PAINTINGS)} paintings in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
