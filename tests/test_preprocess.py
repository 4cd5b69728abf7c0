"""mnist_edge.runtime.preprocess on real MNIST digits.

A small nearest-neighbour classifier, fitted here on real MNIST training images with numpy,
judges whether a digit survives: real test digits must pass through unchanged, and the same
digits re-drawn the way users give them (large and off-centre, dark on white, on a transparent
canvas, as JPEG bytes or files, on noisy grey paper, under uneven light, with a thin pen) must be
recognised about as well as the originals. Then blank images, broken and hostile inputs, and
the output contract.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_edge.bench import placed_ink
from mnist_edge.errors import MnistEdgeError
from mnist_edge.runtime import preprocess
from mnist_edge.runtime.errors import ImageTooLargeError, InvalidImageError, NoDigitError, PreprocessError
from mnist_edge.runtime.preprocess import BOX, SIZE, load_image, to_mnist, to_mnist_batch

CENTRE = SIZE / 2  # where MNIST puts the centre of mass, in pixel-index coordinates

KNN_TRAIN = 20_000  # training images the classifier remembers: ~95% on plain test digits
PASS_THROUGH_DIGITS = 500
REDRAWN_DIGITS = 300
MAX_ACCURACY_DROP = 0.03  # a re-drawn variant may cost at most 3 points of accuracy
MIN_PASS_THROUGH_AGREEMENT = 0.99


# --- a classifier to judge by ------------------------------------------------------------------


class NearestNeighbours:
    """3-nearest-neighbour vote on raw pixels (ties go to the nearest); distances by one matmul."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.train = images.reshape(len(images), -1).astype(np.float32) / 255
        self.norms = (self.train * self.train).sum(axis=1)
        self.labels = labels

    def predict(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, np.float32).reshape(len(images), -1)
        distances = self.norms[None, :] - 2 * x @ self.train.T  # |x|^2 is the same for every neighbour
        nearest = np.argsort(distances, axis=1)[:, :3]
        first, second, third = self.labels[nearest].T
        return np.where(second == third, second, first)


@pytest.fixture(scope="session")
def knn(mnist) -> NearestNeighbours:
    return NearestNeighbours(mnist.train.images[:KNN_TRAIN], mnist.train.labels[:KNN_TRAIN])


@pytest.fixture(scope="session")
def redrawn(mnist):
    return mnist.test.images[:REDRAWN_DIGITS], mnist.test.labels[:REDRAWN_DIGITS]


@pytest.fixture(scope="session")
def plain_accuracy(knn, redrawn) -> float:
    images, labels = redrawn
    return float(np.mean(knn.predict(images / 255) == labels))


# --- digits drawn the way users give them ------------------------------------------------------


def to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values * 255), 0, 255).astype(np.uint8)


def placed(digit: np.ndarray, rng: np.random.Generator, canvas=(360, 480)) -> np.ndarray:
    """The 28x28 digit scaled up 4-10x and put at a random place on a larger canvas: ink in [0, 1]."""
    return placed_ink(digit, canvas, int(rng.integers(4 * 28, 10 * 28 + 1)), rng)


def jpeg_bytes(grey: np.ndarray, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the one-pixel centre line of a binary shape."""
    image = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for second_pass in (False, True):
            p = image
            p2, p3, p4, p5 = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:]
            p6, p7, p8, p9 = p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9]
            neighbours = sum(n.astype(np.int32) for n in ring)
            transitions = sum(((ring[i] == 0) & (ring[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            if second_pass:
                sides = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            else:
                sides = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            delete = (p[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & sides
            if delete.any():
                changed = True
                image = image.copy()
                image[1:-1, 1:-1][delete] = 0
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def pen_drawing(digit: np.ndarray, rng: np.random.Generator, pen: int = 3) -> np.ndarray:
    """The digit's centre line drawn with a 3 px pen, 500-900 px tall on a 1000x1000 white page:
    a stroke 0.1 px wide once scaled to 20x20, unless the preprocessing thickens it."""
    big = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC))
    centre_line = skeleton(big > 128)
    side = int(rng.integers(500, 900))
    scale = side / 112
    top, left = (int(v) for v in rng.integers(0, 1000 - side, 2))
    page = Image.new("L", (1000, 1000), 255)
    draw = ImageDraw.Draw(page)
    points = set(zip(*(axis.tolist() for axis in np.nonzero(centre_line))))
    for y, x in points:
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            if (y + dy, x + dx) in points:
                start = (left + x * scale, top + y * scale)
                end = (left + (x + dx) * scale, top + (y + dy) * scale)
                draw.line([start, end], fill=0, width=pen)
    return np.asarray(page)


def large_off_centre(digit, rng, tmp_path):
    return to_uint8(placed(digit, rng))


def dark_on_white(digit, rng, tmp_path):
    return to_uint8(1 - placed(digit, rng))


def transparent_canvas_black_ink(digit, rng, tmp_path):
    """A canvas export as a PIL image: black strokes, alpha carries the drawing."""
    rgba = np.zeros((360, 480, 4), np.uint8)
    rgba[..., 3] = to_uint8(placed(digit, rng))
    return Image.fromarray(rgba, "RGBA")


def transparent_canvas_white_ink(digit, rng, tmp_path):
    """White strokes on a transparent canvas, as an array; flattening onto white would lose them."""
    alpha = to_uint8(placed(digit, rng))
    rgba = np.zeros(alpha.shape + (4,), np.uint8)
    rgba[alpha > 0, :3] = 255
    rgba[..., 3] = alpha
    return rgba


def jpeg_from_bytes(digit, rng, tmp_path):
    return jpeg_bytes(to_uint8(1 - placed(digit, rng)))


def jpeg_from_file(digit, rng, tmp_path):
    path = tmp_path / f"digit-{rng.integers(1 << 62)}.jpg"
    path.write_bytes(jpeg_bytes(to_uint8(1 - placed(digit, rng))))
    return path


def grey_paper_with_noise(digit, rng, tmp_path):
    """Paper at 200 with Gaussian noise (sd 10), ink at 30."""
    ink = placed(digit, rng)
    return to_uint8((200 - 170 * ink + rng.normal(0, 10, ink.shape)) / 255)


def uneven_light(digit, rng, tmp_path):
    """A lamp on the left: paper from 235 down to 94 across the page, ink at 20% of the light."""
    ink = placed(digit, rng)
    height, width = ink.shape
    light = np.linspace(235, 110, width)[None, :] * np.linspace(1, 0.85, height)[:, None]
    return to_uint8((light * (1 - 0.8 * ink) + rng.normal(0, 4, ink.shape)) / 255)


def thin_pen(digit, rng, tmp_path):
    return pen_drawing(digit, rng)


VARIANTS = [
    large_off_centre,
    dark_on_white,
    transparent_canvas_black_ink,
    transparent_canvas_white_ink,
    jpeg_from_bytes,
    jpeg_from_file,
    grey_paper_with_noise,
    uneven_light,
    thin_pen,
]


# --- real digits -------------------------------------------------------------------------------


def test_mnist_digits_pass_through_unchanged(mnist, knn):
    images = mnist.test.images[:PASS_THROUGH_DIGITS]
    out = np.stack([to_mnist(image) for image in images])
    expected = images / 255

    agreement = float(np.mean(knn.predict(out) == knn.predict(expected)))
    mean_abs = float(np.abs(out - expected).mean())
    # Pixels fainter than INK_FLOOR of the peak are dropped and the ink rescaled by at most
    # 255/250; anything more means the digit was moved or rescaled.
    untouched = float(np.mean(np.abs(out - expected).max(axis=(1, 2)) <= 0.06))
    print(f"\npass-through on {len(images)} MNIST test digits: kNN agreement {agreement:.3f}, "
          f"mean |diff| {mean_abs:.5f}, digits not moved or rescaled {untouched:.3f}")
    assert agreement >= MIN_PASS_THROUGH_AGREEMENT
    assert mean_abs < 0.003
    assert untouched >= 0.99


def test_mnist_digit_as_uint8_float_and_float_0_255_give_the_same_result(mnist):
    image = mnist.test.images[0]
    reference = to_mnist(image)
    np.testing.assert_allclose(to_mnist(image / 255), reference, atol=1e-5)
    np.testing.assert_allclose(to_mnist(image.astype(np.float32)), reference, atol=1e-5)
    np.testing.assert_allclose(to_mnist(Image.fromarray(image)), reference, atol=1e-5)
    np.testing.assert_allclose(to_mnist(image[..., None]), reference, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_redrawn_digits_are_recognised_as_well_as_the_originals(variant, redrawn, knn, plain_accuracy, tmp_path):
    images, labels = redrawn
    rng = np.random.default_rng(1)
    inputs = [variant(image, rng, tmp_path) for image in images]
    out = np.stack([to_mnist(x) for x in inputs])
    accuracy = float(np.mean(knn.predict(out) == labels))
    print(f"\n{variant.__name__}: kNN accuracy {accuracy:.3f} (plain test digits {plain_accuracy:.3f})")
    assert accuracy >= plain_accuracy - MAX_ACCURACY_DROP, (
        f"{variant.__name__}: accuracy {accuracy:.3f}, plain digits {plain_accuracy:.3f}"
    )


def test_exif_orientation_is_applied(mnist):
    upright = to_uint8(1 - placed(mnist.test.images[0], np.random.default_rng(2)))
    # Orientation 6: the camera stored the picture turned 90 degrees; viewers turn it back.
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=90, exif=exif.tobytes())

    assert load_image(buffer.getvalue()).size == (upright.shape[1], upright.shape[0])
    reference = to_mnist(jpeg_bytes(upright, quality=90))
    assert np.abs(to_mnist(buffer.getvalue()) - reference).mean() < 0.02


def test_batch(mnist):
    images = mnist.test.images[:5]
    batch = to_mnist_batch(list(images))
    assert batch.shape == (5, SIZE, SIZE) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[3], to_mnist(images[3]))
    assert to_mnist_batch([]).shape == (0, SIZE, SIZE)


# --- the output contract -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", [large_off_centre, jpeg_from_bytes, uneven_light, thin_pen], ids=lambda v: v.__name__)
def test_output_is_an_mnist_style_digit(variant, mnist, tmp_path):
    rng = np.random.default_rng(3)
    for image in mnist.test.images[:20]:
        out = to_mnist(variant(image, rng, tmp_path))
        assert out.dtype == np.float32 and out.shape == (SIZE, SIZE)
        assert out.min() >= 0 and out.max() <= 1
        assert out.max() == pytest.approx(1, abs=0.05)  # the ink's core is full strength, as in MNIST
        rows, cols = np.nonzero(out)
        assert np.ptp(rows) + 1 <= BOX and np.ptp(cols) + 1 <= BOX
        assert max(np.ptp(rows), np.ptp(cols)) + 1 >= BOX - 1  # the longer side fills the box
        total = out.sum()
        centre = (out.sum(axis=1) @ np.arange(SIZE) / total, out.sum(axis=0) @ np.arange(SIZE) / total)
        # Integer shifts, as in MNIST (whose own centres of mass lie in 13.5-14.5).
        assert abs(centre[0] - CENTRE) <= 0.5 + 1e-6 and abs(centre[1] - CENTRE) <= 0.5 + 1e-6


def test_mnist_centre_convention_matches_the_data(mnist):
    images = mnist.test.images.astype(np.float64)
    total = images.sum(axis=(1, 2))
    rows = (images.sum(axis=2) @ np.arange(SIZE)) / total
    cols = (images.sum(axis=1) @ np.arange(SIZE)) / total
    assert abs(rows.mean() - CENTRE) < 0.05 and abs(cols.mean() - CENTRE) < 0.05


# --- nothing to read ---------------------------------------------------------------------------


def white_with_jpeg_noise() -> bytes:
    noise = np.random.default_rng(4).normal(250, 3, (280, 280))
    return jpeg_bytes(np.clip(noise, 0, 255).astype(np.uint8), quality=60)


BLANKS = {
    "white": np.full((280, 280), 255, np.uint8),
    "black": np.zeros((280, 280), np.uint8),
    "uniform grey": np.full((300, 400, 3), 128, np.uint8),
    "white with JPEG noise": white_with_jpeg_noise(),
    "grey with faint noise": np.clip(np.random.default_rng(5).normal(200, 3, (300, 300)), 0, 255).astype(np.uint8),
    "transparent canvas": np.zeros((280, 280, 4), np.uint8),
    "float zeros": np.zeros((28, 28), np.float32),
    "one pixel": np.zeros((1, 1), np.uint8),
}


@pytest.mark.parametrize("image", BLANKS.values(), ids=BLANKS.keys())
def test_blank_image_has_no_digit(image):
    with pytest.raises(NoDigitError, match="no digit found"):
        to_mnist(image)


# --- broken and hostile inputs -----------------------------------------------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) and whose pixel data is absent."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_errors_are_mnist_edge_errors():
    for error in (InvalidImageError, ImageTooLargeError, NoDigitError):
        assert issubclass(error, PreprocessError) and issubclass(error, MnistEdgeError)
        assert error.exit_code == 1


def test_not_an_image():
    with pytest.raises(InvalidImageError, match="not a readable image"):
        to_mnist(b"hello")
    with pytest.raises(InvalidImageError):
        to_mnist(b"")


# --- every image format the README lists -------------------------------------------------------

FORMATS = {  # Pillow format: how to save it
    "PNG": {}, "JPEG": {"quality": 90}, "GIF": {}, "BMP": {}, "WEBP": {"quality": 90}, "TIFF": {}, "PPM": {},
}


def test_the_allow_list_holds_only_formats_this_pillow_can_open():
    Image.init()
    assert set(preprocess.IMAGE_FORMATS) <= set(Image.OPEN)
    assert set(FORMATS) <= set(preprocess.IMAGE_FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_listed_format_reads_the_same_digit(fmt, mnist, knn, tmp_path):
    """The same ten test digits saved as real files of each format the README lists."""
    rng = np.random.default_rng(6)
    reference, decoded = [], []
    for i, digit in enumerate(mnist.test.images[:10]):
        page = Image.fromarray(to_uint8(1 - placed(digit, rng))).convert("RGB")
        path = tmp_path / f"{i}.{fmt.lower()}"
        page.save(path, format=fmt, **FORMATS[fmt])
        reference.append(to_mnist(np.asarray(page)))
        decoded.append(to_mnist(path))
    assert load_image(path).format == fmt
    lossy = fmt in ("JPEG", "WEBP")
    assert np.abs(np.stack(decoded) - np.stack(reference)).mean() < (0.02 if lossy else 1e-6)
    assert (knn.predict(np.stack(decoded)) == knn.predict(np.stack(reference))).all()


def test_animated_gif_and_multipage_tiff_use_the_first_frame(mnist, tmp_path):
    seven, one = (Image.fromarray(255 - mnist.test.images[i]).resize((140, 140)) for i in (0, 2))
    assert (mnist.test.labels[0], mnist.test.labels[2]) == (7, 1)
    expected = to_mnist(np.asarray(seven))
    for fmt in ("GIF", "TIFF"):
        path = tmp_path / f"frames.{fmt.lower()}"
        seven.save(path, format=fmt, save_all=True, append_images=[one])
        assert getattr(Image.open(path), "n_frames", 1) == 2
        np.testing.assert_allclose(to_mnist(path), expected, atol=1e-6)


def test_sixteen_bit_png_is_read_as_sixteen_bits(mnist, tmp_path):
    digit = mnist.test.images[0]
    path = tmp_path / "deep.png"
    Image.fromarray(digit.astype(np.uint16) * 257).save(path)  # 0-255 spread over 0-65535
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_allclose(to_mnist(path), to_mnist(digit), atol=1e-4)
    faint = tmp_path / "faint.png"  # 8-bit values stored in 16 bits: nearly black, no ink to read
    Image.fromarray(digit.astype(np.uint16)).save(faint)
    with pytest.raises(NoDigitError):
        to_mnist(faint)


def test_float_tiff_in_range_out_of_range_and_nan(mnist, tmp_path):
    digit = mnist.test.images[0].astype(np.float32)
    cases = {"unit": digit / 255, "bytes": digit, "too-bright": digit * 2, "nan": np.where(digit > 0, np.nan, 0)}
    paths = {}
    for name, values in cases.items():
        paths[name] = tmp_path / f"{name}.tif"
        Image.fromarray(values.astype(np.float32), mode="F").save(paths[name])
    np.testing.assert_allclose(to_mnist(paths["unit"]), to_mnist(mnist.test.images[0]), atol=1e-5)
    np.testing.assert_allclose(to_mnist(paths["bytes"]), to_mnist(mnist.test.images[0]), atol=1e-5)
    with pytest.raises(InvalidImageError, match=r"values 0\.\.510: expected \[0, 1\] \(or 0-255\)"):
        to_mnist(paths["too-bright"])
    with pytest.raises(InvalidImageError, match="NaN"):
        to_mnist(paths["nan"])


def test_a_long_thin_line_is_not_a_digit():
    line = np.full((1, 10000), 255, np.uint8)
    line[0, 3000:7000] = 0  # a dark dash on a 10000x1 strip
    with pytest.raises(NoDigitError, match="times wider than tall"):
        to_mnist(line)
    page = Image.new("L", (2000, 400), 255)
    ImageDraw.Draw(page).line([(200, 200), (1800, 200)], fill=0, width=12)  # a rule across a page
    with pytest.raises(NoDigitError, match="times wider than tall"):
        to_mnist(np.asarray(page))
    # Upright, the same stroke is a 1: digits may be far taller than wide.
    assert to_mnist(np.asarray(page.rotate(90, expand=True, fillcolor=255))).shape == (SIZE, SIZE)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InvalidImageError, match="not a regular file"):
        to_mnist(fifo)


def test_formats_outside_the_allow_list_are_refused():
    # Pillow can open EPS by running Ghostscript: never for untrusted input.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n"
    with pytest.raises(InvalidImageError, match="not a readable image"):
        to_mnist(eps)


def test_truncated_png(mnist):
    data = png_bytes(Image.fromarray(mnist.test.images[0]).resize((280, 280)))
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        to_mnist(data[: len(data) // 2])


def test_missing_file_and_folder_are_named(tmp_path):
    missing = tmp_path / "no-such-digit.png"
    with pytest.raises(InvalidImageError, match="no-such-digit.png: file not found"):
        to_mnist(missing)
    with pytest.raises(InvalidImageError, match="folder"):
        to_mnist(str(tmp_path))


def test_decompression_bomb_is_refused_before_decoding():
    # A real 8000x8000 PNG (64M pixels, over MAX_PIXELS) that compresses to a few kilobytes.
    bomb = png_bytes(Image.new("1", (8000, 8000)))
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLargeError, match="8000x8000"):
        to_mnist(bomb)


def test_header_over_pillows_own_limit_is_too_large():
    # Pillow itself refuses this size while opening (DecompressionBombError).
    with pytest.raises(ImageTooLargeError):
        to_mnist(png_header_only(100_000, 100_000))


def test_size_limits_apply_to_every_kind_of_input(tmp_path, mnist):
    image = Image.fromarray(mnist.test.images[0]).resize((100, 100))
    data = png_bytes(image)
    path = tmp_path / "digit.png"
    path.write_bytes(data)

    for source in (data, path, image, np.asarray(image)):
        with pytest.raises(ImageTooLargeError, match="pixel limit"):
            to_mnist(source, max_pixels=5_000)

    for source in (data, path, io.BytesIO(data)):
        with pytest.raises(ImageTooLargeError, match="byte limit"):
            to_mnist(source, max_bytes=len(data) - 1)
        to_mnist(io.BytesIO(data) if isinstance(source, io.BytesIO) else source, max_bytes=len(data))  # at the limit


BAD_ARRAYS = {
    "1-D": np.zeros(784, np.uint8),
    "5 channels": np.zeros((28, 28, 5), np.uint8),
    "4-D": np.zeros((1, 28, 28, 1), np.uint8),
    "empty": np.zeros((0, 28), np.uint8),
    "complex": np.zeros((28, 28), np.complex64),
    "object": np.full((28, 28), None, object),
    "strings": np.full((28, 28), "x"),
    "NaN": np.full((28, 28), np.nan, np.float32),
    "infinity": np.full((28, 28), np.inf, np.float64),
    "negative floats": np.full((28, 28), -0.5, np.float32),
    "int over 255": np.full((28, 28), 1000, np.int32),
}


@pytest.mark.parametrize("array", BAD_ARRAYS.values(), ids=BAD_ARRAYS.keys())
def test_bad_arrays(array):
    with pytest.raises(InvalidImageError):
        to_mnist(array)


@pytest.mark.parametrize("source", [None, 42, ["a", "list"]], ids=repr)
def test_not_an_image_type(source):
    with pytest.raises(InvalidImageError, match="expected a path, bytes"):
        to_mnist(source)


def test_runtime_preprocess_does_not_import_tensorflow():
    code = "import sys, mnist_edge.runtime.preprocess; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
