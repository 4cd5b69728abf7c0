"""The faster preprocessing against the previous implementation (bench/preprocess_baseline.py,
a frozen copy kept for this test and the bench).

Images shorter than 2 x WORK_SIDE (canvas drawings, scans, small photos, arrays) must give the
same output to float rounding. Larger ones are now reduced by an integer factor before any float
work: their output must be the previous implementation's on the image reduced that way, and they
must still be read as well as the re-drawn digits of tests/test_preprocess.py.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw
from test_preprocess import (  # noqa: F401  (knn, plain_accuracy and redrawn are fixtures)
    BLANKS,
    MAX_ACCURACY_DROP,
    VARIANTS,
    knn,
    placed,
    plain_accuracy,
    redrawn,
    skeleton,
    to_uint8,
)

from mnist_edge.bench import BASELINE_PREPROCESS, drawing_png, load_baseline_preprocess, photo_jpeg, scan_png
from mnist_edge.runtime import preprocess
from mnist_edge.runtime.errors import PreprocessError

SAME = 1e-6  # float rounding (measured: at most 1.2e-7, from the ink-peak percentile)
DIGITS = 12  # test digits drawn each way for the equality check
LARGE_DIGITS = 30  # large photos and pen drawings for the recognition check


@pytest.fixture(scope="module")
def baseline():
    module = load_baseline_preprocess()
    assert module is not None, f"{BASELINE_PREPROCESS} is missing"
    return module


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _inputs(digit: np.ndarray, seed: int) -> dict:
    """One digit given in every way a user gives one, all under 2 x WORK_SIDE pixels."""
    rng = np.random.default_rng(seed)
    inputs = {
        "28x28 array": digit,
        "float array": digit.astype(np.float32) / 255,
        "400x400 canvas PNG": drawing_png(digit, seed=seed),
        "dark-on-white drawing PNG": _png(Image.fromarray(to_uint8(1 - placed(digit, rng, canvas=(400, 400))))),
        "16-bit PNG": _png(Image.fromarray((placed(digit, rng) * 65535).astype(np.uint16))),
        "1000x1000 scan PNG": scan_png(digit, seed=seed),
        "1200x900 JPEG photo": photo_jpeg(digit, size=(900, 1200), seed=seed),
    }
    for variant in VARIANTS:  # the re-drawn digits of tests/test_preprocess.py, thin pen included
        if variant.__name__ != "jpeg_from_file":
            inputs[variant.__name__] = variant(digit, rng, None)
    return inputs


def test_same_output_as_before_below_twice_the_work_side(baseline, mnist):
    worst: dict[str, float] = {}
    for i, digit in enumerate(mnist.test.images[:DIGITS]):
        for kind, source in _inputs(digit, seed=i).items():
            got, expected = preprocess.to_mnist(source), baseline.to_mnist(source)
            worst[kind] = max(worst.get(kind, 0.0), float(np.abs(got - expected).max()))
    print("\nlargest |current - previous| by input kind: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert max(worst.values()) <= SAME, worst


def _unevenly_lit_page(noise: float) -> np.ndarray:
    """A blank page under a lamp on the left: the paper level is a surface, not one number."""
    light = np.linspace(240, 150, 800)[None, :] * np.linspace(1, 0.85, 600)[:, None]
    return np.clip(light + np.random.default_rng(5).normal(0, noise, light.shape), 0, 255).astype(np.uint8)


SAME_BLANKS = {**BLANKS, "unevenly lit page": _unevenly_lit_page(0), "unevenly lit noisy page": _unevenly_lit_page(3)}


@pytest.mark.parametrize("image", SAME_BLANKS.values(), ids=SAME_BLANKS.keys())
def test_same_error_as_before_for_blank_images(baseline, image):
    with pytest.raises(PreprocessError) as before:
        baseline.to_mnist(image)
    with pytest.raises(type(before.value), match=f"^{re.escape(str(before.value))}$"):
        preprocess.to_mnist(image)


def _jpeg_reduced(data: bytes, factor: int) -> Image.Image:
    """What the JPEG decoder gives at reduced scale: grey, 1/2, 1/4 or 1/8 of the size."""
    image = Image.open(io.BytesIO(data))
    image.draft("L", (image.width // factor, image.height // factor))
    image.load()
    return image


def _large_inputs(mnist) -> list[tuple[str, object, object, tuple[int, int]]]:
    """(kind, the large image, the same image reduced as the current implementation reduces it,
    the reduced size)."""
    seven, two = mnist.test.images[0], mnist.test.images[1]
    cases = []
    for name, size, factor, scale in (
        ("12 MP JPEG photo", (3000, 4000), 4, 4),  # decoded at 1/4
        ("2400x1800 JPEG photo", (1800, 2400), 2, 2),  # decoded at 1/2
        ("3000x2250 JPEG photo", (2250, 3000), 3, 2),  # 1/2 is the largest DCT scale under 1/3
    ):
        data = photo_jpeg(seven, size=size, seed=factor)
        reduced = _jpeg_reduced(data, factor)
        assert reduced.size == (-(-size[1] // scale), -(-size[0] // scale))
        cases.append((name, data, reduced, reduced.size))
    scan = (240 * (1 - 0.85 * placed(two, np.random.default_rng(1), canvas=(3000, 5000)))).astype(np.uint8)
    reduced = Image.fromarray(scan).reduce(5)
    cases.append(("5000x3000 scan PNG", _png(Image.fromarray(scan)), np.asarray(reduced), reduced.size))
    cases.append(("5000x3000 scan array", scan, np.asarray(reduced), reduced.size))
    canvas = np.zeros((2400, 2400, 4), np.uint8)
    canvas[..., 3] = to_uint8(placed(two, np.random.default_rng(2), canvas=(2400, 2400)))
    grey, alpha = (Image.fromarray(canvas, "RGBA").convert("L").reduce(2), Image.fromarray(canvas[..., 3]).reduce(2))
    cases.append(("2400x2400 canvas PNG", _png(Image.fromarray(canvas, "RGBA")), np.dstack([grey, alpha]), grey.size))
    return cases


def test_large_images_give_the_previous_output_of_the_image_reduced_first(baseline, mnist):
    for kind, source, reduced, size in _large_inputs(mnist):
        if "JPEG" in kind:  # reduced by the decoder itself
            assert preprocess.load_image(source, work_side=preprocess.WORK_SIDE).size == size
        got, expected = preprocess.to_mnist(source), baseline.to_mnist(reduced)
        assert np.abs(got - expected).max() <= SAME, kind


def test_large_photo_exif_orientation_still_applies(mnist):
    data = photo_jpeg(mnist.test.images[0], size=(1800, 2400), seed=3)
    upright = Image.open(io.BytesIO(data))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera stored the picture turned; viewers turn it back
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    assert preprocess.load_image(buffer.getvalue(), work_side=preprocess.WORK_SIDE).size == (1200, 900)
    assert np.abs(preprocess.to_mnist(buffer.getvalue()) - preprocess.to_mnist(data)).mean() < 0.02


def _pen_page(digit: np.ndarray, rng: np.random.Generator, size=(1800, 2400), pen: int = 3) -> bytes:
    """The digit's centre line drawn with a 3 px pen, 900-1600 px tall, on a grey page photographed
    as a JPEG: a stroke 0.04-0.07 px wide once scaled to the 20x20 box."""
    line = skeleton(np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)) > 128)
    side = int(rng.integers(900, 1600))
    scale, (top, left) = side / 112, (int(rng.integers(0, size[0] - side)), int(rng.integers(0, size[1] - side)))
    page = Image.new("L", size[::-1], 230)
    draw = ImageDraw.Draw(page)
    points = set(zip(*(axis.tolist() for axis in np.nonzero(line))))
    for y, x in points:
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            if (y + dy, x + dx) in points:
                draw.line([(left + x * scale, top + y * scale), (left + (x + dx) * scale, top + (y + dy) * scale)], fill=40, width=pen)
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["photo", "thin pen"])
def test_large_images_are_read_as_well_as_small_ones(kind, mnist, knn, plain_accuracy):
    """Reduced before the ink is found, a large photo or a thin pen line on a large page is
    still recognised about as well as the plain test digits (the same bar as the re-drawn ones)."""
    rng = np.random.default_rng(4)
    images, labels = mnist.test.images[:LARGE_DIGITS], mnist.test.labels[:LARGE_DIGITS]
    if kind == "photo":
        inputs = [photo_jpeg(digit, size=(1500, 2000), seed=i) for i, digit in enumerate(images)]
    else:
        inputs = [_pen_page(digit, rng) for digit in images]
    out = np.stack([preprocess.to_mnist(x) for x in inputs])
    accuracy = float(np.mean(knn.predict(out) == labels))
    print(f"\nlarge {kind}: kNN accuracy {accuracy:.3f} (plain test digits {plain_accuracy:.3f})")
    assert accuracy >= plain_accuracy - MAX_ACCURACY_DROP
