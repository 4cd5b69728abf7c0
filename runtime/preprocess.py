"""Turn any image of a handwritten digit into the 28x28 input an MNIST model expects.

MNIST digits are light ink on a dark background, scaled so the digit fits a 20x20 box
(aspect ratio kept), then placed in a 28x28 field with the ink's centre of mass at the
centre. `to_mnist` makes a photo, a scan, a canvas drawing or an array look like that:

    decode (size limits first, EXIF orientation; a large JPEG at a reduced scale) -> grey +
    alpha (8-bit images stay uint8) -> a large image reduced to under 2 x WORK_SIDE -> ink:
    polarity, paper level (uneven lighting), noise and artefacts to 0 -> crop to the ink ->
    thicken strokes too thin to survive the downscale -> fit the 20x20 box -> centre the mass
    in 28x28 -> float32 in [0, 1]

A real MNIST test digit goes through unchanged apart from its faintest pixels
(tests/test_preprocess.py measures it). Depends on numpy and pillow only. Decoding and the
input limits are mnist_edge.runtime.decode; this module is the recipe from grey pixels on.

Cost: the statistics (polarity, noise, paper level) come from a strided sample; with an even
paper level the ink's bounding box is found on the 8-bit pixels, and only that box is turned
into floats. Images up to WORK_SIDE x 2 (drawings, scans) are read at full resolution; larger
ones are first reduced by an integer factor (an area average: the JPEG decoder's own DCT
scaling, then Pillow's box reduce), which keeps thin strokes, as their contrast falls no faster
than the paper's noise (bench/preprocess_baseline.py is the version that did neither).

Not handled: photos where the paper does not fill the frame (the desk around it looks like
ink), and several digits in one image (they are read as one).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_edge.manifest import digit_box
from mnist_edge.runtime.decode import (  # noqa: F401 (the limits and types are part of this module's API)
    HEADER_SIZE,
    IMAGE_FORMATS,
    MAX_FILE_BYTES,
    MAX_PIXELS,
    EncodedImage,
    ImageSource,
    array_to_arrays,
    image_to_arrays,
    load_image,
    reduction,
    unit_range,
)
from mnist_edge.runtime.errors import NoDigitError, PreprocessError

# The recipe's constants, shared with the web page's JavaScript (demo/web/js/preprocess.js).
SPEC_FILE = Path(__file__).with_name("preprocess_spec.json")
SPEC = json.loads(SPEC_FILE.read_text(encoding="utf-8"))

# MNIST's own geometry: the defaults of to_mnist. A Predictor takes the sizes from its manifest.
SIZE = SPEC["MNIST_SIZE"]  # the input is SIZE x SIZE
BOX = digit_box(SIZE)  # the digit's longer side: 20, as in MNIST
if not BOX == SPEC["MNIST_BOX"] == SPEC["REFERENCE_BOX"]:
    raise ValueError(f"{SPEC_FILE}: MNIST_BOX and REFERENCE_BOX should be {BOX}, the box manifest.digit_box gives")
MAX_INK_WIDTH_RATIO = SPEC["MAX_INK_WIDTH_RATIO"]  # ink wider than this many times its height is a line, not a digit

# Images at least twice this long (pixels, longer side) are reduced by an integer factor, to a longer
# side from WORK_SIDE to 2 x WORK_SIDE, before any float work: a 12 MP photo is read at 1000x750.
# At 1000 px a digit filling a tenth of the frame still spans 100 px, more than the 4 x 20 px the
# final resize starts from (WORK_FACTOR); drawings and scans up to 1999 px are read at full size.
WORK_SIDE = 1000

# Ink detection, on the [0, 1] grey scale once the image is light ink on dark paper.
BORDER_FRACTION = SPEC["BORDER_FRACTION"]  # the outer 5% of each side is "the border" when judging the paper's tone
BACKGROUND_GRID = SPEC["BACKGROUND_GRID"]  # cells on the longer side of the coarse background (uneven lighting) estimate
BACKGROUND_SAMPLES = SPEC["BACKGROUND_SAMPLES"]  # the background and noise are estimated on a grid this many pixels across
FLAT_BACKGROUND = SPEC["FLAT_BACKGROUND"]  # a background varying less than this is treated as one level
SMALL_IMAGE = SPEC["SMALL_IMAGE"]  # images up to this size (canvases, thumbnails) get one background level
MIN_INK_CONTRAST = SPEC["MIN_INK_CONTRAST"]  # ink must stand this far out of the paper, or the image is blank
NOISE_SIGMAS = SPEC["NOISE_SIGMAS"]  # ink must stand this many noise standard deviations out of the paper
# Pixels fainter than this fraction of the peak ink are paper: JPEG ringing, texture. Without it
# JPEG digits lose 3 points of kNN accuracy; 0.05 and 0.1 measure the same, 0.05 keeps more of MNIST.
INK_FLOOR = SPEC["INK_FLOOR"]
INK_PEAK_PERCENTILE = SPEC["INK_PEAK_PERCENTILE"]  # ink at or above this percentile of the ink pixels becomes 1.0
MIN_INK_PIXELS = SPEC["MIN_INK_PIXELS"]  # fewer ink pixels than this is a speck, not a digit
SURFACE_BANDS = 16  # column bands in which an uneven paper level is bounded below, to find the ink on the bytes
SPECK_MASS = SPEC["SPECK_MASS"]  # ink cut off from the digit and under this share of its mass is a speck, left out of the crop

# Thin strokes. Widths are in pixels of the 20x20 box; MNIST's median stroke (at half intensity) is
# 2.0 px and its 1st percentile 1.07 px. A 2 px pen line in a 1000 px photo would be 0.04 px.
MIN_STROKE = SPEC["MIN_STROKE"]
TARGET_STROKE = SPEC["TARGET_STROKE"]  # measured after the whole pipeline, thin-pen drawings come out at 1.94 (median)
WORK_FACTOR = SPEC["WORK_FACTOR"]  # large crops are reduced to about this many times the box before the final resize
RESAMPLE = Image.Resampling.LANCZOS

EVERYWHERE = (slice(None), slice(None))  # the whole image, as a window

def _unit(values: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1]: uint8 divided by 255 (as the float path always did), floats as they are."""
    return values.astype(np.float32) * np.float32(1 / 255) if values.dtype == np.uint8 else values


def _reduce(values: np.ndarray, factor: int) -> np.ndarray:
    """Area average over factor x factor blocks (partial blocks at the edges average what they hold)."""
    mode = "L" if values.dtype == np.uint8 else "F"
    return np.asarray(Image.fromarray(np.ascontiguousarray(values), mode).reduce(factor))


# --- the ink map -----------------------------------------------------------------------------


def _border(values: np.ndarray) -> np.ndarray:
    height, width = values.shape
    dy, dx = max(1, round(height * BORDER_FRACTION)), max(1, round(width * BORDER_FRACTION))
    return np.concatenate(
        [values[:dy].ravel(), values[-dy:].ravel(), values[dy:-dy, :dx].ravel(), values[dy:-dy, -dx:].ravel()]
    )


def _strokes_in_alpha(grey: np.ndarray, alpha: np.ndarray) -> bool:
    """True for a canvas export: strokes on a fully transparent background.

    There the colour of the strokes says nothing (a canvas may use white ink, and the transparent
    pixels hide arbitrary colours) while the alpha channel is exactly the drawing. Strokes are one
    colour, or cover under half the image; otherwise this is something opaque (a scanned page)
    with a transparent margin, and its pixels hold the digit."""
    border = _border(alpha)
    if (_count_median(border) / 255 if alpha.dtype == np.uint8 else _median(border)) > 0.05:
        return False
    is_opaque = _unit(alpha) > 0.5 if alpha.dtype != np.uint8 else alpha > 127  # 128/255 > 0.5
    return np.count_nonzero(is_opaque) < grey.size / 2 or float(_unit(grey[is_opaque]).std()) < 0.1


def _paper_is_light(grey: np.ndarray, sample: np.ndarray) -> bool:
    """Dark ink on light paper (to be inverted)? The border is mostly paper, and asking whether it
    sits at the light or the dark end of this image's range is robust to exposure and grey paper.
    The range comes from every pixel (a thin stroke may be all the ink), the border from `sample`."""
    low, high = float(_unit(grey.min())), float(_unit(grey.max()))
    return _median(_border(sample)) > (low + high) / 2


def _noise_sigma(values: np.ndarray) -> float:
    """The paper's noise: robust spread of neighbour differences, blind to strokes and gradients."""
    if values.shape[1] < 2:
        return 0.0
    step = max(1, max(values.shape) // BACKGROUND_SAMPLES)
    # Every step-th row, and in it the difference of every step-th pixel from its right neighbour.
    right, left = values[::step, 1::step], values[::step, :-1:step]
    if values.dtype == np.uint8:  # in whole half-levels, whose medians a histogram gives
        doubled = 2 * (right.astype(np.int32) - left).ravel()  # -510..510, doubled: medians stay whole
        centre = int(_count_median(doubled + 1020)) - 1020
        mad = _count_median(np.abs(doubled - centre)) / 2 / 255
    else:
        diffs = (right - left).ravel()
        mad = _median(np.abs(diffs - _median(diffs)))
    return float(1.4826 * mad / math.sqrt(2))


def _count_median(values: np.ndarray) -> float:
    """np.median of non-negative integers below a few thousand (bytes, byte differences), from their histogram."""
    counts = np.cumsum(np.bincount(values.ravel()))
    n = int(counts[-1])
    low, high = np.searchsorted(counts, [(n - 1) // 2 + 1, n // 2 + 1])
    return (int(low) + int(high)) / 2


@dataclass(frozen=True)
class _Surface:
    """A paper level varying over the image as c0 + c_x x + c_y y + c_xx x² + c_xy xy + c_yy y²,
    with x and y running from -1 to 1 across it (uneven lighting, vignetting)."""

    coef: tuple[np.float32, ...]  # c0, c_x, c_y, c_xx, c_xy, c_yy
    shape: tuple[int, int]

    def window(self, box: tuple[slice, slice]) -> np.ndarray:
        """The level over a window of the image, float32: each value the same, to the bit, as in
        the whole image's surface."""
        c0, c_x, c_y, c_xx, c_xy, c_yy = self.coef
        y = np.linspace(-1, 1, self.shape[0], dtype=np.float32)[box[0], None]
        x = np.linspace(-1, 1, self.shape[1], dtype=np.float32)[None, box[1]]
        return (c0 + c_y * y + c_yy * y * y) + (c_x * x + c_xx * x * x) + c_xy * y * x

    def floor(self, bands: int) -> tuple[np.ndarray, np.ndarray]:
        """A lower bound of the level in `bands` bands of columns: float64 [height, bands], for
        each row the minimum of its quadratic in x over the band (the float32 values of `window`
        differ from it by far less than a byte level); and the bands' widths in columns."""
        c0, c_x, c_y, c_xx, c_xy, c_yy = (float(c) for c in self.coef)
        height, width = self.shape
        y = np.linspace(-1, 1, height)[:, np.newaxis]
        a, b, c = c_xx, c_x + c_xy * y, c0 + c_y * y + c_yy * y * y  # the row: a x² + b x + c
        edges = np.unique(np.linspace(0, width, bands + 1).round().astype(int))
        x = np.linspace(-1, 1, width)
        low, high = x[edges[:-1]], x[edges[1:] - 1]  # each band's first and last column
        floor = np.minimum(a * low * low + b * low + c, a * high * high + b * high + c)
        if a > 0:  # a valley: its bottom counts where it lies inside the band
            bottom = -b / (2 * a)
            floor = np.where((bottom > low) & (bottom < high), c - b * b / (4 * a), floor)
        return floor, np.diff(edges)


def _level(background: float | _Surface, box: tuple[slice, slice]):
    return background if isinstance(background, float) else background.window(box)


def _background(sample: np.ndarray, shape: tuple[int, int], sigma: float) -> float | _Surface:
    """The paper's level in a light-on-dark image of `shape`, from an evenly strided `sample` of it:
    one number when flat, else a smooth surface (uneven lighting, vignetting).

    Medians of coarse cells, then a quadratic surface fitted to the cells that are paper: the first
    fit sees every cell, later fits drop the cells standing above it (their median is ink)."""
    if max(shape) <= SMALL_IMAGE:  # canvases and thumbnails: no lighting to correct
        return _median(sample)
    cell = max(2, math.ceil(max(sample.shape) / BACKGROUND_GRID))
    rows, cols = math.ceil(sample.shape[0] / cell), math.ceil(sample.shape[1] / cell)
    padded = np.pad(sample, ((0, rows * cell - sample.shape[0]), (0, cols * cell - sample.shape[1])), mode="edge")
    levels = _medians(padded.reshape(rows, cell, cols, cell).transpose(0, 2, 1, 3).reshape(rows * cols, -1))
    design = _quadratic_design(rows, cols, cell, sample.shape)
    # A paper cell's median wanders by about 1.25 sigma / sqrt(cell pixels); allow four times that.
    tolerance = max(FLAT_BACKGROUND, 5 * sigma / cell)
    paper = np.ones(levels.size, bool)
    for _ in range(5):
        coef = np.linalg.lstsq(design[paper], levels[paper], rcond=None)[0]
        below = levels - design @ coef <= tolerance
        if np.count_nonzero(below) < design.shape[1] or (below == paper).all():
            break
        paper = below
    fitted = design @ coef
    if float(fitted.max() - fitted.min()) < FLAT_BACKGROUND:
        return _median(levels[paper])
    return _Surface(tuple(np.float32(c) for c in coef), shape)


def _medians(values: np.ndarray) -> np.ndarray:
    """np.median(values, axis=1), without its overhead (the middle two averaged the same way)."""
    n = values.shape[1]
    middle = np.partition(values, [(n - 1) // 2, n // 2], axis=1)
    return (middle[:, (n - 1) // 2] + middle[:, n // 2]) / 2


def _percentile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) (linear between the two nearest ranks), without its overhead."""
    position = (values.size - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, values.size - 1)
    ranked = np.partition(values, [below, above])
    low, high = float(ranked[below]), float(ranked[above])
    return low + (high - low) * (position - below)


def _median(values: np.ndarray) -> float:
    return float(_medians(values.reshape(1, -1))[0])


@functools.lru_cache(maxsize=64)
def _quadratic_design(rows: int, cols: int, cell: int, shape: tuple[int, int]) -> np.ndarray:
    """The terms 1, x, y, x², xy, y² at the centre of each cell (row-major), with coordinates
    running from -1 to 1 across the image. Cached: it depends only on the geometry."""
    y = np.minimum((np.arange(rows) + 0.5) * cell / shape[0], 1) * 2 - 1
    x = np.minimum((np.arange(cols) + 0.5) * cell / shape[1], 1) * 2 - 1
    cy, cx = np.meshgrid(y, x, indexing="ij")
    design = np.stack([np.ones_like(cx), cx, cy, cx * cx, cx * cy, cy * cy], axis=-1).reshape(-1, 6)
    design.flags.writeable = False
    return design


def _ink(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The digit's ink cropped to its bounding box: light on a zero background, float32 in [0, 1],
    with paper, noise and compression artefacts set to exactly 0. Raises NoDigitError.

    `grey` and `alpha` are uint8 or float32 in [0, 1] (as `image_to_arrays` gives them)."""
    ink, _ = ink_window(grey, alpha)
    top, bottom = _ink_span(ink.sum(axis=1))
    left, right = _ink_span(ink.sum(axis=0))
    crop = ink[top:bottom, left:right]
    # Scale so the ink's core is 1.0, as in MNIST; a few JPEG overshoots must not set the scale.
    full = _percentile(crop[crop > 0], INK_PEAK_PERCENTILE)
    crop = crop * np.float32(1 / full)
    return np.minimum(crop, 1, out=crop)


def ink_window(grey: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The ink over the bounding box of every ink pixel (specks included, not yet scaled): light on
    a zero background, float32, paper, noise and compression artefacts exactly 0; and the box's
    (top, left) in `grey`. Polarity, paper level and noise as in `to_mnist`. Raises NoDigitError.

    `grey` and `alpha` are uint8 or float32 in [0, 1] (as `image_to_arrays` gives them)."""
    if alpha is not None and float(_unit(alpha.min())) < 1:
        if _strokes_in_alpha(grey, alpha):
            grey = alpha  # light strokes on a dark (transparent) ground already
        else:  # a transparent image of something on paper: flatten it onto white paper
            grey, alpha = _unit(grey), _unit(alpha)
            grey = grey * alpha + (1 - alpha)
    # Estimate on a strided sample; then only the ink's bounding box is needed as floats.
    step = max(1, max(grey.shape) // BACKGROUND_SAMPLES)
    sample = _unit(grey[::step, ::step])
    invert = _paper_is_light(grey, sample)
    sigma = _noise_sigma(grey)
    background = _background(1 - sample if invert else sample, grey.shape, sigma)
    if grey.dtype == np.uint8:  # find where the ink can be on the bytes, then compute only there
        box, values, threshold = _ink_window(grey, background, invert, sigma, step)
    else:
        values = _ink_strength(grey, background, invert, EVERYWHERE)
        threshold = _ink_threshold(float(values.max()), sigma)
        box = _bounding_box(values > threshold)
        values = values[box] if box else None
    is_ink = values > threshold if box else np.zeros((0, 0), bool)
    count = int(np.count_nonzero(is_ink))
    if count < MIN_INK_PIXELS:
        raise NoDigitError(f"no digit found: the image is blank ({count} ink pixels)")
    return values * is_ink, (box[0].start, box[1].start)  # faster than np.where, which branches per pixel


def _ink_strength(grey: np.ndarray, background: float | _Surface, invert: bool, box: tuple[slice, slice]) -> np.ndarray:
    """How far each pixel of a window of the image stands out of the paper, towards the ink."""
    paper = _level(background, box)
    values = _unit(grey[box])
    return (1 - paper) - values if invert else values - paper


def _ink_threshold(peak: float, sigma: float) -> float:
    """The ink strength a pixel must pass to be ink. Raises NoDigitError when even the strongest
    ink does not stand out of the paper."""
    if peak < MIN_INK_CONTRAST or peak < NOISE_SIGMAS * sigma:
        raise NoDigitError(f"no digit found: the image is blank (strongest ink contrast {peak:.2f})")
    return max(NOISE_SIGMAS * sigma, INK_FLOOR * peak)


def _ink_window(grey: np.ndarray, background: float | _Surface, invert: bool, sigma: float, step: int):
    """For a uint8 image: (window, ink strength over it, ink threshold), the window holding every
    pixel that passes the threshold (None if none does), computed without turning the whole image
    into floats."""
    if isinstance(background, float):  # one paper level: the strongest ink is the darkest (or lightest) byte
        extreme = grey.min() if invert else grey.max()
        peak = float(_ink_strength(extreme[np.newaxis, np.newaxis], background, invert, EVERYWHERE)[0, 0])
        threshold = _ink_threshold(peak, sigma)
        box = _bounding_box(_byte_candidates(grey, background, threshold, invert))
        return box, (_ink_strength(grey, background, invert, box) if box else None), threshold
    # The strongest ink is at least what the strided sample reaches, so the threshold is at least
    # `lowest`: every pixel that may pass it, the strongest included, is in the window.
    reached = float(_ink_strength(grey, background, invert, (slice(None, None, step),) * 2).max())
    lowest = max(NOISE_SIGMAS * sigma, INK_FLOOR * reached)
    box = _bounding_box(_byte_candidates(grey, background, lowest, invert))
    values = _ink_strength(grey, background, invert, box if box else EVERYWHERE)  # no box: blank, say how blank
    return box, values, _ink_threshold(float(values.max()), sigma)


def _byte_candidates(grey: np.ndarray, background: float | _Surface, threshold: float, invert: bool) -> np.ndarray:
    """Every uint8 pixel whose ink strength might pass `threshold`: the float test moved to the
    byte scale against the lowest paper level near the pixel (in its row, in a band of columns),
    one level looser so float rounding cannot leave a pixel out."""
    if isinstance(background, float):
        level, widths = background, None
    else:
        level, widths = background.floor(SURFACE_BANDS)
    if invert:  # ink is darker than 255 * (1 - level - threshold)
        limit = _clip_byte(np.ceil(255 * (1 - level - threshold)) + 1)
    else:
        limit = _clip_byte(np.floor(255 * (level + threshold)) - 1)
    if widths is not None:  # each band's limit, for every column of it
        limit = np.repeat(limit, widths, axis=1)
    return grey <= limit if invert else grey >= limit


def _clip_byte(values):
    return np.clip(values, 0, 255).astype(np.uint8)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


# --- geometry --------------------------------------------------------------------------------


def _ink_span(mass: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index holding the ink along one axis, leaving out specks: runs
    of ink cut off from the rest by empty rows (or columns) and holding under SPECK_MASS of it."""
    nonzero = np.flatnonzero(mass > 0)
    gaps = np.flatnonzero(np.diff(nonzero) > 1)
    starts = np.concatenate([nonzero[:1], nonzero[gaps + 1]])
    stops = np.concatenate([nonzero[gaps], nonzero[-1:]]) + 1
    cumulative = np.concatenate([[0.0], np.cumsum(mass, dtype=np.float64)])
    run_mass = cumulative[stops] - cumulative[starts]
    kept = np.flatnonzero(run_mass >= SPECK_MASS * cumulative[-1])
    if kept.size == 0:  # ink scattered in specks only: keep it all rather than guess
        return int(starts[0]), int(stops[-1])
    return int(starts[kept[0]]), int(stops[kept[-1]])


def _padded(a: np.ndarray, n: int) -> np.ndarray:
    """`a` with `n` zeros around it: np.pad(a, n), without np.pad's general machinery (it runs for
    every candidate digit of a number, several times)."""
    out = np.zeros((a.shape[0] + 2 * n, a.shape[1] + 2 * n), a.dtype)
    out[n : n + a.shape[0], n : n + a.shape[1]] = a
    return out


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the area over the perimeter (a stroke w wide and L long
    has area wL and perimeter about 2L), measured at half intensity."""
    mask = ink > 0.5
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    padded = _padded(mask, 1)
    perimeter = np.count_nonzero(padded[1:] != padded[:-1]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    return 2 * area / perimeter


def _block_max(ink: np.ndarray, factor: int) -> np.ndarray:
    """Reduce by `factor` keeping each block's maximum, so a line thinner than a block survives."""
    height, width = ink.shape
    rows, cols = math.ceil(height / factor), math.ceil(width / factor)
    padded = np.pad(ink, ((0, rows * factor - height), (0, cols * factor - width)))
    # factor - 1 elementwise maxima of strided slices: far faster than a max over a short axis.
    out = padded[::factor].copy()
    for i in range(1, factor):
        np.maximum(out, padded[i::factor], out=out)
    result = out[:, ::factor].copy()
    for i in range(1, factor):
        np.maximum(result, out[:, i::factor], out=result)
    return result


def _dilate(ink: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by an octagon (3x3 squares alternating with 3x3 crosses), close enough to a
    disk that diagonal strokes thicken like straight ones. The image grows by `radius` each side."""
    out = _padded(ink, radius)
    for step in range(radius):
        p = _padded(out, 1)
        if step % 2 == 0:
            rows = np.maximum(np.maximum(p[:-2], p[1:-1]), p[2:])
            out = np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
        else:
            out = np.maximum.reduce([p[1:-1, 1:-1], p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
    return out


def _fit_box(crop: np.ndarray, box: int) -> np.ndarray:
    """Scale the cropped digit so its longer side is `box`, keeping strokes MNIST-thick."""
    longer = max(crop.shape)
    factor = longer // (WORK_FACTOR * box)
    # Measure strokes on a max-reduced copy: in a plain (area) reduction a thin line fades
    # below the half-intensity mask and would look like no stroke at all.
    measured = _block_max(crop, factor) if factor > 1 else crop
    measured_longer = max(measured.shape)
    stroke = _stroke_width(measured)
    if longer > box and stroke / measured_longer < MIN_STROKE / BOX:
        # Dilate so that, after the final resize, strokes are TARGET_STROKE / BOX of the box:
        # dilating by d adds d to both the width and the digit's size.
        share = TARGET_STROKE / BOX
        grow = (share * measured_longer - stroke) / (1 - share)
        work = _dilate(measured, math.ceil(grow / 2))
    elif factor > 1:
        work = np.asarray(Image.fromarray(crop, "F").reduce(factor))  # area average: exact antialiasing
    else:
        work = crop
    height, width = work.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(work, dtype=np.float32), "F").resize(size, RESAMPLE)
    return np.clip(np.asarray(resized), 0, 1)


def _centre(digit: np.ndarray, size: int) -> np.ndarray:
    """Place the digit in size x size with its centre of mass at the middle (integer shift, as MNIST)."""
    height, width = digit.shape
    total = float(digit.sum())
    if total <= 0:
        raise NoDigitError("no digit found: the ink vanished when scaled to the box")
    centre = size / 2  # MNIST: 14.0 in 28x28, in pixel-index coordinates (measured: 13.99, 14.01)
    rows = float(digit.sum(axis=1) @ np.arange(height)) / total
    cols = float(digit.sum(axis=0) @ np.arange(width)) / total
    top = min(max(math.floor(centre - rows + 0.5), 0), size - height)
    left = min(max(math.floor(centre - cols + 0.5), 0), size - width)
    out = np.zeros((size, size), np.float32)
    out[top : top + height, left : left + width] = digit
    return out


def _check_digit_shape(crop: np.ndarray) -> None:
    """No digit is much wider than tall (MNIST's widest is 2.2 times its height); a long thin line
    or a row of characters is not something to read as one digit."""
    height, width = crop.shape
    if width > MAX_INK_WIDTH_RATIO * height:
        raise NoDigitError(
            f"no digit found: the ink is {width}x{height} px, {width / height:.0f} times wider than tall; "
            "a digit is at most about twice as wide as it is tall"
        )


def _grey_and_alpha(
    image: ImageSource, max_pixels: int | None, work_side: int | None = None, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey and alpha (uint8, or float32 in [0, 1]); with `work_side`, an image at least twice that
    long reduced by an integer factor (a JPEG already while decoding)."""
    grey, alpha, _ = grey_alpha_scale(image, max_pixels, work_side, max_bytes)
    return grey, alpha


def grey_alpha_scale(
    image: ImageSource, max_pixels: int | None, work_side: int | None = None, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """As `_grey_and_alpha`, with the scale back to the input: input pixels per pixel of grey
    (1.0 unless the image was reduced)."""
    if isinstance(image, np.ndarray):
        grey, alpha = array_to_arrays(image, max_pixels)
        longer = max(image.shape[:2])
    else:
        decoded = load_image(image, max_pixels=max_pixels, max_bytes=max_bytes, work_side=work_side)
        longer = max(decoded.info.get(HEADER_SIZE, decoded.size))
        grey, alpha = image_to_arrays(decoded)
    factor = reduction(grey.shape, work_side)
    if factor > 1:
        grey, alpha = _reduce(grey, factor), (None if alpha is None else _reduce(alpha, factor))
    return grey, alpha, longer / max(grey.shape)


# --- public ----------------------------------------------------------------------------------


def to_mnist(
    image: ImageSource, *, size: int = SIZE, box: int = BOX, max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Any digit image (path, encoded bytes, PIL image or numpy array) as MNIST: float32
    [size, size] in [0, 1], light ink on dark, fit in box x box and mass-centred (docs/preprocessing.md).
    `max_pixels` / `max_bytes` lower or raise the decoding limits (default: runtime.decode's).
    Raises PreprocessError subclasses."""
    crop = _ink(*_grey_and_alpha(image, max_pixels, WORK_SIDE, max_bytes))
    _check_digit_shape(crop)
    return _centre(_fit_box(crop, box), size)


def to_plain(
    image: ImageSource, *, size: tuple[int, int] = (SIZE, SIZE), max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """The whole image as float32 [height, width] in [0, 1], grey, as it is: no crop, no inversion.

    For models trained on images that are not centred ink (Fashion-MNIST): the image is scaled to
    fit `size` keeping its aspect ratio (area averaging), centred, padded with 0; transparency is
    flattened onto black, the background of such data sets."""
    grey, alpha = _grey_and_alpha(image, max_pixels, max_bytes=max_bytes)
    grey = _unit(grey)
    if alpha is not None:
        grey = grey * _unit(alpha)
    height, width = size
    scale = min(height / grey.shape[0], width / grey.shape[1])
    fitted = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    picture = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32), "F")
    if fitted != picture.size:
        picture = picture.resize(fitted, Image.Resampling.BOX if scale < 1 else RESAMPLE)
    out = np.zeros(size, np.float32)
    top, left = (height - fitted[1]) // 2, (width - fitted[0]) // 2
    out[top : top + fitted[1], left : left + fitted[0]] = np.clip(np.asarray(picture), 0, 1)
    return out


def to_mnist_batch(images: Iterable[ImageSource], *, size: int = SIZE, box: int = BOX) -> np.ndarray:
    """`to_mnist` over several images: float32 [N, size, size]. The first bad image raises."""
    digits = [to_mnist(image, size=size, box=box) for image in images]
    return np.stack(digits) if digits else np.zeros((0, size, size), np.float32)


def preparer(spec):
    """The function that turns one image into the model input `spec` (a manifest InputSpec)
    describes, by its preprocessing kind."""
    kind = spec.preprocessing.kind
    if kind == "digit":
        box = spec.preprocessing.box or digit_box(spec.height)
        if spec.height != spec.width:
            raise PreprocessError(f"digit preprocessing needs a square input, the model takes {spec.height}x{spec.width}")
        return lambda image, max_pixels=None: to_mnist(image, size=spec.height, box=box, max_pixels=max_pixels)
    if kind == "plain":
        return lambda image, max_pixels=None: to_plain(image, size=(spec.height, spec.width), max_pixels=max_pixels)
    raise PreprocessError(f"unknown preprocessing kind {kind!r}")
