"""FROZEN: runtime/preprocess.py as it was at commit 43e31e6, before it was made faster.

Kept only as the baseline that `mnist-edge bench` times next to the current implementation and
that tests/test_preprocess_baseline.py compares the current output with. Never imported by the
runtime; do not edit (fix bugs in runtime/preprocess.py). Its own docstring follows.

Turn any image of a handwritten digit into the 28x28 input an MNIST model expects.

MNIST digits are light ink on a dark background, scaled so the digit fits a 20x20 box
(aspect ratio kept), then placed in a 28x28 field with the ink's centre of mass at the
centre. `to_mnist` makes a photo, a scan, a canvas drawing or an array look like that:

    decode (size limits first, EXIF orientation) -> grey + alpha -> ink: polarity, paper
    level (uneven lighting), noise and artefacts to 0 -> crop to the ink at full resolution
    -> thicken strokes too thin to survive the downscale -> fit the 20x20 box -> centre the
    mass in 28x28 -> float32 in [0, 1]

A real MNIST test digit goes through unchanged apart from its faintest pixels
(tests/test_preprocess.py measures it). Depends on numpy and pillow only.

Not handled: photos where the paper does not fill the frame (the desk around it looks like
ink), and several digits in one image (they are read as one).
"""

from __future__ import annotations

import io
import math
import os
import stat
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps

from mnist_edge.manifest import digit_box
from mnist_edge.runtime.errors import ImageTooLargeError, InvalidImageError, NoDigitError

# MNIST's own geometry: the defaults of to_mnist. A Predictor takes the sizes from its manifest.
SIZE = 28  # the input is SIZE x SIZE
BOX = digit_box(SIZE)  # the digit's longer side: 20, as in MNIST
MAX_INK_WIDTH_RATIO = 5  # ink wider than this many times its height is a line, not a digit

# Input limits: checked before any pixel is decoded.
MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 20 * 1024 * 1024
# Formats Pillow may decode. An allow-list: some plugins (EPS) would run external programs. Only
# names this Pillow registers an opener for are passed on (JPEG's opener also reads MPO photos).
WANTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
Image.init()
IMAGE_FORMATS = tuple(name for name in WANTED_FORMATS if name in Image.OPEN)

# Ink detection, on the [0, 1] grey scale once the image is light ink on dark paper.
BORDER_FRACTION = 0.05  # the outer 5% of each side is "the border" when judging the paper's tone
BACKGROUND_GRID = 12  # cells on the longer side of the coarse background (uneven lighting) estimate
BACKGROUND_SAMPLES = 128  # the background and noise are estimated on a grid this many pixels across
FLAT_BACKGROUND = 0.02  # a background varying less than this is treated as one level
SMALL_IMAGE = 64  # images up to this size (canvases, thumbnails) get one background level
MIN_INK_CONTRAST = 0.2  # ink must stand this far out of the paper, or the image is blank
NOISE_SIGMAS = 5.0  # ink must stand this many noise standard deviations out of the paper
# Pixels fainter than this fraction of the peak ink are paper: JPEG ringing, texture. Without it
# JPEG digits lose 3 points of kNN accuracy; 0.05 and 0.1 measure the same, 0.05 keeps more of MNIST.
INK_FLOOR = 0.05
INK_PEAK_PERCENTILE = 95  # ink at or above this percentile of the ink pixels becomes 1.0
MIN_INK_PIXELS = 10  # fewer ink pixels than this is a speck, not a digit
SPECK_MASS = 0.01  # ink cut off from the digit and under this share of its mass is a speck, left out of the crop

# Thin strokes. Widths are in pixels of the 20x20 box; MNIST's median stroke (at half intensity) is
# 2.0 px and its 1st percentile 1.07 px. A 2 px pen line in a 1000 px photo would be 0.04 px.
MIN_STROKE = 1.0
TARGET_STROKE = 2.0  # measured after the whole pipeline, thin-pen drawings come out at 1.94 (median)
WORK_FACTOR = 4  # large crops are reduced to about this many times the box before the final resize
RESAMPLE = Image.Resampling.LANCZOS

EncodedImage = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]
ImageSource = Union[EncodedImage, np.ndarray]


# --- decoding --------------------------------------------------------------------------------


def load_image(source: EncodedImage, *, max_pixels: int | None = None) -> Image.Image:
    """Decode a path, encoded bytes, a binary file object or a PIL image, with the size limits
    (`max_pixels`, default MAX_PIXELS) checked before any pixel is decoded and the EXIF
    orientation applied."""
    if isinstance(source, Image.Image):
        return _loaded(source, "image", max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "image bytes"
    elif isinstance(source, (str, os.PathLike)):
        data, name = _read_file(Path(source)), str(source)
    elif hasattr(source, "read"):
        name = str(getattr(source, "name", "image stream"))
        data = source.read(MAX_FILE_BYTES + 1)
        if not isinstance(data, bytes):
            raise InvalidImageError(f"{name}: expected a binary stream, read {type(data).__name__}")
    else:
        raise InvalidImageError(
            f"expected a path, bytes, a binary file, a PIL image or a numpy array, got {type(source).__name__}"
        )
    if len(data) > MAX_FILE_BYTES:
        raise ImageTooLargeError(f"{name}: more than the {MAX_FILE_BYTES:,}-byte limit")
    if not data:
        raise InvalidImageError(f"{name}: empty, not an image")
    try:
        # Pillow warns of a decompression bomb at 89M pixels and refuses at twice that, while
        # opening the header. Our limit is lower and checked next; the warning must stop here
        # rather than print a line. (catch_warnings is not thread-safe: two decodes at once in
        # threads can leave the process's warning filters changed; an accepted cost.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{name}: too large to decode safely ({exc})") from exc
    except Exception as exc:  # UnidentifiedImageError, SyntaxError, ...: whatever the plugin raised
        raise InvalidImageError(
            f"{name}: not a readable image (expected one of {', '.join(IMAGE_FORMATS)})"
        ) from exc
    return _loaded(image, name, max_pixels)


def _read_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InvalidImageError(f"{path}: is a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise InvalidImageError(f"{path}: not a regular file (a pipe, device or socket), not an image")
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise ImageTooLargeError(f"{path}: {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
        with path.open("rb") as file:  # bounded: the file may grow after the check
            return file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise InvalidImageError(f"{path}: file not found") from exc
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _check_pixels(width: int, height: int, name: str, max_pixels: int | None = None) -> None:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} is {width * height:,} pixels, over the {limit:,}-pixel limit"
        )
    if width == 0 or height == 0:
        raise InvalidImageError(f"{name}: image is empty ({width}x{height})")


def _loaded(image: Image.Image, name: str, max_pixels: int | None) -> Image.Image:
    """Check the header's size, then decode the pixels (a truncated file raises) and orient."""
    _check_pixels(*image.size, name, max_pixels)
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: too large to decode safely ({exc})") from exc
    except Exception as exc:  # truncated data, broken streams: PIL raises OSError, SyntaxError, ...
        raise InvalidImageError(f"{name}: truncated or corrupt image data ({exc})") from exc
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block should not cost the user an otherwise good photo
        orientation = 1
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
    return image


def _image_to_arrays(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey float32 [H, W] in [0, 1], and the alpha channel the same way (None when opaque)."""
    if image.mode.startswith("I;16"):  # 16-bit grey (PNG, TIFF): 0-65535
        return _unit_range(np.asarray(image).astype(np.uint16)), None
    if image.mode in ("I", "F"):
        # 32-bit integer or float grey (TIFF): the array rules check and scale the value range;
        # integers beyond 8 bits that fit 16 are read as 16-bit.
        array = np.asarray(image)
        if image.mode == "I" and array.size and array.min() >= 0 and 255 < array.max() <= 65535:
            array = array.astype(np.uint16)
        return _array_to_arrays(array)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.info.get("transparency") is not None:
        la = image.convert("LA") if image.mode in ("RGBA", "LA") else image.convert("RGBA").convert("LA")
        array = np.asarray(la, dtype=np.float32) * np.float32(1 / 255)
        return array[..., 0], array[..., 1]
    if image.mode != "L":
        try:
            image = image.convert("L")
        except ValueError:  # modes without a direct route to L (HSV, LAB)
            image = image.convert("RGB").convert("L")
    return np.asarray(image, dtype=np.float32) * np.float32(1 / 255), None


def _array_to_arrays(array: np.ndarray, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A numpy image (HxW, HxWx1, HxWx2, HxWx3, HxWx4) as grey and alpha floats in [0, 1]."""
    if not isinstance(array, np.ndarray):
        raise InvalidImageError(f"expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise InvalidImageError(
            f"array of shape {array.shape}: expected HxW grey, HxWx3 RGB or HxWx4 RGBA"
        )
    height, width = array.shape[:2]
    _check_pixels(width, height, f"array of shape {array.shape}", max_pixels)

    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] in (3, 4):
        # PIL's luma conversion is exact for 8 bits and several times faster than numpy here.
        return _image_to_arrays(Image.fromarray(np.ascontiguousarray(array), "RGB" if array.shape[2] == 3 else "RGBA"))
    values = _unit_range(array)
    if values.ndim == 2:
        return values, None
    channels = values.shape[2]
    if channels == 2:
        return np.ascontiguousarray(values[..., 0]), np.ascontiguousarray(values[..., 1])
    # ITU-R 601 luma, the weights PIL uses for convert("L").
    grey = values[..., 0] * 0.299 + values[..., 1] * 0.587 + values[..., 2] * 0.114
    return grey.astype(np.float32), (np.ascontiguousarray(values[..., 3]) if channels == 4 else None)


def _unit_range(array: np.ndarray) -> np.ndarray:
    """Pixel values as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats in [0, 1] (or 0-255)."""
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) * np.float32(1 / 255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) * np.float32(1 / 65535)
    if kind in "iu":
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            raise InvalidImageError(
                f"integer array ({array.dtype}) with values {low}..{high}: expected 0-255 (or dtype uint16)"
            )
        return array.astype(np.float32) * np.float32(1 / 255)
    if kind == "f":
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise InvalidImageError("float array contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -1e-6 or high > 255 + 1e-3:
            raise InvalidImageError(f"float array with values {low:g}..{high:g}: expected [0, 1] (or 0-255)")
        if high > 1 + 1e-6:  # a float copy of 0-255 pixels: there is no other sensible reading
            values *= np.float32(1 / 255)
        return np.clip(values, 0, 1, out=values)
    raise InvalidImageError(f"array of dtype {array.dtype}: expected uint8, uint16 or float pixels")


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
    if np.median(_border(alpha)) > 0.05:
        return False
    opaque = grey[alpha > 0.5]
    return opaque.size < grey.size / 2 or float(opaque.std()) < 0.1


def _paper_is_light(grey: np.ndarray, sample: np.ndarray) -> bool:
    """Dark ink on light paper (to be inverted)? The border is mostly paper, and asking whether it
    sits at the light or the dark end of this image's range is robust to exposure and grey paper.
    The range comes from every pixel (a thin stroke may be all the ink), the border from `sample`."""
    low, high = float(grey.min()), float(grey.max())
    return float(np.median(_border(sample))) > (low + high) / 2


def _noise_sigma(values: np.ndarray) -> float:
    """The paper's noise: robust spread of neighbour differences, blind to strokes and gradients."""
    if values.shape[1] < 2:
        return 0.0
    step = max(1, max(values.shape) // BACKGROUND_SAMPLES)
    rows = values[::step]
    diffs = (rows[:, 1:] - rows[:, :-1])[:, ::step].ravel()
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(1.4826 * mad / math.sqrt(2))


def _background(sample: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray | float:
    """The paper's level in a light-on-dark image of `shape`, from an evenly strided `sample` of it:
    one number when flat, else a smooth surface (uneven lighting, vignetting).

    Medians of coarse cells, then a quadratic surface fitted to the cells that are paper: the first
    fit sees every cell, later fits drop the cells standing above it (their median is ink)."""
    height, width = shape
    if max(shape) <= SMALL_IMAGE:  # canvases and thumbnails: no lighting to correct
        return float(np.median(sample))
    cell = max(2, math.ceil(max(sample.shape) / BACKGROUND_GRID))
    rows, cols = math.ceil(sample.shape[0] / cell), math.ceil(sample.shape[1] / cell)
    padded = np.pad(sample, ((0, rows * cell - sample.shape[0]), (0, cols * cell - sample.shape[1])), mode="edge")
    medians = np.median(padded.reshape(rows, cell, cols, cell).transpose(0, 2, 1, 3).reshape(rows, cols, -1), axis=2)

    # Cell centres, in coordinates running from -1 to 1 across the image.
    y = np.minimum((np.arange(rows) + 0.5) * cell / sample.shape[0], 1) * 2 - 1
    x = np.minimum((np.arange(cols) + 0.5) * cell / sample.shape[1], 1) * 2 - 1
    cy, cx = np.meshgrid(y, x, indexing="ij")
    design = np.stack([np.ones_like(cx), cx, cy, cx * cx, cx * cy, cy * cy], axis=-1).reshape(-1, 6)
    levels = medians.ravel()
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
        return float(np.median(levels[paper]))
    c0, c_x, c_y, c_xx, c_xy, c_yy = (np.float32(c) for c in coef)
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    return (c0 + c_y * y + c_yy * y * y) + (c_x * x + c_xx * x * x) + c_xy * y * x


def _ink(grey: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The digit's ink cropped to its bounding box: light on a zero background, float32 in [0, 1],
    with paper, noise and compression artefacts set to exactly 0. Raises NoDigitError."""
    if alpha is not None and float(alpha.min()) < 1:
        if _strokes_in_alpha(grey, alpha):
            grey = alpha  # light strokes on a dark (transparent) ground already
        else:  # a transparent image of something on paper: flatten it onto white paper
            grey = grey * alpha + (1 - alpha)
    # Estimate on a strided sample, then invert and subtract in one pass over the full image.
    step = max(1, max(grey.shape) // BACKGROUND_SAMPLES)
    sample = grey[::step, ::step]
    invert = _paper_is_light(grey, sample)
    sigma = _noise_sigma(grey)
    background = _background(1 - sample if invert else sample, grey.shape, sigma)
    values = (1 - background) - grey if invert else grey - background

    peak = float(values.max())
    if peak < MIN_INK_CONTRAST or peak < NOISE_SIGMAS * sigma:
        raise NoDigitError(f"no digit found: the image is blank (strongest ink contrast {peak:.2f})")
    threshold = max(NOISE_SIGMAS * sigma, INK_FLOOR * peak)
    is_ink = values > threshold
    count = int(np.count_nonzero(is_ink))
    if count < MIN_INK_PIXELS:
        raise NoDigitError(f"no digit found: the image is blank ({count} ink pixels)")
    ink = values * is_ink  # faster than np.where, which branches per pixel

    top, bottom = _ink_span(ink.sum(axis=1))
    left, right = _ink_span(ink.sum(axis=0))
    crop = ink[top:bottom, left:right]
    # Scale so the ink's core is 1.0, as in MNIST; a few JPEG overshoots must not set the scale.
    full = float(np.percentile(crop[crop > 0], INK_PEAK_PERCENTILE))
    crop = crop * np.float32(1 / full)
    return np.minimum(crop, 1, out=crop)


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


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the area over the perimeter (a stroke w wide and L long
    has area wL and perimeter about 2L), measured at half intensity."""
    mask = ink > 0.5
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    perimeter = np.count_nonzero(padded[1:] != padded[:-1]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    return 2 * area / perimeter


def _block_max(ink: np.ndarray, factor: int) -> np.ndarray:
    """Reduce by `factor` keeping each block's maximum, so a line thinner than a block survives."""
    height, width = ink.shape
    rows, cols = math.ceil(height / factor), math.ceil(width / factor)
    padded = np.pad(ink, ((0, rows * factor - height), (0, cols * factor - width)))
    return padded.reshape(rows, factor, cols * factor).max(axis=1).reshape(rows, cols, factor).max(axis=2)


def _dilate(ink: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by an octagon (3x3 squares alternating with 3x3 crosses), close enough to a
    disk that diagonal strokes thicken like straight ones. The image grows by `radius` each side."""
    out = np.pad(ink, radius)
    for step in range(radius):
        p = np.pad(out, 1)
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


def _grey_and_alpha(image: ImageSource, max_pixels: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(image, np.ndarray):
        return _array_to_arrays(image, max_pixels)
    return _image_to_arrays(load_image(image, max_pixels=max_pixels))


# --- public ----------------------------------------------------------------------------------


def to_mnist(image: ImageSource, *, size: int = SIZE, box: int = BOX, max_pixels: int | None = None) -> np.ndarray:
    """Any digit image (path, encoded bytes, PIL image or numpy array) as MNIST: float32
    [size, size] in [0, 1], light ink on dark, fit in box x box and mass-centred (docs/preprocessing.md).
    Raises PreprocessError subclasses."""
    crop = _ink(*_grey_and_alpha(image, max_pixels))
    _check_digit_shape(crop)
    return _centre(_fit_box(crop, box), size)


def to_plain(image: ImageSource, *, size: tuple[int, int] = (SIZE, SIZE), max_pixels: int | None = None) -> np.ndarray:
    """The whole image as float32 [height, width] in [0, 1], grey, as it is: no crop, no inversion.

    For models trained on images that are not centred ink (Fashion-MNIST): the image is scaled to
    fit `size` keeping its aspect ratio (area averaging), centred, padded with 0; transparency is
    flattened onto black, the background of such data sets."""
    grey, alpha = _grey_and_alpha(image, max_pixels)
    if alpha is not None:
        grey = grey * alpha
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
