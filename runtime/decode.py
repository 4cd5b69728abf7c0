"""Decoding, the first step of every preprocessing: any image a user gives (a path, encoded
bytes, a binary stream, a PIL image, a numpy array) as grey and alpha pixels, with the input
limits checked before any pixel is decoded. The recipe proper is mnist_edge.runtime.preprocess.

Limits are arguments with defaults (MAX_PIXELS, MAX_FILE_BYTES): a caller with tighter needs
(the demo's drawings) passes its own.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps

from mnist_edge.runtime.errors import ImageTooLargeError, InvalidImageError

# Input limits: checked before any pixel is decoded.
MAX_PIXELS = 40_000_000
MAX_FILE_BYTES = 20 * 1024 * 1024
# Formats Pillow may decode. An allow-list: some plugins (EPS) would run external programs. Only
# names this Pillow registers an opener for are passed on (JPEG's opener also reads MPO photos).
WANTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
Image.init()
IMAGE_FORMATS = tuple(name for name in WANTED_FORMATS if name in Image.OPEN)
HEADER_SIZE = "mnist_edge.header_size"  # image.info key: the width and height the file declares

EncodedImage = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]
ImageSource = Union[EncodedImage, np.ndarray]


def load_image(
    source: EncodedImage, *, max_pixels: int | None = None, max_bytes: int | None = None, work_side: int | None = None
) -> Image.Image:
    """Decode a path, encoded bytes, a binary file object or a PIL image, with the size limits
    (`max_pixels`, default MAX_PIXELS; `max_bytes`, default MAX_FILE_BYTES) checked before any
    pixel is decoded and the EXIF
    orientation applied. With `work_side`, a JPEG at least twice that long is decoded in grey at
    1/2, 1/4 or 1/8 scale (the decoder's DCT scaling), its longer side still at least `work_side`."""
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    if isinstance(source, Image.Image):
        return _loaded(source, "image", max_pixels, work_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "image bytes"
    elif isinstance(source, (str, os.PathLike)):
        data, name = read_file(Path(source), max_bytes), str(source)
    elif hasattr(source, "read"):
        name = str(getattr(source, "name", "image stream"))
        data = source.read(max_bytes + 1)
        if not isinstance(data, bytes):
            raise InvalidImageError(f"{name}: expected a binary stream, read {type(data).__name__}")
    else:
        raise InvalidImageError(
            f"expected a path, bytes, a binary file, a PIL image or a numpy array, got {type(source).__name__}"
        )
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{name}: more than the {max_bytes:,}-byte limit")
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
    return _loaded(image, name, max_pixels, work_side)


def read_file(path: Path, max_bytes: int | None = None) -> bytes:
    """A regular file's bytes, at most `max_bytes` (default MAX_FILE_BYTES) plus one."""
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise InvalidImageError(f"{path}: is a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise InvalidImageError(f"{path}: not a regular file (a pipe, device or socket), not an image")
        size = info.st_size
        if size > max_bytes:
            raise ImageTooLargeError(f"{path}: {size:,} bytes, over the {max_bytes:,}-byte limit")
        with path.open("rb") as file:  # bounded: the file may grow after the check
            return file.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise InvalidImageError(f"{path}: file not found") from exc
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def check_pixels(width: int, height: int, name: str, max_pixels: int | None = None) -> None:
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} is {width * height:,} pixels, over the {limit:,}-pixel limit"
        )
    if width == 0 or height == 0:
        raise InvalidImageError(f"{name}: image is empty ({width}x{height})")


def reduction(size: tuple[int, int], work_side: int | None) -> int:
    """The integer factor that brings an image of `size` to a longer side from work_side to twice
    that (1: keep it as it is)."""
    return max(1, max(size) // work_side) if work_side else 1


def _loaded(image: Image.Image, name: str, max_pixels: int | None, work_side: int | None = None) -> Image.Image:
    """Check the header's size, then decode the pixels (a truncated file raises) and orient."""
    check_pixels(*image.size, name, max_pixels)
    factor = reduction(image.size, work_side)
    image.info[HEADER_SIZE] = image.size  # the size before any reduced decoding (kept by transposes)
    if factor > 1 and image.format == "JPEG":
        # Grey straight from the luma channel, scaled in the DCT domain: the decoder picks the
        # largest of 1/8, 1/4, 1/2 that keeps at least size // factor, and skips the colour work.
        width, height = image.size
        image.draft("L", (max(1, width // factor), max(1, height // factor)))
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


def image_to_arrays(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey [H, W] and the alpha channel (None when opaque): uint8 for 8-bit images, else float32
    in [0, 1] (`_unit` turns either into the float)."""
    if image.mode.startswith("I;16"):  # 16-bit grey (PNG, TIFF): 0-65535
        return unit_range(np.asarray(image).astype(np.uint16)), None
    if image.mode in ("I", "F"):
        # 32-bit integer or float grey (TIFF): the array rules check and scale the value range;
        # integers beyond 8 bits that fit 16 are read as 16-bit.
        array = np.asarray(image)
        if image.mode == "I" and array.size and array.min() >= 0 and 255 < array.max() <= 65535:
            array = array.astype(np.uint16)
        return array_to_arrays(array)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.info.get("transparency") is not None:
        if image.mode not in ("RGBA", "LA"):
            image = image.convert("RGBA")
        # Luma of the colour, as convert("LA") gives it, without interleaving the channels.
        return np.asarray(image.convert("L")), np.asarray(image.getchannel("A"))
    if image.mode != "L":
        try:
            image = image.convert("L")
        except ValueError:  # modes without a direct route to L (HSV, LAB)
            image = image.convert("RGB").convert("L")
    return np.asarray(image), None


def array_to_arrays(array: np.ndarray, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A numpy image (HxW, HxWx1, HxWx2, HxWx3, HxWx4) as grey and alpha, as `image_to_arrays`."""
    if not isinstance(array, np.ndarray):
        raise InvalidImageError(f"expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise InvalidImageError(
            f"array of shape {array.shape}: expected HxW grey, HxWx3 RGB or HxWx4 RGBA"
        )
    height, width = array.shape[:2]
    check_pixels(width, height, f"array of shape {array.shape}", max_pixels)

    if array.dtype.kind in "iu" and array.dtype not in (np.uint8, np.uint16):
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            raise InvalidImageError(
                f"integer array ({array.dtype}) with values {low}..{high}: expected 0-255 (or dtype uint16)"
            )
        array = array.astype(np.uint8)
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] in (3, 4):
        # PIL's luma conversion is exact for 8 bits and several times faster than numpy here.
        return image_to_arrays(Image.fromarray(np.ascontiguousarray(array), "RGB" if array.shape[2] == 3 else "RGBA"))
    values = array if array.dtype == np.uint8 else unit_range(array)
    if values.ndim == 2:
        return values, None
    channels = values.shape[2]
    if channels == 2:
        return np.ascontiguousarray(values[..., 0]), np.ascontiguousarray(values[..., 1])
    # ITU-R 601 luma, the weights PIL uses for convert("L").
    grey = values[..., 0] * 0.299 + values[..., 1] * 0.587 + values[..., 2] * 0.114
    return grey.astype(np.float32), (np.ascontiguousarray(values[..., 3]) if channels == 4 else None)


def unit_range(array: np.ndarray) -> np.ndarray:
    """Pixel values as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats in [0, 1] (or 0-255)."""
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) * np.float32(1 / 255)  # as the recipe's _unit does
    if array.dtype == np.uint16:
        return array.astype(np.float32) * np.float32(1 / 65535)
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
