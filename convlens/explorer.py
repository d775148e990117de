"""An interactive attribution explorer, shown at the end of notebooks 1 and 2.

    explorer(model, saliency=sal.saliency_map, grad_cam=gradcam.grad_cam)

Pick a photo (one of the shipped ones, or your own through "Upload"), a class (the model's top 5, or any
ImageNet class typed by name) and a method (your saliency and Grad-CAM, and Captum's); see the map over the
photo and, next to it, the deletion curve of that map (convlens.attribution.causal_curves) with its area.
A method whose exercise is not written yet shows a message instead of a map.

Speed: the model is copied once (``fast_copy``), each photo's forward pass and top 5 are kept, and every
map and curve is kept per (photo, class, method, layer), so going back is instant. A new single-pass map
costs one forward and backward pass plus ``deletion_steps - 1`` forward passes for the curve (its two ends
are cached); the picture is sent before the curve is computed. Integrated Gradients and SmoothGrad need many
passes: they send a first look from ``preview_passes`` passes, then the full map. bench/bench_explorer.py
measures it.
"""
from __future__ import annotations

import contextlib
import html
import io
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from PIL import Image

from convlens.attribution import causal_curves, causal_scores, fast_integrated_gradients
from convlens.images import ImageLoadError, gaussian_blur, load_image, read_photo_table, to_numpy_image
from convlens.model import fast_copy, get_layer, imagenet_classes
from convlens.runtime import interactive

YOURS_SALIENCY, YOURS_GRAD_CAM = "Saliency (your saliency_map)", "Grad-CAM (your grad_cam)"
CAPTUM_GRAD_CAM = "Grad-CAM (Captum LayerGradCam)"
WHERE = {YOURS_SALIENCY: "<code>saliency_map</code> in helpers/saliency.py (notebook 1, exercise 1)",
         YOURS_GRAD_CAM: "<code>grad_cam</code> in helpers/gradcam.py (notebook 2, exercise 2)"}
CAPTUM_NOTES = ".*(backward hooks|required_grads|require gradients)"  # expected, and noise to a student
TOP = 5  # classes offered per photo: the model's top TOP
CSS = "convlens-"  # prefix of the classes the widgets carry, so a browser test can find them


class Refined(NamedTuple):
    """A multi-pass method shown twice: ``preview`` (a few passes) within the update target, then ``full``."""
    preview: Callable
    full: Callable
    passes: tuple[int, int]  # (preview, full)


def _captum_methods(ig_steps: int, smooth_samples: int, preview_passes: int) -> dict[str, Callable | Refined]:
    """name -> function(model, x (1, 3, H, W), y (1,), layer) -> (1, H, W) ranking, larger = more important.
    Signed methods rank by the signed channel sum, the others by the channel max of |a|, as in notebook 1.
    Integrated Gradients and SmoothGrad are :class:`Refined`: a first look from ``preview_passes`` passes
    (Gauss-Legendre points; noise samples), then the full count."""
    from captum.attr import (GuidedBackprop, InputXGradient, LayerAttribution, LayerGradCam, NoiseTunnel,
                             Saliency)

    def grad_cam(m, x, y, layer):
        small = LayerGradCam(m, get_layer(m, layer)).attribute(x, target=y, relu_attributions=True)
        return LayerAttribution.interpolate(small, tuple(x.shape[-2:]), "bilinear")[:, 0]

    def ig(steps):
        return lambda m, x, y, layer: fast_integrated_gradients(m, x, y, steps=steps).sum(1)

    def smoothgrad(samples):
        return lambda m, x, y, layer: NoiseTunnel(Saliency(m)).attribute(
            x, target=y, nt_type="smoothgrad", nt_samples=samples, stdevs=0.1, abs=True).amax(1)

    return {
        "Saliency (Captum)": lambda m, x, y, layer: Saliency(m).attribute(x, target=y, abs=True).amax(1),
        "Input × Gradient (Captum)": lambda m, x, y, layer: InputXGradient(m).attribute(x, target=y).sum(1),
        "Guided Backprop (Captum)": lambda m, x, y, layer: GuidedBackprop(m).attribute(x, target=y).abs().amax(1),
        CAPTUM_GRAD_CAM: grad_cam,
        f"Integrated Gradients ({ig_steps} passes)": Refined(ig(preview_passes), ig(ig_steps),
                                                             (preview_passes, ig_steps)),
        f"SmoothGrad ({smooth_samples} passes)": Refined(smoothgrad(preview_passes), smoothgrad(smooth_samples),
                                                         (preview_passes, smooth_samples)),
    }


def overlay_png(image: torch.Tensor, heat: torch.Tensor | None, alpha: float = 0.8, blur: float = 2.0) -> bytes:
    """PNG of ``heat`` (H, W) in jet colours over ``image`` (3, H, W); PIL only, several times faster than a
    matplotlib figure. For the eye only (the deletion curve ranks the map as it is): the positive part of the
    map is softened by a ``blur``-pixel Gaussian (a gradient map is speckle at pixel scale), divided by its
    99th percentile and clipped at 1 (as Captum's visualize_image_attr clips outliers: a few extreme pixels
    would leave the rest dark), and each pixel's colour is mixed in by its own weight, so unimportant pixels
    show the photo."""
    from matplotlib import colormaps

    rgb = to_numpy_image(image)
    if heat is not None:
        h = heat.detach().float().clamp_min(0).cpu()[None, None]
        h = (gaussian_blur(h, blur) if blur else h)[0, 0].numpy()
        top = np.percentile(h, 99)
        h = np.clip(h / top, 0, 1) if top > 0 else h * 0
        weight = alpha * h[..., None]
        rgb = (1 - weight) * rgb + weight * colormaps["jet"](h)[..., :3]
    buffer = io.BytesIO()
    Image.fromarray((rgb * 255).round().clip(0, 255).astype(np.uint8)).save(buffer, format="png")
    return buffer.getvalue()


def _reload_helpers() -> None:
    """Re-read the helpers/ files saved since the last cell ran: the notebooks' autoreload checks before each
    cell, not before a widget's callbacks, and a student edits, saves and presses Redraw. Autoreload patches
    the functions in place, so the ones passed to the explorer get the new code."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and any("autoreload" in name for name in shell.extension_manager.loaded):
        shell.run_line_magic("autoreload", "now")


class Explorer:
    """The widget behind :func:`explorer`. Display it as a notebook cell's last expression.

    Widgets: ``photo``, ``upload``, ``klass`` (top 5 + typed classes), ``typed`` (any class by name),
    ``method``, ``layer``, ``redraw`` (after saving helpers/), ``picture`` (map over the photo, PNG),
    ``curve`` (deletion curve, PNG) and ``message`` (what is shown, timings, errors). :meth:`select` changes
    several at once with one update.
    """

    def __init__(self, model, saliency=None, grad_cam=None, size: int = 224, deletion_steps: int = 6,
                 ig_steps: int = 16, smooth_samples: int = 8, preview_passes: int = 3, photos=None):
        import ipywidgets as w
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.size, self.steps = size, deletion_steps
        self.model = fast_copy(model)  # once: BatchNorm folded, channels_last (attribution.py's speed-up)
        self.device = next(self.model.parameters()).device
        self._cuda = [self.device.index or 0] if self.device.type == "cuda" else []  # RNGs to fork
        self.classes = imagenet_classes()
        self.by_name = {name.lower(): i for i, name in enumerate(self.classes)}
        self.methods: dict[str, Callable | Refined] = {}
        if saliency is not None:
            self.methods[YOURS_SALIENCY] = lambda m, x, y, layer: saliency(m, x, y)
        if grad_cam is not None:
            self.methods[YOURS_GRAD_CAM] = lambda m, x, y, layer: grad_cam(m, x, y, layer=layer)
        self.students = {YOURS_SALIENCY: saliency, YOURS_GRAD_CAM: grad_cam}
        self.methods.update(_captum_methods(ig_steps, smooth_samples, preview_passes))
        self.photos = {p.name: p for p in (photos or read_photo_table())}
        self.images: dict[str, torch.Tensor] = {}  # photo key -> (1, 3, size, size) channels_last
        self.probs: dict[str, torch.Tensor] = {}  # photo key -> (1000,) softmax of the unchanged photo
        self.results: dict[tuple, tuple] = {}  # (photo, class, method, layer, code) -> (map, curve)
        self.timing: dict[str, float] = {}
        self._quiet = False
        self._backgrounds = {}  # y range -> the curve panel's axes as a bitmap, drawn once
        self._tmp = tempfile.TemporaryDirectory(prefix="convlens-upload-")

        spatial = [n for n in getattr(model, "layer_names", {}) if n != "fc"]
        self.photo = w.Dropdown(options=[(f"{p.name}: {p.description}"[:60], k) for k, p in self.photos.items()],
                                description="Photo", layout=w.Layout(width="420px"))
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload a photo",
                                   layout=w.Layout(width="auto"))
        self.klass = w.Dropdown(description="Class", layout=w.Layout(width="420px"))
        self.typed = w.Combobox(options=self.classes, placeholder="or type any class, then Enter",
                                ensure_option=False, continuous_update=False, layout=w.Layout(width="260px"))
        self.method = w.Dropdown(options=list(self.methods), description="Method", layout=w.Layout(width="420px"))
        self.redraw = w.Button(description="Redraw", tooltip="draw again, with your helpers/ as last saved")
        self.layer = w.Dropdown(options=spatial or ["head"], value="head" if "head" in spatial else None,
                                description="Layer", layout=w.Layout(width="260px"))
        self.picture = w.Image(format="png", width=300, height=300)
        self.curve = w.Image(format="png", width=400, height=300)
        self.message = w.HTML()
        for name in ("photo", "upload", "klass", "typed", "method", "layer", "redraw", "picture", "curve",
                     "message"):
            getattr(self, name).add_class(CSS + name)
        self.widget = w.VBox([w.HBox([self.photo, self.upload]), w.HBox([self.klass, self.typed]),
                              w.HBox([self.method, self.layer, self.redraw]), w.HBox([self.picture, self.curve]),
                              self.message])
        self.widget.add_class(CSS + "explorer")

        self.figure = Figure(figsize=(4, 3), dpi=100)
        FigureCanvasAgg(self.figure)
        self.photo.observe(lambda change: self._on_photo(), "value")
        self.upload.observe(self._on_upload, "value")
        self.klass.observe(lambda change: self.update(), "value")
        self.typed.observe(self._on_typed, "value")
        self.method.observe(lambda change: self.update(), "value")
        self.layer.observe(lambda change: self.update(), "value")
        self.redraw.on_click(lambda button: self.update())
        self._on_photo()

    def _repr_mimebundle_(self, **kwargs):
        if interactive():
            return self.widget._repr_mimebundle_(**kwargs)
        return {"image/png": self.snapshot_png(), "text/plain": self.summary()}

    def summary(self) -> str:
        """One line: what the first view shows (what a saved notebook keeps in place of the widget)."""
        method = self.method.value
        return (f"explorer (interactive in a running notebook; this is its first view): {self.photo.value}, "
                f"class {self.classes[self.klass.value]}, {method}")

    def snapshot_png(self) -> bytes:
        """The map and the deletion curve side by side, as one PNG."""
        panels = [Image.open(io.BytesIO(png)).convert("RGB") for png in (self.picture.value, self.curve.value) if png]
        height = max(panel.height for panel in panels)
        panels = [panel.resize((round(panel.width * height / panel.height), height)) for panel in panels]
        sheet = Image.new("RGB", (sum(panel.width for panel in panels), height), "white")
        left = 0
        for panel in panels:
            sheet.paste(panel, (left, 0))
            left += panel.width
        buffer = io.BytesIO()
        sheet.save(buffer, format="png")
        return buffer.getvalue()

    @contextlib.contextmanager
    def _hold(self):
        """Change several widgets without an update per change."""
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    # --- choices -------------------------------------------------------------------------------------
    def select(self, photo=None, klass=None, method=None, layer=None) -> None:
        """Set any of photo (key), class (index or name), method and layer, then update once."""
        with self._hold():
            if photo is not None:
                self.photo.value = photo  # its observer loads the photo and its top 5
            if klass is not None:
                self._choose_class(self.by_name[klass.lower()] if isinstance(klass, str) else int(klass))
            if method is not None:
                self.method.value = method
            if layer is not None:
                self.layer.value = layer
        self.update()

    def _on_photo(self) -> None:
        with self._hold():
            self._photo_changed()
        self.update()

    def _photo_changed(self) -> None:
        """Load the photo and its top 5 once; offer them as the classes, the top one chosen."""
        key = self.photo.value
        if key not in self.images:
            image = load_image(self.photos[key].path, self.size)[None].to(self.device)
            self._add_image(key, image)
        self._set_class_options(self._top5(key), self._top5(key)[0])
        self.typed.value = ""  # a class typed for the last photo is no longer chosen

    def _add_image(self, key: str, image: torch.Tensor) -> None:
        image = image.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            self.probs[key] = torch.softmax(self.model(image), dim=1)[0].cpu()
        self.images[key] = image

    def _top5(self, key: str) -> list[int]:
        return self.probs[key].topk(TOP).indices.tolist()

    def _set_class_options(self, indices: list[int], chosen: int) -> None:
        probs = self.probs[self.photo.value]
        options = [(f"{self.classes[i]} ({probs[i]:.1%})", i) for i in indices]
        with self._hold():
            self.klass.options = options
            self.klass.value = chosen

    def _choose_class(self, index: int) -> None:
        indices = [i for _, i in self.klass.options]
        if index not in indices:
            indices = self._top5(self.photo.value) + [index]
        self._set_class_options(indices, index)

    def _on_typed(self, change) -> None:
        text = (change["new"] or "").strip()
        if not text:
            return
        if text.lower() not in self.by_name:
            self._say(f"No ImageNet class is called <b>{html.escape(text)}</b>; pick one from the list that "
                      "appears as you type.", error=True)
            return
        with self._hold():
            self._choose_class(self.by_name[text.lower()])
        self.update()

    def _on_upload(self, change) -> None:
        if change["new"]:
            self.upload.value = ()  # the widget would keep the file's bytes (and its state) otherwise
        for item in change["new"]:
            self.add_upload(item["name"], bytes(item["content"]))

    def add_upload(self, name: str, data: bytes) -> bool:
        """Load an uploaded file with the kit's loader and select it; on a bad file show the loader's error."""
        name = Path(name).name or "upload"
        path = Path(self._tmp.name) / name
        path.write_bytes(data)
        try:
            image = load_image(path, self.size)[None].to(self.device)
        except ImageLoadError as err:
            self._say(f"Cannot use the upload: {html.escape(str(err).replace(str(path), name))}", error=True)
            return False
        finally:
            path.unlink(missing_ok=True)
        key = f"upload: {name}"
        self._add_image(key, image)
        self.results = {k: v for k, v in self.results.items() if k[0] != key}  # a new file under an old name
        with self._hold():
            if key not in self.photos:
                self.photo.options = list(self.photo.options) + [(key, key)]
                self.photos[key] = None
            self.photo.value = key
        self.update()
        return True

    # --- drawing -------------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        style = ("color:#8a3b00;background:#fff3e0;padding:4px 8px;border-left:4px solid #e07000" if error
                 else "color:#333")
        self.message.value = f'<div style="{style}">{text}</div>'

    def update(self) -> None:
        """Draw the chosen map over the chosen photo, then its deletion curve."""
        if self._quiet or self.klass.value is None:
            return
        key, label, name = self.photo.value, int(self.klass.value), self.method.value
        self.layer.disabled = "Grad-CAM" not in name
        layer = self.layer.value if "Grad-CAM" in name else None
        image = self.images[key]
        student = self.students.get(name)
        if student is not None:
            _reload_helpers()
        cache_key = (key, label, name, layer, getattr(student, "__code__", None))  # new code: new map
        method = self.methods[name]
        self.timing.clear()
        start = time.perf_counter()
        if cache_key in self.results:
            heat, curve = self.results[cache_key]
        else:
            self._say(f"computing {html.escape(name)} ...")
            try:
                if isinstance(method, Refined):  # a first look within the target, then the full count
                    self._show(image, self._map(method.preview, image, label, layer))
                    self.timing["map"] = time.perf_counter() - start
                    self._say(f"{html.escape(name)}: first look from {method.passes[0]} passes; "
                              f"refining with {method.passes[1]} ...")
                    method = method.full
                heat = self._map(method, image, label, layer)
            except NotImplementedError:
                self.picture.value = overlay_png(image[0], None)
                self._draw_curve(None, f"no map: {name}\nis not written yet")
                self._say(f"<b>{html.escape(name)}</b> is not written yet: write {WHERE.get(name, 'it')}, save, "
                          "and press Redraw. The other methods work meanwhile.", error=True)
                return
            except Exception as err:  # a student's bug must not break the widget
                self.picture.value = overlay_png(image[0], None)
                self._draw_curve(None, f"no map: {name} failed")
                self._say(f"<b>{html.escape(name)}</b> raised {type(err).__name__}: {html.escape(str(err))}",
                          error=True)
                return
            curve = None
        self.timing.setdefault("map", time.perf_counter() - start)
        self._show(image, heat)  # sent now: the curve follows
        self.timing["final map"] = time.perf_counter() - start
        if curve is None:
            curve = self._deletion_curve(key, label, heat[0])
            self.results[cache_key] = (heat, curve)
        self._draw_curve(curve)
        self.timing["total"] = time.perf_counter() - start
        where = f" at {layer}" if layer else ""
        self._say(f"{html.escape(name)}{where} for <b>{html.escape(self.classes[label])}</b> "
                  f"(p = {self.probs[key][label]:.1%}) on {html.escape(key)}: deletion area "
                  f"{causal_scores(curve).item():.3g} (lower: the map found what the class needs); "
                  f"{self.timing['total']:.2f} s")

    def _map(self, method: Callable, image: torch.Tensor, label: int, layer) -> torch.Tensor:
        """One method's map (1, H, W), float, detached; a wrong shape raises ValueError."""
        y = torch.tensor([label], device=self.device)
        # Fixed seed: SmoothGrad's noise, so the same choice always shows the same map.
        with warnings.catch_warnings(), torch.random.fork_rng(devices=self._cuda):
            warnings.filterwarnings("ignore", message=CAPTUM_NOTES)
            torch.manual_seed(0)
            heat = method(self.model, image, y, layer)
        if not isinstance(heat, torch.Tensor) or tuple(heat.shape) != (1, *image.shape[-2:]):
            shape = tuple(heat.shape) if isinstance(heat, torch.Tensor) else type(heat).__name__
            raise ValueError(f"returned {shape}; expected a map of shape {(1, *image.shape[-2:])}")
        return heat.detach().float()

    def _show(self, image: torch.Tensor, heat: torch.Tensor) -> None:
        self.picture.value = overlay_png(image[0], heat[0])

    def _deletion_curve(self, key: str, label: int, heat: torch.Tensor) -> torch.Tensor:
        """The library's deletion curve (causal_curves) of one map, one image at a time: on a CPU a batch of
        one stays in the cache and costs less per image than a larger batch."""
        label = torch.tensor([label], device=self.device)
        return causal_curves(self.model, self.images[key], label, heat[None], steps=self.steps, batch_size=1)[0].cpu()

    def _draw_curve(self, curve: torch.Tensor | None, note: str = "") -> None:
        """The deletion curve, and in grey the cached curves of the other methods for the same photo and
        class. Axes, ticks and labels are drawn once per y range and kept as a bitmap; each update draws only
        the curves on it (blitting): a whole new figure costs ~0.1 s of text layout, this ~0.01 s. The y range
        shrinks by tens for an unlikely class, whose curve would otherwise lie flat on the axis."""
        from matplotlib.collections import LineCollection

        fig = self.figure
        if not self._backgrounds:
            fig.subplots_adjust(left=0.2, right=0.97, bottom=0.16, top=0.9)
            ax = self._axes = fig.add_subplot()
            self._others = ax.add_collection(LineCollection([], colors="0.75", linewidths=1))
            (self._line,) = ax.plot([], [], color="C0", lw=2, marker="o", ms=3)
            self._note = ax.text(0.5, 0.5, "", ha="center", va="center", color="#8a3b00", transform=ax.transAxes)
            self._score = ax.text(0.97, 0.95, "", ha="right", va="top", color="C0", transform=ax.transAxes)
            for artist in (self._others, self._line, self._note, self._score):
                artist.set_animated(True)  # left out of the background
            ax.set(xlim=(0, 1), xlabel="fraction of pixels deleted (most important first)", ylabel="p(class)")
            ax.set_title("Deletion curve (grey: methods tried before)", fontsize=10)
        fraction = np.linspace(0, 1, self.steps + 1)
        key, label = self.photo.value, self.klass.value
        others = [other.numpy() for (k, y, *_), (_, other) in self.results.items()
                  if k == key and y == label and other is not curve]
        shown = others + ([curve.numpy()] if curve is not None else [])
        peak = max((float(c.max()) for c in shown), default=1.0)
        top = next(t for t in (1e-3, 1e-2, 1e-1, 1.0) if peak <= t or t == 1.0)
        if top not in self._backgrounds:
            self._axes.set_ylim(0, top * 1.02)
            fig.canvas.draw()
            self._backgrounds[top] = fig.canvas.copy_from_bbox(fig.bbox)
        self._axes.set_ylim(0, top * 1.02)
        self._others.set_segments([np.column_stack([fraction, other]) for other in others])
        self._line.set_data(*((fraction, curve.numpy()) if curve is not None else ([], [])))
        self._score.set_text(f"area {causal_scores(curve).item():.3g}" if curve is not None else "")
        self._note.set_text(note if curve is None else "")
        fig.canvas.restore_region(self._backgrounds[top])
        for artist in (self._others, self._line, self._note, self._score):
            self._axes.draw_artist(artist)
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).save(buffer, format="png")
        self.curve.value = buffer.getvalue()


def explorer(model, saliency=None, grad_cam=None, **options) -> Explorer:
    """The attribution explorer. ``saliency``: your ``saliency_map``; ``grad_cam``: your ``grad_cam``
    (either may be left out). ``options``: see :class:`Explorer` (size, deletion_steps, ig_steps, ...)."""
    return Explorer(model, saliency=saliency, grad_cam=grad_cam, **options)
