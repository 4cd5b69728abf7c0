"""What the demo computes for one image: a prediction, an explanation, a saved sample. Each is a
typed result; bad input is a message in it, never an exception. No Gradio here.

    service = DigitService(ModelCatalog.from_root(Path("artifacts")))
    service.predict(image, "cnn", "fp32", "onnxruntime")   # Prediction(labels, model_input, status, ...)
    service.explain(image, "cnn", "fp32", "onnxruntime")   # Explanation(overlay, caption)

Memory: an upload is decoded only if its header says at most `max_upload_pixels`
(MAX_UPLOAD_PIXELS, a 12-megapixel phone photo fits) and a drawing at most `max_drawing_pixels`;
at most `decode_slots` images are decoded at once, whatever the page's concurrency, so the
memory the decoding takes is bounded (README, "Reliability").
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_edge import formats, runtime
from mnist_edge.errors import MnistEdgeError
from mnist_edge.imagefolder import count_samples, save_sample

from .models import ModelCatalog

PREVIEW_SIZE = 224  # the 28x28 model input, enlarged 8x with nearest neighbour so pixels show
# A drawing from the canvas is 400x400; anything much larger sent to the drawing endpoint is not
# from this page. Checked from the PNG header, before any pixel is decoded.
MAX_DRAWING_PIXELS = 4_000_000
# An upload: a 12-megapixel phone photo fits. Decoding takes up to ~15 bytes per pixel (measured:
# a 16-megapixel WEBP, +245 MB), so one decode stays under ~250 MB.
MAX_UPLOAD_PIXELS = 16_000_000
DECODE_SLOTS = 2  # images decoded at once; more requests wait for a slot

NOTHING_DRAWN = "Draw a digit first (or upload an image)."
# What the served page says for any file it did not receive itself: the same words whether the
# path exists, is a folder or is unreadable, so the API reveals nothing about the server's files.
NOT_AN_UPLOAD = "only images uploaded to or drawn on this page are read"


@dataclass(frozen=True)
class Prediction:
    """One image read by one model; `labels` and `model_input` are None when it could not be."""

    status: str  # the line the page shows: the answer and its timing, or why there is none
    labels: dict[str, float] | None = None  # class name -> probability
    model_input: np.ndarray | None = None  # uint8 [PREVIEW_SIZE, PREVIEW_SIZE]: the 28x28 enlarged
    label: str | None = None
    confidence: float | None = None

    def outputs(self) -> tuple:
        """(labels, model input, status): the page's three outputs, in order."""
        return self.labels, self.model_input, self.status


@dataclass(frozen=True)
class Explanation:
    """What the model looked at: an overlay (uint8 RGB) and its caption; (None, "") when the
    image could not be read (the prediction's status already says why)."""

    overlay: np.ndarray | None = None
    caption: str = ""

    def outputs(self) -> tuple:
        return self.overlay, self.caption


@dataclass(frozen=True)
class Saved:
    """A sample kept (or not): the message and the collect folder's counter line."""

    message: str
    counter: str
    path: Path | None = None  # the file written, None when nothing was

    def outputs(self) -> tuple:
        return self.message, self.counter


@dataclass(frozen=True)
class ImageInput:
    """The image inside what Gradio passes, the name the user knows it by (for messages), whether
    it is a drawing (the canvas's tighter limit) and whether it may be read at all."""

    source: object | None  # a file path (str), an array or PIL image; None: nothing drawn
    shown_name: str | None = None
    drawn: bool = False
    refused: bool = False  # served, and not a file Gradio received: never read

    def message(self, text: str) -> str:
        """`text` with the server's path of the file replaced by the name the user knows."""
        if isinstance(self.source, str):
            return text.replace(self.source, self.shown_name or "the drawing")
        return text


@dataclass
class DigitService:
    """Predictions, explanations and saved samples for the models of `catalog`.

    `uploads`: when served, the only folder files are read from (Gradio's upload folder); None
    for a Python caller, who may pass any image or path."""

    catalog: ModelCatalog
    collect: Path | None = None  # where "this is a N" saves samples (mnist-edge demo --collect)
    uploads: Path | None = None
    max_drawing_pixels: int = MAX_DRAWING_PIXELS
    max_upload_pixels: int = MAX_UPLOAD_PIXELS
    decode_slots: int = DECODE_SLOTS
    _decoding: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._decoding = threading.BoundedSemaphore(self.decode_slots)
        if self.uploads is not None:
            self.uploads = Path(os.path.realpath(self.uploads))

    def read_input(self, image) -> ImageInput:
        """The image inside Gradio's value (see `image_input`), refused when served and not an upload."""
        found = image_input(image)
        if found.source is None or self.uploads is None:
            return found
        real = readable_source(found.source, self.uploads)
        if real is None:
            return ImageInput(None, refused=True)
        return ImageInput(real, found.shown_name, found.drawn)

    def pixel_limit(self, found: ImageInput) -> int:
        """The most pixels `found` may have: a drawing's limit is tighter than an upload's."""
        return self.max_drawing_pixels if found.drawn else self.max_upload_pixels

    @property
    def decode_slot(self) -> threading.BoundedSemaphore:
        """Held while an image is decoded: at most `decode_slots` at once, whatever reads it."""
        return self._decoding

    def prepare(self, predictor, found: ImageInput) -> np.ndarray:
        """The model input for `found`: size-checked from the header, decoded in a free slot."""
        limit = self.pixel_limit(found)
        with self._decoding:
            x = predictor.prepare(found.source, max_pixels=limit)
            if not found.drawn:  # an upload may have been large: its memory goes back now
                release_freed_memory()
        return x

    def predict(self, image, model: str, precision: str, engine: str) -> Prediction:
        """What the page shows for one image (see `image_input` for what `image` may be)."""
        if not self.catalog.offers(model):
            return Prediction(f"Cannot run the model: unknown model {model!r}; choose from {', '.join(self.catalog.models)}")
        found = self.read_input(image)
        if found.refused:
            return Prediction(f"Cannot read this image: {NOT_AN_UPLOAD}.")
        if found.source is None:
            return Prediction(NOTHING_DRAWN)
        try:
            predictor, guard = self.catalog.predictor(model, engine, precision)
            start = time.perf_counter()
            x = self.prepare(predictor, found)
            prepared = time.perf_counter()
            with guard:
                probabilities = predictor.predict_array(x[np.newaxis])[0]
            done = time.perf_counter()
        except runtime.NoDigitError as exc:
            if found.shown_name:  # an upload
                return Prediction(f"{found.shown_name}: {exc}.")
            return Prediction(f"Draw a digit first: {exc}.")
        except runtime.PreprocessError as exc:
            return Prediction(f"Cannot read this image: {found.message(str(exc))}")
        except MnistEdgeError as exc:  # the model: a missing or modified artifact, a bad choice
            return Prediction(f"Cannot run the model: {exc}")
        result = predictor.to_prediction(probabilities)
        status = (
            f"{result.label} ({result.confidence:.0%}) in {(done - start) * 1000:.1f} ms "
            f"(preprocess {(prepared - start) * 1000:.1f} + inference {(done - prepared) * 1000:.1f}) "
            f"· {model}/{predictor.artifact.file} on {formats.ENGINES[engine].label}, {precision}"
        )
        labels = {name: float(p) for name, p in zip(predictor.class_names, probabilities)}
        return Prediction(status, labels, enlarge(x), result.label, float(result.confidence))

    def explain(self, image, model: str, precision: str, engine: str) -> Explanation:
        """The model input with its occlusion map laid over it, computed through the runtime
        (runtime.explain.occlusion_map: one batched call of the same artifact)."""
        from mnist_edge.runtime.explain import occlusion_map

        found = self.read_input(image)
        if found.source is None or not self.catalog.offers(model):
            return Explanation()
        try:
            predictor, guard = self.catalog.predictor(model, engine, precision)
            x = self.prepare(predictor, found)
            start = time.perf_counter()
            with guard:
                target = int(predictor.predict_array(x[np.newaxis])[0].argmax())
                heat = occlusion_map(predictor, x, target)
            elapsed = time.perf_counter() - start
        except MnistEdgeError:
            return Explanation()
        return Explanation(occlusion_overlay(x, heat), explanation_caption(predictor, target, heat, elapsed))

    def counter(self, model: str) -> str:
        """How many samples of each class the collect folder holds, as one line for the page (the
        folder's name only: the page names no server path)."""
        if self.collect is None:
            return ""
        counts = count_samples(self.collect, self.catalog.class_names(model))
        return f"Saved in {self.collect.name}/: " + " · ".join(f"{name}: {n}" for name, n in counts.items())

    def save(self, image, label: str, model: str) -> Saved:
        """Save the drawing or upload into the collect folder as an example of `label`. Only an
        image the model could read is saved; the original file is kept as it is (format and
        size), written atomically under a new name."""
        if self.collect is None:
            return Saved("Start the demo with --collect FOLDER to save samples.", "")
        names = self.catalog.class_names(model)
        if label not in names:
            return Saved(f"Choose what this is first (one of {', '.join(names)}).", self.counter(model))
        found = self.read_input(image)
        if found.refused:
            return Saved(f"Not saved: {NOT_AN_UPLOAD}.", self.counter(model))
        if found.source is None:
            return Saved(NOTHING_DRAWN, self.counter(model))
        try:
            predictor, _ = self.catalog.predictor(model, *self.catalog.first_choice(model))
            self.prepare(predictor, found)
            content, suffix = encoded(found.source)
        except runtime.PreprocessError as exc:
            return Saved(f"Not saved: {found.message(str(exc))}", self.counter(model))
        except MnistEdgeError as exc:
            return Saved(f"Not saved: {exc}", self.counter(model))
        path = save_sample(self.collect, label, content, suffix)
        return Saved(f"Saved as {path.relative_to(self.collect).as_posix()} ({label}).", self.counter(model), path)


def explanation_caption(predictor, target: int, heat: np.ndarray, seconds: float) -> str:
    """The words under the overlay: what red and blue mean for this class, and what it cost."""
    from mnist_edge.runtime.explain import OCCLUSION_PATCH

    name = predictor.class_names[target]
    if not np.any(heat):
        said = (
            f"Covering any {OCCLUSION_PATCH}x{OCCLUSION_PATCH} square left the probability of **{name}** where it was"
            + (" (this int8 model's output moves in steps of 1/256)" if predictor.artifact.integer_io else "")
        )
    else:
        said = (
            f"**Red**: covering these pixels ({OCCLUSION_PATCH}x{OCCLUSION_PATCH} squares of background) lowers the "
            f"probability of **{name}**: the model relied on them. **Blue**: covering them raises it"
        )
    how = "one batched call" + (", run one image at a time by LiteRT," if getattr(predictor.session, "static_batch", False) else "")
    return f"{said}. Computed in {seconds * 1000:.0f} ms, {how} of {predictor.artifact.file}."


# --- what Gradio passes ---------------------------------------------------------------------------


def file_path(value) -> str | None:
    """The server-side path of Gradio file data ({"path": ...}), if `value` is one."""
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    return None


def image_input(image) -> ImageInput:
    """The image inside Gradio's value: a Sketchpad/ImageEditor value ({"background", "layers",
    "composite"}, each a file or an array), an upload (a file path, or the raw {"path": ...} file
    data of an event with preprocess=False), a numpy array or PIL image, or None. Files reach the
    runtime undecoded, so its size limits apply before any pixel is decoded."""
    if isinstance(image, dict):
        if "composite" in image or "layers" in image or "background" in image:
            # An editor value: the composite is background and layers flattened, as shown.
            composite = image.get("composite")
            value = composite if composite is not None else image.get("background")
            return ImageInput(file_path(value) or value, None, True)
        path = file_path(image)
        if path:  # an upload passed through unprocessed (preprocess=False)
            return ImageInput(path, image.get("orig_name") or Path(path).name, False)
        return ImageInput(None)
    if isinstance(image, Path):
        return ImageInput(str(image), image.name, False)
    return ImageInput(image)


def readable_source(source, uploads: Path):
    """`source` as it may be read when served, or None. A path is read only if it is a file inside
    `uploads` (by its real path: a symlink out of it is refused); an in-memory image (a numpy
    array or PIL image, which only a Python caller can pass) as it is; anything else an API
    caller can send (a list of numbers, a number) is refused. Nothing is revealed about what a
    refused path names."""
    from PIL import Image

    if isinstance(source, (np.ndarray, Image.Image)):
        return source
    if not isinstance(source, str) or "\0" in source:
        return None
    real = Path(os.path.realpath(source))
    return str(real) if real.is_relative_to(uploads) and real != uploads else None


def encoded(source) -> tuple[bytes, str]:
    """The bytes to save for an image source, and their file suffix: a file as it is, anything
    else (an array from the API) as PNG."""
    if isinstance(source, str):
        path = Path(source)
        return path.read_bytes(), (path.suffix.lower() or ".png")
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    image = source if isinstance(source, Image.Image) else Image.fromarray(np.asarray(source))
    image.save(buffer, "PNG")
    return buffer.getvalue(), ".png"


def release_freed_memory() -> None:
    """Give memory freed after a large decode back to the system (glibc keeps it otherwise, and
    the process would stay at its peak)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# --- pictures for the page -------------------------------------------------------------------------


def enlarge(x: np.ndarray, size: int = PREVIEW_SIZE) -> np.ndarray:
    """A float [28, 28] model input as uint8 [size, size], nearest neighbour: each pixel a square."""
    return blow_up(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), size)


def blow_up(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 [h, w] or [h, w, channels] enlarged about to `size` by whole pixels (squares)."""
    factor = max(1, size // pixels.shape[0])
    return np.kron(pixels, np.ones((factor, factor) + (1,) * (pixels.ndim - 2), np.uint8))


def occlusion_overlay(x: np.ndarray, heat: np.ndarray, size: int = PREVIEW_SIZE) -> np.ndarray:
    """The model input in grey with `heat` laid over it, red where positive and blue where
    negative (strongest at the largest |heat|), enlarged to uint8 RGB [size, size, 3]."""
    scale = float(np.abs(heat).max()) or 1.0
    towards = np.clip(heat / scale, 0, 1)[..., None]
    away = np.clip(-heat / scale, 0, 1)[..., None]
    grey = (0.15 + 0.55 * np.clip(x, 0, 1))[..., None] * np.ones(3)
    rgb = grey * (1 - towards - away) + towards * np.array([0.95, 0.1, 0.1]) + away * np.array([0.15, 0.35, 1.0])
    return blow_up(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), size)
