"""Reading whole numbers (runtime/number.py, `mnist-edge read`).

The recipe's parts are tested on constructed masks with known answers (components, lines, cut
paths, the dynamic programme), independent of any model's strength. Whole fields are built from
real MNIST test digits that the session's small MLP reads right on their own (a tiny model is
weak, so the test picks the digits it knows), laid out as forms show them; the answers are known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_edge import runtime
from mnist_edge.cli import main, read
from mnist_edge.runtime import number
from mnist_edge.runtime.errors import ImageTooLargeError, NoDigitError

SPEC = number.load_spec()
HEIGHT = 56  # digit height in the constructed fields, pixels


# --- parts of the recipe, on constructed masks ---------------------------------------------------


def test_components_join_diagonal_neighbours_and_keep_separate_ones_apart():
    mask = np.zeros((10, 20), bool)
    mask[1:4, 1:4] = True
    mask[4:7, 4:7] = True  # touches the first block only at a corner: one component (8-connected)
    mask[2:8, 12:15] = True
    labels, count = number.components(mask)
    assert count == 2
    assert labels[1, 1] == labels[6, 6] != labels[2, 12]
    assert (labels > 0).sum() == mask.sum()


def test_long_lines_go_and_crossing_strokes_stay():
    ink = np.zeros((60, 300), np.float32)
    ink[10:50, 40:44] = 1  # a stroke crossing the ruled line
    ink[10:50, 120:150:8] = 1  # short strokes of a digit
    ink[30:32, 5:295] = 0.9  # the ruled line
    ink[5, 5:295] = 0.2  # a faint printed line, broken every few pixels
    ink[5, 20:295:15] = 0
    mask = number.remove_lines(ink, ink >= SPEC["mask_threshold"], SPEC)
    assert not mask[30:32, 60:110].any() and not mask[30:32, 160:290].any()
    assert mask[30:32, 40:44].all(), "where a stroke crosses the line its pixels are kept"
    assert mask[10:50, 120].all()


def test_box_and_comb_dividers_are_removed_but_not_digit_strokes():
    ink = np.zeros((80, 260), np.float32)
    ink[5:7, 5:255] = 1
    ink[73:75, 5:255] = 1
    for x in (5, 85, 165, 253):  # box sides and comb dividers from the top line to the bottom one
        ink[5:75, x : x + 2] = 1
    ink[15:65, 40:43] = 1  # a 1 inside the first cell, not touching the lines
    mask = number.remove_lines(ink, ink >= 0.3, SPEC)
    labels, count = number.components(mask)
    assert count == 1 and mask[15:65, 40:43].all()


def _blurred(ink: np.ndarray, radius: float) -> np.ndarray:
    picture = Image.fromarray(np.ascontiguousarray(ink * 255).astype(np.uint8), "L")
    return np.asarray(picture.filter(ImageFilter.GaussianBlur(radius))).astype(np.float32) / 255


def test_faint_blurred_box_sides_that_overshoot_the_lines_are_removed():
    # A printed box whose sides run a few pixels past its top and bottom lines (the pen or the
    # print overshoots; blur and JPEG ringing spread a line's ends), faint and blurred: the sides
    # and the comb's dividers must go all the same, with the 1 inside kept.
    ink = np.zeros((84, 260), np.float32)
    ink[8:10, 5:255] = ink[72:74, 5:255] = 0.55
    for x in (5, 85, 165, 252):  # box sides and comb dividers, from 4 px above the top line to 4 px below the bottom one
        ink[4:78, x : x + 2] = 0.55
    ink[18:64, 40:43] = 1  # a 1 inside the first cell
    ink = _blurred(ink, 1.0)
    mask = number.remove_lines(ink, ink >= SPEC["mask_threshold"], SPEC)
    labels, count = number.components(mask)
    assert count == 1 and mask[20:62, 41].all(), [(p.x0, p.y0, p.x1, p.y1) for p in number._component_boxes(labels, count)]


def test_cut_path_goes_through_the_bridge_between_touching_blobs():
    own = np.zeros((40, 60), bool)
    own[5:35, 5:27] = True
    own[5:35, 31:55] = True
    own[20:22, 27:31] = True  # the touching point: 2 px of ink
    paths = number.cut_paths(own, 40, SPEC)
    crossing = [(path, ink) for path, ink in paths if 26 <= path.mean() <= 32]
    assert crossing, [p.mean() for p, _ in paths]
    assert min(ink for _, ink in crossing) <= 2


def test_best_segmentation_is_global_not_greedy():
    # Greedy would take atom 0 alone (the best first step) and then be forced into a bad rest;
    # the whole row is best read as (0, 2) + (2, 3).
    scored = {(0, 1): -0.01, (1, 3): -5.0, (1, 2): -4.0, (2, 3): -0.1, (0, 2): -0.2}
    assert number.best_segmentation(3, scored, [9.0, 9.0, 9.0]) == [(0, 2), (2, 3)]
    # a cut through ink costs: the same row with an expensive cut at atom 2 is read whole
    scored[(0, 3)] = -0.5
    assert number.best_segmentation(3, scored, [9.0] * 3, [0.0, 0.0, 3.0]) == [(0, 3)]


def test_a_scrap_is_skipped_rather_than_read_as_a_digit():
    scored = {(0, 1): -0.1, (1, 2): -3.0, (0, 2): -4.0}
    assert number.best_segmentation(2, scored, [9.0, 0.6]) == [(0, 1)]


# --- whole fields from real MNIST digits ---------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(mlp_export):
    return runtime.load(mlp_export, threads=1)


@pytest.fixture(scope="module")
def known(predictor, mnist):
    """For each class, MNIST test digits the model reads right and surely on their own."""
    images, labels = mnist.test.images[:2000], mnist.test.labels[:2000]
    probabilities = predictor.predict_array(images.astype(np.float32) / 255)
    sure = (probabilities.argmax(axis=1) == labels) & (probabilities.max(axis=1) > 0.98)
    return {d: [images[i] for i in np.flatnonzero(sure & (labels == d))[:20]] for d in range(10)}


def _ink(digit: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    ys, xs = np.nonzero(digit > 0)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return np.clip(np.asarray(Image.fromarray(crop, "F").resize((width, height), Image.Resampling.LANCZOS)), 0, 1)


def _field(digits: list[np.ndarray], gaps: list[int], *, tops=None, size=(140, 0)) -> np.ndarray:
    """Ink (0 paper, 1 ink) of digits placed left to right with the given gaps (negative: the
    boxes overlap), and their boxes."""
    width = sum(d.shape[1] for d in digits) + sum(max(g, 0) for g in gaps) + 80
    canvas = np.zeros((size[0], max(width, size[1])), np.float32)
    x, boxes = 40, []
    for n, digit in enumerate(digits):
        top = (tops or [40] * len(digits))[n]
        area = canvas[top : top + digit.shape[0], x : x + digit.shape[1]]
        np.maximum(area, digit, out=area)
        boxes.append((x, top, x + digit.shape[1], top + digit.shape[0]))
        x += digit.shape[1] + (gaps[n] if n < len(gaps) else 0)
    return canvas, boxes


def _photo(ink: np.ndarray) -> np.ndarray:
    """Dark ink on light paper, 8-bit, as a scan."""
    return np.clip(np.round((0.93 - 0.8 * ink) * 255), 0, 255).astype(np.uint8)


def test_uneven_gaps_sizes_and_baselines(predictor, known):
    digits = [_ink(known[2][0], 56), _ink(known[0][0], 48), _ink(known[7][0], 60), _ink(known[9][0], 52)]
    canvas, boxes = _field(digits, [40, 6, 22], tops=[40, 50, 32, 44])
    reading = predictor.read(_photo(canvas))
    assert reading.text == "2079" and not reading.rejected
    for digit, (x0, y0, x1, y1) in zip(reading.digits, boxes):
        assert abs(digit.box[0] - x0) <= 2 and abs(digit.box[2] - x1) <= 2
        assert abs(digit.box[1] - y0) <= 2 and abs(digit.box[3] - y1) <= 2
        assert digit.input.shape == (28, 28) and len(digit.top) == 3 and digit.top[0][0] == digit.label


def test_boxes_are_in_input_pixels_when_the_image_is_reduced(predictor, known):
    canvas, boxes = _field([_ink(known[3][0], 300), _ink(known[8][0], 300)], [80], size=(600, 2600))
    reading = predictor.read(_photo(canvas))  # 2600 px wide: decoded at half size, then reduced again
    assert reading.text == "38"
    for digit, (x0, y0, x1, y1) in zip(reading.digits, boxes):
        rows, cols = np.nonzero(canvas[y0:y1, x0:x1] >= SPEC["mask_threshold"])  # the ink the mask holds
        expected = (x0 + cols.min(), y0 + rows.min(), x0 + cols.max() + 1, y0 + rows.max() + 1)
        # within one working pixel: 300 px digits are read about 56 px tall, 6 input px per pixel
        assert all(abs(a - b) <= 6 for a, b in zip(digit.box, expected)), (digit.box, expected)


def _touching_pair(known, left: int, right: int):
    """Two digits moved together until their ink touches."""
    a, b = _ink(known[left][0]), _ink(known[right][0])
    for overlap in range(0, b.shape[1] // 2):
        canvas, _ = _field([a, b], [-overlap])
        labels, count = number.components(canvas >= SPEC["mask_threshold"])
        if count == 1:
            return canvas
    raise AssertionError("the digits never touched")


def test_touching_pair_is_cut_apart(predictor, known):
    assert predictor.read(_photo(_touching_pair(known, 4, 7))).text == "47"


def _broken(digits: list[np.ndarray], rows: slice, columns: slice) -> np.ndarray:
    """The first of these digits that falls into pieces when the band (rows, columns, as shares
    of its height and width) is erased: a pen lifted, a faint stroke."""
    for digit in digits:
        ink = _ink(digit)
        height, width = ink.shape
        ink[round(rows.start * height) : round(rows.stop * height), round(columns.start * width) : round(columns.stop * width)] = 0
        if number.components(ink >= SPEC["mask_threshold"])[1] >= 2:
            return ink
    raise AssertionError("no digit broke into pieces")


def test_broken_five_and_two_stroke_four_are_read_as_one_digit_each(predictor, known):
    five = _broken(known[5], slice(0.2, 0.3), slice(0.0, 0.6))  # the flag apart from the body
    four = _broken(known[4], slice(0.0, 1.0), slice(0.55, 0.62))  # the upright apart from the rest
    canvas, _ = _field([five, four, _ink(known[1][0])], [30, 30])
    assert number.components(canvas >= SPEC["mask_threshold"])[1] >= 5
    assert predictor.read(_photo(canvas)).text == "541"


def _comb(digits: list[np.ndarray], cell: int) -> np.ndarray:
    """Digits centred one per cell of a comb (two lines and a divider between cells)."""
    canvas = np.zeros((HEIGHT + 60, cell * len(digits) + 60), np.float32)
    top, bottom = 18, HEIGHT + 42
    for n, digit in enumerate(digits):
        left = 30 + n * cell + (cell - digit.shape[1]) // 2
        canvas[30 : 30 + digit.shape[0], left : left + digit.shape[1]] = digit
    canvas[top : top + 2, 30 : 32 + cell * len(digits)] = canvas[bottom : bottom + 2, 30 : 32 + cell * len(digits)] = 1
    for n in range(len(digits) + 1):
        canvas[top : bottom + 2, 30 + n * cell : 32 + n * cell] = 1
    return canvas


def _stretched(digit: np.ndarray, factor: float) -> np.ndarray:
    """A digit drawn `factor` times wider than MNIST has it (an oval 0, a sprawling 6)."""
    ys, xs = np.nonzero(digit > 0)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255
    width = round(crop.shape[1] * HEIGHT / crop.shape[0] * factor)
    return np.clip(np.asarray(Image.fromarray(crop, "F").resize((width, HEIGHT), Image.Resampling.LANCZOS)), 0, 1)


def test_a_broken_zero_or_a_wide_six_alone_in_a_comb_cell_is_read_as_one_digit(predictor, known):
    # A comb holds one digit per cell: a 0 in two marks (the pen lifted at its top and bottom) or
    # a 6 drawn wide, alone in its cell, is one digit, not two (without the cell term: 3677, 36577).
    zero = _broken(known[0][3:], slice(0.0, 1.0), slice(0.42, 0.58))
    six = _stretched(known[6][2], 1.6)
    for middle, text in ((zero, "307"), (six, "367")):
        canvas = _comb([_ink(known[3][3]), middle, _ink(known[7][3])], max(round(1.5 * HEIGHT), middle.shape[1] + 12))
        lines, vertical = number.line_pixels(canvas, canvas >= SPEC["mask_threshold"], SPEC)
        assert len(number.comb_dividers(vertical)) == 4  # two sides and two dividers: a comb
        assert predictor.read(_photo(canvas)).text == text


def test_fitted_terms_sum_to_the_readers_score(predictor, known, mnist):
    """bench/fit_read.py fits the score's weights on its own decomposition of the score into terms:
    decoded with the spec's weights, that decomposition must read every field as the reader does."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import fit_read
    from mnist_edge.fields import make_fields

    weights = fit_read.spec_weights(SPEC)
    touching = _photo(_touching_pair(known, 4, 7))
    images = [touching, *(f.image for f in make_fields(mnist.test.images, mnist.test.labels, 12, seed=3))]
    for image in images:
        terms = fit_read.field_terms(predictor, image, SPEC)
        assert fit_read.decode(terms, weights)[0] == predictor.read(image).text


def test_ruled_line_box_comb_and_specks(predictor, known):
    digits = [_ink(known[d][1]) for d in (6, 3, 8)]
    canvas, boxes = _field(digits, [30, 30])
    ruled = canvas.copy()
    ruled[40 + HEIGHT : 43 + HEIGHT, 10:-10] = 1
    assert predictor.read(_photo(ruled)).text == "638"

    boxed = canvas.copy()
    top, bottom, left, right = 28, 40 + HEIGHT + 12, 25, boxes[-1][2] + 15
    boxed[top : top + 2, left:right] = boxed[bottom : bottom + 2, left:right] = 1
    boxed[top:bottom, left : left + 2] = boxed[top:bottom, right - 2 : right] = 1
    assert predictor.read(_photo(boxed)).text == "638"

    for x0, _, x1, _ in boxes[1:]:  # comb dividers between the cells
        boxed[top:bottom, x0 - 15 : x0 - 13] = 1
    assert predictor.read(_photo(boxed)).text == "638"

    specks = canvas.copy()
    rng = np.random.default_rng(0)
    for y, x in zip(rng.integers(5, 135, 12), rng.integers(5, canvas.shape[1] - 5, 12)):
        specks[y : y + 2, x : x + 2] = 1
    assert predictor.read(_photo(specks)).text == "638"


def test_blank_field_lines_only_and_huge_image_are_errors(predictor):
    with pytest.raises(NoDigitError, match="blank"):
        predictor.read(np.full((100, 400), 235, np.uint8))
    lines_only = np.full((100, 400), 235, np.uint8)
    lines_only[60:62, 10:390] = 20
    with pytest.raises(NoDigitError):
        predictor.read(lines_only)
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        predictor.read(lines_only, max_pixels=10_000)


def test_too_many_digits_is_an_error(predictor, known):
    digits = [_ink(known[d % 10][0], 30) for d in range(40)]
    canvas, _ = _field(digits, [12] * 39, size=(100, 0))
    with pytest.raises(number.TooManyDigitsError, match="at most 12"):
        predictor.read(_photo(canvas))


def test_letters_unlike_digits_are_rejected(predictor):
    # A digit model has no "not a digit" class: letters shaped like digits (T, o, l, S) are read
    # as 7, 0, 1, 5 (docs/reading.md, known limits). Letters unlike digits get low confidence.
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 60)
    for word in ("ABC", "xyz"):
        image = Image.new("L", (320, 110), 240)
        ImageDraw.Draw(image).text((20, 15), word, fill=20, font=font)
        reading = predictor.read(image)
        assert reading.rejected, (word, reading.text, reading.confidence)
        assert reading.confidence < SPEC["min_confidence"]


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory, known):
    root = tmp_path_factory.mktemp("numbers")
    canvas, _ = _field([_ink(known[d][2]) for d in (3, 1, 4)], [30, 30])
    Image.fromarray(_photo(canvas)).save(root / "314.png")
    Image.fromarray(_photo(canvas)).save(root / "314.jpg", quality=90)
    (root / "broken.png").write_bytes(b"not an image")
    Image.new("L", (300, 100), 230).save(root / "blank.png")
    return root


def test_cli_json_one_object_per_path_errors_in_place_exit_1(mlp_export, images, capsys):
    code = main(["read", "--model", str(mlp_export), "--json", str(images / "314.png"), str(images), str(images / "missing.png")])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and "3 of 6 images could not be read" in err
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["314.png", "314.jpg", "314.png", "blank.png", "broken.png", "missing.png"]
    good = rows[0]
    assert set(good) == {"path", "text", "confidence", "rejected", "reader", "digits"} and good["text"] == "314"
    assert good["reader"] == "digits"  # this export has no number reader
    assert set(good["digits"][0]) == {"digit", "label", "confidence", "top", "box"} and len(good["digits"][0]["box"]) == 4
    errors = {r["path"].rsplit("/", 1)[1]: r["error"] for r in rows if "error" in r}
    assert set(errors) == {"blank.png", "broken.png", "missing.png"}
    assert all("\n" not in e for e in errors.values()) and "file not found" in errors["missing.png"]


def test_cli_table_and_min_confidence(mlp_export, images, capsys):
    assert main(["read", "--model", str(mlp_export), str(images / "314.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("path") and " 314 " in out[1] and "rejected" not in out[1]
    assert main(["read", "--model", str(mlp_export), "--min-confidence", "1", str(images / "314.png")]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("rejected")
    with pytest.raises(SystemExit):
        main(["read", "--model", str(mlp_export), "--min-confidence", "2", str(images / "314.png")])


def test_cli_workers_read_in_order(mlp_export, images):
    paths = [images / "314.png", images / "broken.png", images / "314.jpg"]
    settings = (mlp_export, "onnxruntime", "fp32", 0.5, "auto")
    results = list(read.read_in_workers(settings, paths, jobs=2))
    assert [p for p, _ in results] == paths
    assert results[0][1].text == "314" and isinstance(results[1][1], str) and results[2][1].text == "314"
