"""Read a whole handwritten number (one row of 1 to 12 digits) with a single-digit model.

The recipe, step by step, is docs/reading.md; every constant is in number_spec.json, which the
JavaScript port reads too. In short:

    decode and find the ink as `to_mnist` does (paper, lighting, polarity) -> reduce to a working
    height -> threshold to a mask -> remove ruled lines, box borders and comb dividers (long thin
    runs) -> connected components -> drop specks -> atoms: components, and wide components cut at
    the low points of their column profile -> candidate digits: runs of neighbouring atoms ->
    every candidate to 28x28 (the `to_mnist` geometry), classified in one batch -> the best
    partition of the whole row by dynamic programming over the candidates' scores (log-probability
    plus shape terms, their weights fitted on fields of MNIST training digits: bench/fit_read.py)

Depends on numpy and pillow only (and the predictor it is given).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_edge.runtime import preprocess
from mnist_edge.runtime.errors import NoDigitError, PreprocessError

SPEC_FILE = Path(__file__).with_name("number_spec.json")


class TooManyDigitsError(PreprocessError):
    """The field holds more digits than a number may have."""


@functools.lru_cache(maxsize=1)
def load_spec() -> dict:
    """The recipe's constants (number_spec.json)."""
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadDigit:
    digit: int  # class index
    label: str  # class name
    confidence: float
    top: tuple[tuple[str, float], ...]  # the 3 most probable classes, best first
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in input pixels (x1, y1 exclusive)
    input: np.ndarray = field(repr=False, compare=False)  # what the model saw: float32 [28, 28]

    def as_dict(self) -> dict:
        return {
            "digit": self.digit,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "top": [[name, round(p, 6)] for name, p in self.top],
            "box": list(self.box),
        }


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float  # the product of the digits' confidences: the chance the whole text is right
    rejected: bool  # confidence below min_confidence: a person should check it
    digits: tuple[ReadDigit, ...]
    reader: str = "digits"  # which reader made it: "digits" (digit by digit) or "sequence" (the export's reader)

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 6),
            "rejected": self.rejected,
            "reader": self.reader,
            "digits": [d.as_dict() for d in self.digits],
        }


# --- the field: ink, working scale, mask -----------------------------------------------------


@dataclass
class Field:
    ink: np.ndarray  # float32 [h, w], light ink on 0, core ink at 1
    mask: np.ndarray  # bool [h, w]: ink above the mask threshold, lines removed
    scale: float  # input pixels per working pixel
    origin: tuple[float, float]  # (top, left) of the working area, in input pixels


def field_ink(image, spec: dict, max_pixels: int | None = None) -> Field:
    """The field's ink at the working scale, with its mask (lines not yet removed)."""
    grey, alpha, scale = preprocess.grey_alpha_scale(image, max_pixels, preprocess.WORK_SIDE)
    ink, (top, left) = preprocess.ink_window(grey, alpha)
    # Rows and columns holding only stray specks (runs under SPECK_MASS of the ink) are left out.
    rows_top, rows_bottom = preprocess._ink_span(ink.sum(axis=1))
    cols_left, cols_right = preprocess._ink_span(ink.sum(axis=0))
    ink = ink[rows_top:rows_bottom, cols_left:cols_right]
    top, left = top + rows_top, left + cols_left
    factor = max(1, round((rows_bottom - rows_top) / spec["work_height"]))
    if factor > 1:
        ink = np.asarray(Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32), "F").reduce(factor))
    positive = ink[ink > 0]
    if positive.size == 0:
        raise NoDigitError("no digit found: the image is blank")
    ink = np.minimum(ink * np.float32(1 / preprocess._percentile(positive, preprocess.INK_PEAK_PERCENTILE)), 1)
    return Field(ink, ink >= spec["mask_threshold"], scale * factor, (top * scale, left * scale))


# --- runs and connected components -----------------------------------------------------------


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The horizontal runs of True in `mask`, row-major: (row, start, stop) arrays, stop exclusive."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, stops = np.nonzero(steps == -1)
    return rows, starts, stops


def long_runs(mask: np.ndarray, min_length: float) -> np.ndarray:
    """The pixels of `mask` in horizontal runs at least `min_length` long."""
    rows, starts, stops = runs(mask)
    keep = (stops - starts) >= min_length
    out = np.zeros(mask.shape, bool)
    for row, start, stop in zip(rows[keep], starts[keep], stops[keep]):
        out[row, start:stop] = True
    return out


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components: a label image (0 background, 1..n) and n. Runs are joined when
    they overlap or touch diagonally in neighbouring rows; labels spread along those joins to
    the smallest run index of each component."""
    rows, starts, stops = runs(mask)
    count = len(rows)
    if count == 0:
        return np.zeros(mask.shape, np.int32), 0
    # The runs of the next row that touch run i are those with start <= stop_i and stop >= start_i.
    span = mask.shape[1] + 2
    first = np.searchsorted(rows * span + stops, (rows + 1) * span + starts, "left")
    last = np.searchsorted(rows * span + starts, (rows + 1) * span + stops, "right")
    links = np.maximum(last - first, 0)
    upper = np.repeat(np.arange(count), links)
    lower = np.arange(links.sum()) - np.repeat(np.cumsum(links) - links, links) + np.repeat(first, links)
    label = np.arange(count)
    while True:
        joined = np.minimum(label[upper], label[lower])
        before = label.copy()
        np.minimum.at(label, upper, joined)
        np.minimum.at(label, lower, joined)
        label = label[label]
        if np.array_equal(label, before):
            break
    _, run_labels = np.unique(label, return_inverse=True)
    labels = np.zeros(mask.shape, np.int32)
    for row, start, stop, value in zip(rows, starts, stops, run_labels):
        labels[row, start:stop] = value + 1
    return labels, int(run_labels.max()) + 1


# --- lines and specks ------------------------------------------------------------------------


def _crossings(line: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """Line pixels a stroke crosses: stroke ink directly above and below the line's thickness."""
    if not line.any():  # no line (most fields have no divider): nothing to walk down
        return np.zeros_like(line)
    height = line.shape[0]
    above = np.zeros_like(line)
    below = np.zeros_like(line)
    for row in range(1, height):
        above[row] = line[row] & (strokes[row - 1] | above[row - 1])
    for row in range(height - 2, -1, -1):
        below[row] = line[row] & (strokes[row + 1] | below[row + 1])
    return above & below


def remove_lines(ink: np.ndarray, mask: np.ndarray, spec: dict) -> np.ndarray:
    """The mask without ruled lines, box borders and comb dividers; strokes crossing a line keep
    the pixels where they cross it. Lines are found on fainter ink than the mask's, with gaps of
    up to line.bridge pixels closed, as a faint or blurred printed line breaks up."""
    return mask & ~line_pixels(ink, mask, spec)[0]


def line_pixels(ink: np.ndarray, mask: np.ndarray, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """The pixels `remove_lines` takes out of the mask, and the dividers and box sides among them."""
    rules = spec["line"]
    height, width = mask.shape
    faint = ink >= rules["threshold"]
    across, down = _bridged(faint, rules["bridge"]), _bridged(faint.T, rules["bridge"]).T
    wide = long_runs(across, rules["min_field_fraction"] * width)
    tall = long_runs(down.T, rules["vertical_min_field_fraction"] * height).T
    rows = np.flatnonzero((mask & ~wide & ~tall).any(axis=1))
    digit_height = rows[-1] - rows[0] + 1 if rows.size else height
    lines = long_runs(across, max(rules["min_field_fraction"] * width, rules["min_heights"] * digit_height))
    horizontal = lines & ~_crossings(lines, mask & ~lines)
    # A divider is told by the lines it joins, crossings included: where a divider meets a line,
    # the line's pixels are "crossed" by the divider itself.
    vertical = _dividers(down & ~horizontal, lines, rules)
    vertical &= ~_crossings(vertical.T, (mask & ~vertical & ~horizontal).T).T
    # A blurred line's soft edge goes with it: `line.edge` rows next to a horizontal line and
    # columns next to a divider (not beside the pixels where a stroke crosses, which are kept).
    edge = _spread(horizontal, rules["edge"]) | _spread(vertical.T, rules["edge"]).T
    return horizontal | vertical | edge, vertical


def comb_dividers(vertical: np.ndarray) -> np.ndarray:
    """The x of each divider of a comb (the centre of each run of divider columns), or none when
    the form is not a comb: a comb has at least three (two sides and one divider)."""
    columns = np.flatnonzero(vertical.any(axis=0))
    if columns.size == 0:
        return np.zeros(0)
    groups = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    return np.array([group.mean() for group in groups]) if len(groups) >= 3 else np.zeros(0)


def shared_cells(parts: list[Piece], start: int, stop: int, dividers: np.ndarray) -> int:
    """How many of the atoms just before and just after the candidate parts[start:stop] have their
    centre in the same comb cell as the candidate's centre: a comb holds one digit per cell, so
    each is a digit the segmentation would put beside it in its cell."""
    if dividers.size == 0:
        return 0
    x0, _, x1, _ = bounds(parts[start:stop])
    cell = np.searchsorted(dividers, (x0 + x1) / 2)
    return sum(
        1 for k in (start - 1, stop) if 0 <= k < len(parts) and np.searchsorted(dividers, parts[k].centre) == cell
    )


def _spread(mask: np.ndarray, depth: int) -> np.ndarray:
    """`mask` grown `depth` pixels up and down."""
    out = mask.copy()
    for step in range(1, depth + 1):
        out[step:] |= mask[:-step]
        out[:-step] |= mask[step:]
    return out


def _bridged(mask: np.ndarray, gap: int) -> np.ndarray:
    """`mask` with horizontal gaps of up to `gap` pixels between ink filled."""
    out = mask.copy()
    for size in range(1, gap + 1):
        for offset in range(size):  # the gap's pixel at `offset` from its left end
            out[:, offset + 1 : mask.shape[1] - size + offset] |= mask[:, : -size - 1] & mask[:, size + 1 :]
    return out


def _dividers(mask: np.ndarray, horizontal: np.ndarray, rules: dict) -> np.ndarray:
    """Vertical runs joining a removed horizontal line above to one below (box sides, comb
    dividers): at least the rule's share of the field's height long, with a line pixel within
    divider_reach pixels of both ends."""
    height = mask.shape[0]
    if not horizontal.any():
        return np.zeros_like(mask)
    cols, starts, stops = runs((mask | horizontal).T)
    out = np.zeros_like(mask)
    for col, start, stop in zip(cols, starts, stops):
        if stop - start < rules["vertical_min_field_fraction"] * height:
            continue
        reach = rules["divider_reach"]
        if horizontal[start : start + reach, col].any() and horizontal[max(start, stop - reach) : stop, col].any():
            out[start:stop, col] = True
    return out & mask


@dataclass(frozen=True, eq=False)
class Piece:
    """A component, or the part of one between two cut paths: the atoms a digit is made of."""

    label: int
    x0: int
    y0: int
    x1: int
    y1: int
    area: int
    pixels: np.ndarray = field(repr=False)  # bool [y1 - y0, x1 - x0]: which pixels of the box are its own
    cut_ink: int = 0  # for a piece cut from the one before it: the ink pixels the cut path crossed
    whole: int = 0  # for a piece of a cut component: that component's width

    @property
    def centre(self) -> float:
        return (self.x0 + self.x1) / 2


def _piece(label: int, own: np.ndarray, top: int, left: int, cut_ink: int = 0) -> Piece | None:
    """The piece holding the True pixels of `own` (a window at top, left), or None if there are none."""
    box = preprocess._bounding_box(own)
    if box is None:
        return None
    pixels = own[box]
    rows, cols = box
    return Piece(label, left + cols.start, top + rows.start, left + cols.stop, top + rows.stop, int(pixels.sum()), pixels, cut_ink)


def _component_boxes(labels: np.ndarray, count: int) -> list[Piece]:
    """Each component as a Piece (its box and its own pixels in it)."""
    ys, xs = np.nonzero(labels)
    values = labels[ys, xs] - 1
    top, left = np.full(count, labels.shape[0]), np.full(count, labels.shape[1])
    bottom, right = np.zeros(count, np.int64), np.zeros(count, np.int64)
    np.minimum.at(top, values, ys)
    np.minimum.at(left, values, xs)
    np.maximum.at(bottom, values, ys + 1)
    np.maximum.at(right, values, xs + 1)
    return [
        _piece(label + 1, labels[top[label] : bottom[label], left[label] : right[label]] == label + 1, int(top[label]), int(left[label]))
        for label in range(count)
    ]


def digit_height(pieces: list[Piece], spec: dict) -> int:
    """The tallest of the components holding a fair share of the largest one's ink."""
    largest = max(p.area for p in pieces)
    return max(p.y1 - p.y0 for p in pieces if p.area >= spec["digit_height"]["min_area_share"] * largest)


def without_specks(pieces: list[Piece], height: int, spec: dict) -> list[Piece]:
    rules = spec["speck"]
    return [
        p for p in pieces
        if p.area >= rules["max_area_heights2"] * height * height
        or max(p.x1 - p.x0, p.y1 - p.y0) >= rules["max_side_heights"] * height
    ]


# --- atoms: components and the pieces of wide ones -------------------------------------------


def atoms(pieces: list[Piece], height: int, spec: dict) -> list[Piece]:
    """The components in reading order, each wide one cut into pieces along its cut paths."""
    out = []
    for piece in pieces:
        rows, width = piece.pixels.shape
        columns = np.arange(width)[np.newaxis, :]
        left, crossed = np.zeros(rows, np.int64), 0
        paths = [*cut_paths(piece.pixels, height, spec), (np.full(rows, width), 0)]
        for path, ink in paths:
            part = piece.pixels & (columns >= left[:, np.newaxis]) & (columns < path[:, np.newaxis])
            found = _piece(piece.label, part, piece.y0, piece.x0, crossed)
            if found is not None:
                out.append(replace(found, whole=piece.x1 - piece.x0) if len(paths) > 1 else found)
            left, crossed = path, ink
    return sorted(out, key=lambda p: (p.centre, p.y0))


def cut_paths(own: np.ndarray, height: int, spec: dict) -> list[tuple[np.ndarray, int]]:
    """Candidate cuts through a component wide enough to be touching digits: top-to-bottom paths
    (one column per row, moving at most one column a row) crossing the least ink, by dynamic
    programming from the top and from the bottom; the paths ending at the local minima of that
    cost, cheapest first, at least `spacing` apart on average, left to right. Each: (the path's
    column in each row, ink pixels crossed)."""
    rules = spec["cut"]
    rows, width = own.shape
    if width < rules["min_width_heights"] * height:
        return []
    margin = max(1, round(rules["margin_heights"] * height))
    wide = width >= rules.get("close_min_width_heights", math.inf) * height  # surely two digits or more
    spacing = max(1, round(rules["close_spacing_heights" if wide else "spacing_heights"] * height))
    found = []
    for flip in (False, True):
        cost = own[::-1] if flip else own
        total, moves = _path_costs(cost.astype(np.float64), rules["sideways_cost"])
        inside = np.arange(margin, width - margin)
        inside = inside[(total[inside] <= total[inside - 1]) & (total[inside] <= total[inside + 1])]
        for end in inside:
            path = _traced(moves, int(end))
            found.append((float(total[end]), path[::-1] if flip else path))
    chosen: list[np.ndarray] = []
    for _, path in sorted(found, key=lambda item: (item[0], int(item[1].sum()))):
        if all(np.abs(path - other).mean() >= spacing for other in chosen):
            chosen.append(path)
    paths = []
    for path in sorted(chosen, key=lambda p: float(p.mean())):
        if paths:  # paths never cross: each stays right of the one before
            path = np.maximum(path, paths[-1][0])
        paths.append((path, int(own[np.arange(rows), np.minimum(path, width - 1)].sum())))
    return paths


def _path_costs(cost: np.ndarray, sideways: float) -> tuple[np.ndarray, np.ndarray]:
    """For each bottom column, the least total cost of a path from the top row down to it (each
    step straight down or one column aside, aside costing `sideways` more), and the moves."""
    rows, width = cost.shape
    total = cost[0].copy()
    moves = np.zeros((rows, width), np.int8)
    step = np.full((3, width), np.inf)
    for row in range(1, rows):
        step[0, 1:] = total[:-1] + sideways  # from the column to the left
        step[1] = total
        step[2, :-1] = total[1:] + sideways
        best = step.argmin(axis=0)
        total = step[best, np.arange(width)] + cost[row]
        moves[row] = best - 1
    return total, moves


def _traced(moves: np.ndarray, end: int) -> np.ndarray:
    path = np.empty(moves.shape[0], np.int64)
    path[-1] = end
    for row in range(moves.shape[0] - 1, 0, -1):
        path[row - 1] = path[row] + moves[row, path[row]]
    return path


# --- candidate digits, their crops, and the best segmentation ---------------------------------


def candidates(parts: list[Piece], height: int, spec: dict) -> list[tuple[int, int]]:
    """Runs of neighbouring atoms [i, j) that may be one digit: at most max_atoms, not wider than
    max_width, and no gap wider than merge_gap between an atom and those before it."""
    rules = spec["segment"]
    found = []
    for i in range(len(parts)):
        right = parts[i].x1
        x0 = parts[i].x0
        for j in range(i + 1, min(len(parts), i + rules["max_atoms"]) + 1):
            if j > i + 1:
                gap = parts[j - 1].x0 - right
                if gap > rules["merge_gap_heights"] * height:
                    break
                right = max(right, parts[j - 1].x1)
                x0 = min(x0, parts[j - 1].x0)
                if right - x0 > rules["max_width_heights"] * height:
                    break
            found.append((i, j))
    return found


def bounds(parts: list[Piece]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of pieces together, in working pixels."""
    return min(p.x0 for p in parts), min(p.y0 for p in parts), max(p.x1 for p in parts), max(p.y1 for p in parts)


def crop(field: Field, parts: list[Piece], dilation: int) -> np.ndarray:
    """The ink of these pieces only (their pixels grown by `dilation` to keep the soft edges),
    cropped to it: what `to_mnist` would crop if the digit were alone."""
    x0, y0, x1, y1 = bounds(parts)
    height, width = field.ink.shape
    top, left = max(0, y0 - dilation), max(0, x0 - dilation)
    bottom, right = min(height, y1 + dilation), min(width, x1 + dilation)
    own = np.zeros((bottom - top, right - left), bool)
    for p in parts:
        own[p.y0 - top : p.y1 - top, p.x0 - left : p.x1 - left] |= p.pixels
    for _ in range(dilation):
        own = _grown(own)
    ink = field.ink[top:bottom, left:right] * own
    box = preprocess._bounding_box(ink > 0)
    return ink[box]


def _grown(mask: np.ndarray) -> np.ndarray:
    """`mask` dilated by one pixel (3x3), same shape."""
    rows = mask.copy()
    rows[1:] |= mask[:-1]
    rows[:-1] |= mask[1:]
    out = rows.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def to_input(ink: np.ndarray, size: int, box: int) -> np.ndarray:
    """One candidate's cropped ink as the model's input: the `to_mnist` geometry."""
    ink = ink * np.float32(1 / preprocess._percentile(ink[ink > 0], preprocess.INK_PEAK_PERCENTILE))
    return preprocess._centre(preprocess._fit_box(np.minimum(ink, 1), box), size)


def row_band(pieces: list[Piece]) -> tuple[float, float]:
    """The row's top line and baseline: the median top and bottom of its marks."""
    return float(np.median([p.y0 for p in pieces])), float(np.median([p.y1 for p in pieces]))


def candidate_score(
    parts: list[Piece], probabilities: np.ndarray, height: int, spec: dict, band: tuple[float, float] | None = None
) -> float:
    """How likely these atoms are one digit of the class read: log P(digit) with the shape's
    priors (no digit much wider than tall, none much shorter than the field's digits, the width
    the class read usually has, none floating off the row), plus the learned terms of
    `_shape_terms`. `probabilities`: the model's answer for the candidate."""
    rules = spec["segment"]
    digit = int(np.argmax(probabilities))
    probability, second = np.sort(probabilities)[::-1][:2] if len(probabilities) > 1 else (probabilities[0], 0.0)
    x0, y0, x1, y1 = bounds(parts)
    aspect = (x1 - x0) / max(1, y1 - y0)
    score = rules["digit_bonus"] + math.log(max(float(probability), 1e-12))
    score -= rules["aspect_penalty"] * max(0.0, aspect - rules["free_aspect"])
    score -= class_aspect_penalty(aspect, digit, spec)
    short = rules["min_height_heights"] - (y1 - y0) / height
    score -= rules["small_penalty"] * max(0.0, short) / rules["min_height_heights"]
    if band is not None:  # a digit spans the row: a piece floating above the baseline or hanging below the top is a part
        off = max(0.0, (band[1] - y1) / height - rules["band_tolerance_heights"])
        off += max(0.0, (y0 - band[0]) / height - rules["band_tolerance_heights"])
        score -= rules["band_penalty"] * off
    score += rules.get("second_weight", 0.0) * math.log(max(float(second), 1e-12))
    score += _shape_terms(parts, digit, height, rules)
    return score - rules["apart_penalty"] * _joins_apart(parts, rules["apart_gap_heights"] * height)


def _shape_terms(parts: list[Piece], digit: int, height: int, rules: dict) -> float:
    """The terms fitted on fields of MNIST training digits (docs/reading.md): the candidate's
    width and height against the field's digit height, how many atoms and separate components
    it joins, a bonus per class read, and for a component that has cut paths, whether it is read
    whole or as one of its pieces (the wider it is, the likelier it holds several digits)."""
    if "class_bonus" not in rules:
        return 0.0
    x0, y0, x1, y1 = bounds(parts)
    width = (x1 - x0) / height
    score = rules["width_weight"] * width + rules["width2_weight"] * width * width
    score += rules["height_weight"] * (y1 - y0) / height + rules["class_bonus"][digit]
    score += rules["atom_weight"] * (len(parts) - 1) + rules["component_weight"] * (len({p.label for p in parts}) - 1)
    whole = max(p.whole for p in parts)
    if whole and x1 - x0 >= whole:
        score += rules["uncut_bonus"]
    elif whole:
        ramp = (whole / height - rules["split_from_heights"]) / (rules["split_full_heights"] - rules["split_from_heights"])
        score += rules["split_bonus"] * min(1.0, max(0.0, ramp))
    return score


def class_aspect_penalty(aspect: float, digit: int | None, spec: dict) -> float:
    """How unlike the class read the candidate's width is: linear in how far its aspect (width /
    height) falls outside the range most digits of that class have (class_aspect.low/high, per
    class index, from MNIST's training digits). A '9' as wide as tall is more often a 9 with a
    neighbour merged into it; half of a cut '0' is too narrow for a '6'."""
    rules = spec["segment"].get("class_aspect")
    if rules is None or digit is None or digit >= len(rules["low"]):
        return 0.0
    return (rules["high_penalty"] * max(0.0, aspect - rules["high"][digit])
            + rules["low_penalty"] * max(0.0, rules["low"][digit] - aspect))


def _joins_apart(parts: list[Piece], full_gap: float) -> float:
    """Separate marks side by side are more often two digits than one (the pieces of a broken 5
    overlap in x, those of a two-stroke 4 nearly touch): for each piece of another component
    starting right of all the ink before it, its gap over `full_gap`, at most 1."""
    joins, right = 0.0, parts[0].x1
    for before, piece in zip(parts, parts[1:]):
        if piece.label != before.label and piece.x0 >= right:
            joins += min(1.0, (piece.x0 - right + 1) / max(full_gap, 1.0))
        right = max(right, piece.x1)
    return joins


def skip_cost(part: Piece, height: int, spec: dict) -> float:
    """What leaving an atom out of every digit costs: little for a scrap, much for real ink."""
    rules = spec["segment"]
    return rules["skip_base"] + rules["skip_area_heights2"] * part.area / (height * height)


def cut_costs(parts: list[Piece], stroke: float, spec: dict) -> list[float]:
    """For each atom, what starting a digit at it costs: for a piece cut from the atom before it,
    cost times the square of the stroke widths of ink the cut goes through (touching digits meet
    at one stroke; a cut through one wide digit crosses two or more); 0 elsewhere."""
    costs = [0.0] * len(parts)
    free = spec["cut"].get("free_strokes", 0.0)
    for k in range(1, len(parts)):
        before, piece = parts[k - 1], parts[k]
        if piece.cut_ink and before.label == piece.label:
            costs[k] = spec["cut"]["cost"] * max(0.0, piece.cut_ink / max(stroke, 1.0) - free) ** 2
            costs[k] += spec["cut"].get("start_cost", 0.0)
    return costs


def best_segmentation(
    count: int, scored: dict[tuple[int, int], float], skips: list[float], cuts: list[float] | None = None
) -> list[tuple[int, int]]:
    """The partition of atoms 0..count-1 into candidate digits (or skipped atoms) with the highest
    total score, each cut made through ink paying its cost: dynamic programming over the cut
    positions, not a greedy choice."""
    cuts = cuts or [0.0] * count
    best = [0.0] + [-math.inf] * count
    back: list[tuple[int, bool]] = [(0, False)] * (count + 1)
    for j in range(1, count + 1):
        if best[j - 1] - skips[j - 1] > best[j]:
            best[j], back[j] = best[j - 1] - skips[j - 1], (j - 1, False)
        for i in range(j):
            score = scored.get((i, j))
            if score is not None:
                score -= cuts[i]
            if score is not None and best[i] + score > best[j]:
                best[j], back[j] = best[i] + score, (i, True)
    chosen, j = [], count
    while j > 0:
        i, is_digit = back[j]
        if is_digit:
            chosen.append((i, j))
        j = i
    return chosen[::-1]


# --- reading ---------------------------------------------------------------------------------


def field_marks(image, spec: dict, max_pixels: int | None = None) -> tuple[Field, np.ndarray, list[Piece], int]:
    """Steps 1-7 of the recipe: the field (its mask without lines), the comb's dividers, the marks
    (components without specks) and the digit height. Raises NoDigitError when only lines are left."""
    field = field_ink(image, spec, max_pixels)
    lines, vertical = line_pixels(field.ink, field.mask, spec)
    field.mask &= ~lines
    pieces = _component_boxes(*components(field.mask))
    if not pieces:
        raise NoDigitError("no digit found: the image holds only lines")
    height = digit_height(pieces, spec)
    return field, comb_dividers(vertical), without_specks(pieces, height, spec), height


def read_number(predictor, image, *, min_confidence: float | None = None, max_pixels: int | None = None) -> Reading:
    """Read the row of digits in `image` (path, bytes, PIL image or array) digit by digit with a
    digit model (runtime/reading.py adds the export's number reader). Raises NoDigitError (blank,
    only lines or specks), TooManyDigitsError, and the decoding errors of `to_mnist`."""
    spec = load_spec()
    threshold = spec["min_confidence"] if min_confidence is None else min_confidence
    field, dividers, pieces, height = checked_marks(image, spec, max_pixels)
    return read_digits(predictor, field, dividers, pieces, height, spec, threshold, digit_geometry(predictor))


def checked_marks(image, spec: dict, max_pixels: int | None = None) -> tuple[Field, np.ndarray, list[Piece], int]:
    """field_marks, refusing more separate marks than a number may have."""
    field, dividers, pieces, height = field_marks(image, spec, max_pixels)
    if len(pieces) > spec["max_marks"]:
        raise TooManyDigitsError(f"too many digits: {len(pieces)} separate marks, a number has at most {spec['max_digits']} digits")
    return field, dividers, pieces, height


def read_digits(predictor, field: Field, dividers, pieces: list[Piece], height: int, spec: dict, threshold: float, geometry) -> Reading:
    """Steps 8-12 of the recipe: the field's marks read digit by digit (candidate digits, each
    classified, the best segmentation of the whole row)."""
    size, box = geometry
    parts = atoms(pieces, height, spec)
    spans = candidates(parts, height, spec)
    if len(spans) > spec["max_candidates"]:
        raise TooManyDigitsError(f"too many digits: the ink is too crowded to read as at most {spec['max_digits']} digits")
    inputs = np.stack([to_input(crop(field, parts[i:j], spec["crop_dilation"]), size, box) for i, j in spans])
    probabilities = predictor.predict_array(inputs)
    band = row_band(pieces)
    cell_penalty = spec["segment"].get("cell_penalty", 0.0)
    scored = {
        span: candidate_score(parts[span[0] : span[1]], p, height, spec, band)
        - cell_penalty * shared_cells(parts, *span, dividers)
        for span, p in zip(spans, probabilities)
    }
    stroke = preprocess._stroke_width(field.mask.astype(np.float32))
    skips = [skip_cost(p, height, spec) for p in parts]
    chosen = best_segmentation(len(parts), scored, skips, cut_costs(parts, stroke, spec))
    if not chosen:
        raise NoDigitError("no digit found: only specks and scraps of ink")
    if len(chosen) > spec["max_digits"]:
        raise TooManyDigitsError(f"too many digits: read {len(chosen)}, a number has at most {spec['max_digits']}")
    row_of = {span: row for row, span in enumerate(spans)}
    digits = tuple(
        _read_digit(predictor, probabilities[row_of[span]], inputs[row_of[span]], field, parts[span[0] : span[1]])
        for span in chosen
    )
    confidence = float(np.prod([d.confidence for d in digits]))
    return Reading("".join(d.label for d in digits), confidence, confidence < threshold, digits)


def digit_geometry(predictor) -> tuple[int, int]:
    spec = predictor.manifest.input
    if spec.preprocessing.kind != "digit" or spec.height != spec.width:
        raise PreprocessError(
            f"reading numbers needs a model of centred digits (preprocessing 'digit'), this one uses {spec.preprocessing.kind!r}"
        )
    from mnist_edge.manifest import digit_box

    return spec.height, spec.preprocessing.box or digit_box(spec.height)


def _read_digit(predictor, probabilities: np.ndarray, model_input: np.ndarray, field: Field, parts: list[Piece]) -> ReadDigit:
    prediction = predictor.to_prediction(probabilities)
    x0, y0, x1, y1 = bounds(parts)
    top, left = field.origin
    box = (
        math.floor(left + x0 * field.scale), math.floor(top + y0 * field.scale),
        math.ceil(left + x1 * field.scale), math.ceil(top + y1 * field.scale),
    )
    top3 = tuple((name, p) for name, p in prediction.top(3))
    return ReadDigit(prediction.digit, prediction.label, prediction.confidence, top3, box, model_input)
