"""Seeded handwritten-number fields built from real MNIST digits, for the reading benchmark and tests.

A field is a row of 2 to 8 MNIST digits (use the *test* split: the models never saw them), each
scaled to a field height with some variation in size and baseline, placed with gaps from wide to
touching and overlapping, sometimes on a ruled line, in a box or in a comb of boxes, with specks,
then printed as a photo or scan would show it: paper tone, ink colour, uneven lighting, blur,
noise, JPEG. Every choice comes from one numpy Generator, so a seed gives the same fields.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

SPACINGS = ("wide", "close", "touching", "overlapping")  # how neighbours sit in a plain/ruled/boxed field
FORMS = ("plain", "ruled", "box", "comb")
SEPARATED = ("wide", "close", "cells")  # spacings whose digits do not touch
GROUPS = ("separated", "touching or overlapping")  # how the reading benchmark groups its fields
LENGTHS = (2, 8)  # digits per field, inclusive
HEIGHT = (40, 80)  # the field's digit height in pixels
GAP = {"wide": (0.25, 0.6), "close": (0.06, 0.2)}  # gaps between ink boxes, in digit heights
OVERLAP = (0.1, 0.25)  # overlapping: the boxes share this share of the narrower digit's width
CONTACT = (1, 3)  # touching: pixels the ink of neighbours shares, boxes overlapping at most OVERLAP[1]


@dataclass
class GeneratedField:
    image: bytes  # PNG or JPEG
    text: str
    spacing: str  # one of SPACINGS, or "cells" (a comb: one digit per cell)
    form: str  # one of FORMS
    jpeg: bool
    blurred: bool
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # each digit's ink box, x0 y0 x1 y1

    @property
    def group(self) -> str:
        """One of GROUPS: whether the field's neighbours stand apart or touch or overlap."""
        return GROUPS[0] if self.spacing in SEPARATED else GROUPS[1]

    @property
    def conditions(self) -> list[str]:
        return [self.spacing, self.form, "jpeg" if self.jpeg else "png", "blurred" if self.blurred else "sharp"]


def _digit_ink(image: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit cropped to its ink and scaled to `height`, float32 in [0, 1]."""
    ys, xs = np.nonzero(image > 0)
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    scaled = Image.fromarray(crop, "F").resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(scaled), 0, 1)


def _contact_offset(canvas: np.ndarray, digit: np.ndarray, top: int, contact: int) -> int | None:
    """The left position at which `digit` (at row `top`) just touches the ink already on the
    canvas, sharing `contact` pixels of overlap; None when no row has ink in both."""
    rows = canvas[top : top + digit.shape[0]] >= 0.3
    mine = digit >= 0.3
    both = rows.any(axis=1) & mine.any(axis=1)
    if not both.any():
        return None
    right = np.where(rows.any(axis=1), rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1), -1)
    left = np.argmax(mine, axis=1)
    return int((right[both] - left[both]).max()) + 1 - contact


def _place_row(rng, digits: list[np.ndarray], spacing: str, height: int):
    """The digits side by side on one canvas of ink (float32, 0 = paper), their boxes, and the
    spacing they ended up with: "touching" only if every neighbour's ink does touch (the shapes
    may not allow it with boxes overlapping at most OVERLAP[1]: those are "nearly touching")."""
    width = sum(d.shape[1] for d in digits) + (len(digits) + 2) * height
    rows = 3 * height
    canvas = np.zeros((rows, width), np.float32)
    boxes, x, touched = [], height, True
    for n, digit in enumerate(digits):
        top = height + int(rng.integers(-height // 12, height // 12 + 1)) + (height - digit.shape[0]) // 2
        if n and spacing in GAP:
            x = boxes[-1][2] + round(rng.uniform(*GAP[spacing]) * height)
        elif n and spacing == "overlapping":
            narrower = min(digit.shape[1], boxes[-1][2] - boxes[-1][0])
            x = boxes[-1][2] - round(rng.uniform(*OVERLAP) * narrower)
        elif n:  # touching, where the shapes let them touch with boxes overlapping at most MAX_OVERLAP
            narrower = min(digit.shape[1], boxes[-1][2] - boxes[-1][0])
            offset = _contact_offset(canvas, digit, top, int(rng.integers(CONTACT[0], CONTACT[1] + 1)))
            x = max(boxes[-1][2] - round(OVERLAP[1] * narrower), boxes[-1][2] - 1 if offset is None else offset)
        if n and spacing == "touching":
            touched = touched and _touches(canvas[top : top + digit.shape[0], x : x + digit.shape[1]], digit)
        canvas[top : top + digit.shape[0], x : x + digit.shape[1]] = np.maximum(
            canvas[top : top + digit.shape[0], x : x + digit.shape[1]], digit
        )
        boxes.append((x, top, x + digit.shape[1], top + digit.shape[0]))
    return canvas, boxes, spacing if spacing != "touching" or touched else "nearly touching"


def _touches(below: np.ndarray, digit: np.ndarray) -> bool:
    """Does the digit's ink meet (or come within a pixel of) the ink already under it?"""
    ink = below >= 0.3
    grown = ink.copy()
    grown[1:] |= ink[:-1]
    grown[:-1] |= ink[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return bool((grown & (digit >= 0.3)).any())


def _place_comb(rng, digits: list[np.ndarray], height: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]], int]:
    """Each digit centred (with jitter) in its own cell of a comb; returns the cell width too."""
    cell = round(height * rng.uniform(1.05, 1.4))
    canvas = np.zeros((3 * height, cell * len(digits) + 2 * height), np.float32)
    boxes = []
    for n, digit in enumerate(digits):
        left = height + n * cell + (cell - digit.shape[1]) // 2 + int(rng.integers(-height // 15, height // 15 + 1))
        left = min(max(left, height + n * cell + 2), height + (n + 1) * cell - digit.shape[1] - 2)
        top = height + (height - digit.shape[0]) // 2 + int(rng.integers(-height // 15, height // 15 + 1))
        canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
        boxes.append((left, top, left + digit.shape[1], top + digit.shape[0]))
    return canvas, boxes, cell


def _line(canvas: np.ndarray, rows: slice, cols: slice, strength: float) -> None:
    canvas[rows, cols] = np.maximum(canvas[rows, cols], strength)


def _draw_form(rng, canvas: np.ndarray, boxes, form: str, height: int, cell: int = 0) -> None:
    """Print the form's lines under the digits: a ruled line, a box around them, or a comb."""
    if form == "plain":
        return
    thick = int(rng.integers(1, 4))
    strength = float(rng.uniform(0.5, 1.0))
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if form == "ruled":
        base = max(b[3] for b in boxes) + int(rng.integers(-2, height // 10 + 1))
        reach = round(height * rng.uniform(0.2, 0.8))
        _line(canvas, slice(base, base + thick), slice(max(0, x0 - reach), x1 + reach), strength)
        return
    pad = round(height * rng.uniform(0.12, 0.3))
    if form == "comb":  # the cells were laid out from column `height`
        left, right = height, height + cell * len(boxes)
    else:
        left, right = x0 - pad, x1 + pad
    top, bottom = y0 - pad, y1 + pad
    for row in (top, bottom):
        _line(canvas, slice(row, row + thick), slice(left, right + thick), strength)
    dividers = range(left, right + 1, cell) if form == "comb" else (left, right)
    for col in dividers:
        _line(canvas, slice(top, bottom + thick), slice(col, col + thick), strength)


def _specks(rng, canvas: np.ndarray) -> None:
    for _ in range(int(rng.integers(1, 7))):
        radius = rng.uniform(0.6, 2.0)
        cy, cx = rng.uniform(0, canvas.shape[0]), rng.uniform(0, canvas.shape[1])
        ys, xs = np.ogrid[: canvas.shape[0], : canvas.shape[1]]
        canvas[(ys - cy) ** 2 + (xs - cx) ** 2 <= radius * radius] = float(rng.uniform(0.5, 1.0))


def _trim(canvas: np.ndarray, boxes, margin: int):
    """Cut the canvas to the ink plus `margin` on every side, moving the boxes with it."""
    ys, xs = np.nonzero(canvas > 0)
    top, left = max(0, ys.min() - margin), max(0, xs.min() - margin)
    bottom, right = min(canvas.shape[0], ys.max() + 1 + margin), min(canvas.shape[1], xs.max() + 1 + margin)
    moved = [(x0 - left, y0 - top, x1 - left, y1 - top) for x0, y0, x1, y1 in boxes]
    return canvas[top:bottom, left:right], moved


def _print(rng, ink: np.ndarray) -> tuple[np.ndarray, bool]:
    """The ink as a photo or scan shows it: 8-bit grey, dark ink on light paper, lit unevenly,
    perhaps blurred, with noise."""
    paper = rng.uniform(0.7, 1.0)
    ink_tone = rng.uniform(0.0, 0.35)
    height, width = ink.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    light = rng.uniform(-0.08, 0.08) * (xs / width - 0.5) + rng.uniform(-0.08, 0.08) * (ys / height - 0.5)
    grey = (paper + light) - ink * (paper - ink_tone)
    blurred = bool(rng.random() < 0.4)
    if blurred:
        picture = Image.fromarray(np.clip(grey * 255, 0, 255).astype(np.uint8), "L")
        grey = np.asarray(picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.3)))).astype(np.float32) / 255
    grey = grey + rng.normal(0, rng.uniform(0, 0.025), grey.shape)
    return np.clip(np.round(grey * 255), 0, 255).astype(np.uint8), blurred


def make_field(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, *,
               length: int | None = None, spacing: str | None = None, form: str | None = None) -> GeneratedField:
    """One field of MNIST digits drawn from `images` / `labels` (uint8 [N, 28, 28], [N])."""
    length = length or int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    form = form or str(rng.choice(FORMS))
    spacing = "cells" if form == "comb" else (spacing or str(rng.choice(SPACINGS)))
    picks = rng.integers(0, len(images), length)
    height = int(rng.integers(*HEIGHT))
    digits = [_digit_ink(images[i], max(8, round(height * rng.uniform(0.85, 1.1)))) for i in picks]
    cell = 0
    if form == "comb":
        canvas, boxes, cell = _place_comb(rng, digits, height)
    else:
        canvas, boxes, spacing = _place_row(rng, digits, spacing, height)  # or nearly touching
    _draw_form(rng, canvas, boxes, form, height, cell)
    if rng.random() < 0.3:
        _specks(rng, canvas)
    canvas, boxes = _trim(canvas, boxes, round(height * rng.uniform(0.2, 0.6)))
    grey, blurred = _print(rng, canvas)
    jpeg = bool(rng.random() < 0.5)
    buffer = io.BytesIO()
    if jpeg:
        Image.fromarray(grey, "L").save(buffer, "JPEG", quality=int(rng.integers(40, 92)))
    else:
        Image.fromarray(grey, "L").save(buffer, "PNG")
    text = "".join(str(int(labels[i])) for i in picks)
    return GeneratedField(buffer.getvalue(), text, spacing, form, jpeg, blurred, boxes)


def make_fields(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, **fixed) -> list[GeneratedField]:
    """`count` fields from one seed (the same seed, the same fields); `fixed` pins length, spacing or form."""
    rng = np.random.default_rng(seed)
    return [make_field(rng, images, labels, **fixed) for _ in range(count)]
