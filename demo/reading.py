"""What the demo's Number tab computes: a whole number read from a drawing or an upload, as a
typed result (the text, the confidence, the input with each digit's box drawn on it, and each
digit as the model saw it). Bad input is a message in it, never an exception. No Gradio here.

    service = DigitService(ModelCatalog.from_root(Path("artifacts")))
    read_number(service, image, "cnn", "fp32", "onnxruntime", min_confidence=0.8)
    # NumberReading(text="2026", status="2026 · confidence 99.1% ...", boxed=RGB array, digits=[...])

The reading itself is the runtime's (`Predictor.read`, docs/reading.md); the same upload and
drawing limits, decode slots and refusals as the Digit tab's (service.DigitService) apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mnist_edge import formats, runtime
from mnist_edge.errors import MnistEdgeError

from .service import NOT_AN_UPLOAD, DigitService, blow_up, enlarge, release_freed_memory

NOTHING_WRITTEN = "Write a number first (or upload a photo of one)."
DIGIT_TILE = 112  # each digit's 28x28 model input, enlarged 4x
BOXED_WIDTH = 1000  # the input with its boxes is shown at most this wide
BOX_COLOURS = ((220, 30, 30), (20, 110, 230))  # neighbours alternate, so touching boxes stay apart


@dataclass(frozen=True)
class NumberReading:
    """One image read as a number by one model; `text` is None when it could not be read."""

    status: str  # the line the page shows: confidence, rejection, timing, or why there is no reading
    text: str | None = None
    confidence: float | None = None
    rejected: bool = False  # below the minimum confidence: a person should check it
    boxed: np.ndarray | None = None  # uint8 RGB: the input, each digit's box drawn on it
    digits: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (28x28 enlarged, "2 · 99.1%")
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # per digit, in input pixels

    def outputs(self) -> tuple:
        """(text, status, boxed input, digits): the Number tab's four outputs, in order."""
        return self.text or "", self.status, self.boxed, self.digits


def default_min_confidence() -> float:
    """The runtime's own threshold for rejecting a reading (what `mnist-edge read` uses)."""
    from mnist_edge.runtime.number import load_spec

    return float(load_spec()["min_confidence"])


def confidence_threshold(value) -> float | None:
    """The minimum confidence as sent (the page's slider, or an API caller): a number in [0, 1],
    None for the default; anything else is None too and the default applies."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None


def read_number(service: DigitService, image, model: str, precision: str, engine: str, min_confidence=None) -> NumberReading:
    """What the Number tab shows for one image (see service.image_input for what `image` may be)."""
    if not service.catalog.offers(model):
        return NumberReading(f"Cannot run the model: unknown model {model!r}; choose from {', '.join(service.catalog.models)}")
    found = service.read_input(image)
    if found.refused:
        return NumberReading(f"Cannot read this image: {NOT_AN_UPLOAD}.")
    if found.source is None:
        return NumberReading(NOTHING_WRITTEN)
    threshold = confidence_threshold(min_confidence)
    threshold = default_min_confidence() if threshold is None else threshold
    try:
        predictor, guard = service.catalog.predictor(model, engine, precision)
        limit = service.pixel_limit(found)
        with service.decode_slot:  # the same decode slots as a prediction's
            start = time.perf_counter()
            with guard:
                reading = predictor.read(found.source, min_confidence=threshold, max_pixels=limit)
            elapsed = time.perf_counter() - start
            boxed = boxes_on_input(found.source, [d.box for d in reading.digits], limit)
            if not found.drawn:
                release_freed_memory()
    except runtime.NoDigitError as exc:
        return NumberReading(f"{found.shown_name}: {exc}." if found.shown_name else f"Write a number first: {exc}.")
    except runtime.PreprocessError as exc:  # unreadable, too large, too many digits
        return NumberReading(f"Cannot read this number: {found.message(str(exc))}")
    except MnistEdgeError as exc:  # the model: a missing or modified artifact, a bad choice
        return NumberReading(f"Cannot run the model: {exc}")
    files = predictor.artifact.file
    if reading.reader == "sequence":  # the export's number reader read it (digits that touch)
        files = f"{files} + {predictor.manifest.reader.file}"
    where = f"{model}/{files} on {formats.ENGINES[engine].label}, {precision}"
    return NumberReading(
        reading_status(reading, threshold, elapsed, where), reading.text, reading.confidence, reading.rejected,
        boxed, digit_tiles(reading), [tuple(d.box) for d in reading.digits],
    )


def reading_status(reading, threshold: float, seconds: float, where: str) -> str:
    """The status line of a reading: its confidence, and a request to check it when rejected."""
    said = f"{len(reading.digits)} digits · confidence {reading.confidence:.1%}"
    if reading.rejected:
        said = (
            f"Rejected — please check: {reading.text!r} read with confidence {reading.confidence:.1%}, "
            f"under the minimum {threshold:.0%}"
        )
    return f"{said} · read in {seconds * 1000:.1f} ms · {where}"


# --- pictures for the page -------------------------------------------------------------------------


def digit_tiles(reading) -> list[tuple[np.ndarray, str]]:
    """Each digit as the model saw it (28x28, enlarged; or the columns of the field the sequence
    reader read it from) with its label and confidence."""
    return [(enlarge(d.input, DIGIT_TILE), f"{d.label} · {d.confidence:.1%}") for d in reading.digits]


def display_pixels(source, max_pixels: int) -> tuple[np.ndarray, float]:
    """The input as uint8 grey to show (dark ink on light, transparency on white), reduced as the
    runtime reduces it, and the input pixels per shown pixel. Decoded with the same limits."""
    from mnist_edge.runtime.preprocess import WORK_SIDE, grey_alpha_scale

    grey, alpha, scale = grey_alpha_scale(source, max_pixels, WORK_SIDE)
    shown = _unit(grey)
    if alpha is not None and _unit(alpha).min() < 1.0:
        # A drawing on a transparent layer: its strokes are where the alpha is, whatever their colour.
        shown = 1.0 - _unit(alpha)
    return np.round(np.clip(shown, 0, 1) * 255).astype(np.uint8), scale


def _unit(values: np.ndarray) -> np.ndarray:
    """uint8 (0-255) or float (0-1) pixels as float32 in [0, 1]."""
    return values.astype(np.float32) / 255 if values.dtype == np.uint8 else values.astype(np.float32)


def boxes_on_input(source, boxes: list[tuple[int, int, int, int]], max_pixels: int) -> np.ndarray:
    """The input (grey, at most BOXED_WIDTH wide) with each box drawn on it, neighbours in alternating colours."""
    from PIL import Image, ImageDraw

    grey, scale = display_pixels(source, max_pixels)
    picture = Image.fromarray(grey, "L").convert("RGB")
    if picture.width > BOXED_WIDTH:
        shrink = BOXED_WIDTH / picture.width
        picture = picture.resize((BOXED_WIDTH, max(1, round(picture.height * shrink))), Image.Resampling.BOX)
        scale /= shrink
    if picture.height < 2 * DIGIT_TILE // 3:  # a thin strip: show it larger, by whole pixels
        factor = (2 * DIGIT_TILE // 3) // picture.height + 1
        picture = Image.fromarray(blow_up(np.asarray(picture), picture.height * factor))
        scale /= factor
    pen = ImageDraw.Draw(picture)
    line = max(2, round(max(picture.size) / 300))
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        corners = [x0 / scale, y0 / scale, max(x0 / scale, x1 / scale - 1), max(y0 / scale, y1 / scale - 1)]
        pen.rectangle(corners, outline=BOX_COLOURS[n % len(BOX_COLOURS)], width=line)
    return np.asarray(picture)
