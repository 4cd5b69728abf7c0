"""The sequence reader: one exported model reads a whole field, for neighbours that touch or overlap.

The digit-by-digit reader of `number.read_number` partitions the field's ink into candidate
digits; digits whose strokes interleave or cross have no such partition. This model reads the
row at once (docs/reading.md, "The sequence reader"):

    the field's marks as `number.field_marks` finds them (paper, polarity, working scale, ruled
    lines, box borders and comb dividers removed, specks dropped) -> their ink, cropped, scaled to
    `height` rows (Pillow's bilinear resize) and padded -> the model: 11 probabilities per column
    of `stride` pixels (10 digits and a blank) -> CTC's best path: each column's best class,
    repeats merged, blanks dropped.

Each digit read is the run of columns that emitted it; its confidence is the probability of its
class at the run's best column (its peak), its top 3 the digits most probable there, and its box
that of the marks it owns (`_assign`), in input pixels.

`combine` chooses between the two readings of a field (the rule is in number_spec.json's
"sequence" section and docs/reading.md). Depends on numpy and pillow (and the session given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mnist_edge.runtime import number
from mnist_edge.runtime.errors import NoDigitError


@dataclass(frozen=True)
class Line:
    """The model's input and how its columns map back to the working field."""

    image: np.ndarray  # float32 [height, width]
    own: np.ndarray  # bool [h, w]: the marks' pixels (grown by one), in the working field
    left: int  # working-field column of the ink crop's left edge
    top: int
    ink_width: int  # columns of the ink crop
    ink_height: int
    width: int  # columns the crop was scaled to (the image's, less the padding)


def line_image(field: number.Field, pieces: list[number.Piece], rules: dict) -> Line:
    """The marks' ink (each mark's pixels grown by one to keep the soft edges), cropped to it,
    scaled to rules.height rows (at most rules.max_width columns in all) and padded with
    rules.pad empty columns either side."""
    own = np.zeros(field.mask.shape, bool)
    for p in pieces:
        own[p.y0 : p.y1, p.x0 : p.x1] |= p.pixels
    own = number._grown(own)
    ys, xs = np.nonzero(own)
    if ys.size == 0:  # every mark was a speck
        raise NoDigitError("no digit found: only specks and scraps of ink")
    top, left = int(ys.min()), int(xs.min())
    ink = (field.ink * own)[top : ys.max() + 1, left : xs.max() + 1].astype(np.float32)
    height, pad = rules["height"], rules["pad"]
    width = min(max(1, round(ink.shape[1] * height / ink.shape[0])), rules["max_width"] - 2 * pad)
    scaled = np.asarray(Image.fromarray(ink, "F").resize((width, height), Image.Resampling.BILINEAR))
    image = np.zeros((height, width + 2 * pad), np.float32)
    image[:, pad : pad + width] = np.clip(scaled, 0, 1)
    return Line(image, own, left, top, ink.shape[1], ink.shape[0], width)


def model_input(line: Line, stride: int) -> np.ndarray:
    """[1, height, width, 1], the width padded with empty columns to a multiple of `stride`."""
    height, width = line.image.shape
    x = np.zeros((1, height, width + (-width) % stride, 1), np.float32)
    x[0, :, :width, 0] = line.image
    return x


@dataclass(frozen=True)
class Emitted:
    """One digit of CTC's best path: its class and the run of columns [start, stop) that emitted it."""

    digit: int
    start: int
    stop: int
    peak: int  # the column of the run where the class is most probable


def best_path(probabilities: np.ndarray, blank: int) -> list[Emitted]:
    """CTC's best path over [columns, classes]: each column's best class, runs merged, blanks dropped."""
    best = probabilities.argmax(axis=1)
    out, start = [], 0
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            if best[start] != blank:
                digit = int(best[start])
                peak = start + int(np.argmax(probabilities[start:t, digit]))
                out.append(Emitted(digit, start, t, peak))
            start = t
    return out


def read_line(
    predictor, reader: "ReaderModel", field: number.Field, pieces: list[number.Piece], spec: dict, threshold: float
) -> number.Reading:
    """The field read by the export's sequence model (`reader`); digit names are `predictor`'s."""
    rules = reader.rules
    line = line_image(field, pieces, rules)
    probabilities = reader.probabilities(model_input(line, rules["stride"]))
    emitted = best_path(probabilities, rules["blank"])
    if not emitted:
        raise NoDigitError("no digit found: the marks do not read as digits")
    if len(emitted) > spec["max_digits"]:
        raise number.TooManyDigitsError(f"too many digits: read {len(emitted)}, a number has at most {spec['max_digits']}")
    owned = _assign(pieces, [line.left + ((e.peak + 0.5) * rules["stride"] - rules["pad"]) * line.ink_width / line.width for e in emitted])
    digits = tuple(_digit(predictor, probabilities[e.peak], line, field, owned[k], rules) for k, e in enumerate(emitted))
    confidence = float(np.prod([d.confidence for d in digits]))
    return number.Reading("".join(d.label for d in digits), confidence, confidence < threshold, digits, "sequence")


def _assign(pieces: list[number.Piece], peaks: list[float]) -> list[tuple[int, int, int, int] | None]:
    """Each digit's box (x0, y0, x1, y1 in working pixels, or None) from the marks it owns. A mark
    under one digit's peak column goes to that digit; a mark under none (a 5's flag, a 4's second
    stroke) to the last digit whose peak is left of its right end; a mark under several (neighbours
    that touch) is split between them at the column of least ink between each two peaks."""
    boxes: list[list[int] | None] = [None] * len(peaks)

    def own(k: int, x0: int, y0: int, x1: int, y1: int) -> None:
        box = boxes[k]
        boxes[k] = [x0, y0, x1, y1] if box is None else [min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1)]

    for piece in pieces:
        under = [k for k, c in enumerate(peaks) if piece.x0 <= c < piece.x1]
        if len(under) <= 1:
            k = under[0] if under else max([0] + [k for k, c in enumerate(peaks) if c < piece.x1])
            own(k, piece.x0, piece.y0, piece.x1, piece.y1)
            continue
        columns = piece.pixels.sum(axis=0)
        cuts = [0] + [_cut(columns, peaks[a] - piece.x0, peaks[b] - piece.x0) for a, b in zip(under, under[1:])] + [piece.x1 - piece.x0]
        for k, a, b in zip(under, cuts, cuts[1:]):
            rows, cols = np.nonzero(piece.pixels[:, a:b])
            if rows.size:
                own(k, piece.x0 + a + int(cols.min()), piece.y0 + int(rows.min()), piece.x0 + a + int(cols.max()) + 1, piece.y0 + int(rows.max()) + 1)
    return [tuple(b) if b is not None else None for b in boxes]


def _cut(columns: np.ndarray, left: float, right: float) -> int:
    """Where to part two touching digits: the column of least ink in the right half between
    their peaks (the rightmost of equals), as the first column of the right-hand digit. A digit's
    peak column sits left of its centre (about a fifth of its width in), so their boundary lies
    nearer the right peak; on fields of MNIST test digits this gives the boxes docs/reading.md
    measures."""
    start, stop = math.floor((left + right) / 2) + 1, math.ceil(right)
    if stop <= start:
        return max(0, min(len(columns), round((left + right) / 2)))
    window = columns[start:stop]
    return start + len(window) - 1 - int(np.argmin(window[::-1]))


def _digit(predictor, scores: np.ndarray, line: Line, field: number.Field, box, rules: dict) -> number.ReadDigit:
    """The digit read at one column run: class, confidence and top 3 at its best column; its box
    (in input pixels) is that of the marks it owns, and its picture the line image's columns under them."""
    digits = scores[: rules["blank"]]
    order = np.argsort(-digits, kind="stable")[:3]
    names = predictor.class_names
    best = int(order[0])
    top = tuple((names[int(k)], float(digits[k])) for k in order)
    x0, y0, x1, y1 = box if box is not None else (line.left, line.top, line.left + 1, line.top + line.ink_height)
    top_, left = field.origin
    shown = (
        math.floor(left + x0 * field.scale), math.floor(top_ + y0 * field.scale),
        math.ceil(left + x1 * field.scale), math.ceil(top_ + y1 * field.scale),
    )
    scale = line.width / line.ink_width
    c0 = max(0, math.floor(rules["pad"] + (x0 - line.left) * scale))
    c1 = max(c0 + 1, min(line.image.shape[1], math.ceil(rules["pad"] + (x1 - line.left) * scale)))
    return number.ReadDigit(best, names[best], float(digits[best]), top, shown, line.image[:, c0:c1].copy())


# --- the exported model ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderModel:
    """An export's number reader, opened: its onnxruntime session and its geometry (the manifest's)."""

    session: object
    rules: dict  # height, pad, max_width, stride, blank

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """[columns, 11] for one model input [1, height, width, 1]."""
        name = self.session.get_inputs()[0].name
        return np.asarray(self.session.run(None, {name: x})[0][0], np.float64)


def open_reader(manifest, signed=None, threads: int | None = None, content: bytes | None = None) -> ReaderModel:
    """The manifest's reader, its bytes checked against the manifest (and the signature, when the
    export was loaded with a public key) before onnxruntime sees them: read from the export folder,
    or `content` already read (a Ray actor's copy), checked the same way. ModelLoadError when the
    manifest lists none, records a failed proof, or the file does not load as such a model."""
    import hashlib

    from mnist_edge.runtime.errors import IntegrityError, ModelLoadError
    from mnist_edge.runtime.integrity import read_checked

    reader = manifest.reader
    if reader is None:
        raise ModelLoadError(f"{manifest.where}: this export has no number reader (export it with --reader)")
    path = manifest.root / reader.file if manifest.root else reader.file
    if not reader.proof.passed:
        raise ModelLoadError(f"{path}: its manifest records a failed proof ({reader.proof.failure}); refusing to load it")
    if content is None:
        content = read_checked(path, reader.bytes, reader.sha256)
    elif len(content) != reader.bytes or hashlib.sha256(content).hexdigest() != reader.sha256:
        raise IntegrityError(f"{path}: the bytes received do not match the manifest's size and sha256; refusing to load it")
    if signed is not None:
        signed.check(reader.file, content)
    session = reader_session(content, threads, str(path))
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].name != reader.input_name or len(inputs[0].shape) != 4 or len(outputs[0].shape) != 3:
        raise ModelLoadError(
            f"{path}: expected one input {reader.input_name!r} [batch, {reader.height}, width, 1] and scores "
            f"[batch, columns, 11]; found {[(i.name, i.shape) for i in inputs]}"
        )
    rules = {"height": reader.height, "pad": reader.pad, "max_width": reader.max_width, "stride": reader.stride, "blank": reader.blank}
    return ReaderModel(session, rules)


def reader_session(content: bytes, threads: int | None, name: str):
    """An onnxruntime session of a reader's bytes, with the runtime's session options; a file
    onnxruntime cannot load is one ModelLoadError naming it."""
    import onnxruntime as ort

    from mnist_edge.runtime.backends import onnx_session_options
    from mnist_edge.runtime.errors import ModelLoadError

    try:
        return ort.InferenceSession(content, onnx_session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelLoadError(f"{name}: onnxruntime cannot load it: {str(exc).splitlines()[0]}") from exc


def combine(digits: number.Reading, line: number.Reading) -> number.Reading:
    """What `read` answers when both readers read the field: when they read as many digits, the
    more confident reading (the digit-by-digit one on a tie); otherwise the sequence model's, since
    a count that differs is most often neighbours the digit-by-digit reader could not part
    (chosen on validation fields of seed 7, docs/reading.md)."""
    if len(digits.text) == len(line.text) and digits.confidence >= line.confidence:
        return digits
    return line
