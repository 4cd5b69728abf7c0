"""Reading a whole number with both readers: digit by digit (runtime/number.py) and, where the
export has one, its number reader (runtime/sequence.py), combined as sequence.combine says
(docs/reading.md). What `Predictor.read` and `mnist-edge read` call."""

from __future__ import annotations

from mnist_edge.runtime import number, sequence
from mnist_edge.runtime.errors import PreprocessError

READERS = ("auto", "digits", "sequence")  # `reader`: both combined, or one of them alone


def read(
    predictor, image, *, reader: str = "auto", sequence_model=None, min_confidence: float | None = None,
    max_pixels: int | None = None,
) -> number.Reading:
    """Read the row of digits in `image` (path, bytes, PIL image or array). `reader`: "digits"
    reads digit by digit, "sequence" with `sequence_model` (a sequence.ReaderModel) alone, "auto"
    with both, combined (digit by digit when there is no sequence model). Raises NoDigitError
    (blank, only lines or specks), TooManyDigitsError, and the decoding errors of `to_mnist`."""
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
    if reader == "sequence" and sequence_model is None:
        raise PreprocessError("this export has no number reader; read with reader='digits' or 'auto'")
    spec = number.load_spec()
    threshold = spec["min_confidence"] if min_confidence is None else min_confidence
    field, dividers, pieces, height = number.checked_marks(image, spec, max_pixels)
    if reader == "sequence":
        return sequence.read_line(predictor, sequence_model, field, pieces, spec, threshold)
    if sequence_model is None or reader == "digits":
        return number.read_digits(predictor, field, dividers, pieces, height, spec, threshold, number.digit_geometry(predictor))
    digits, line, error = read_both(predictor, sequence_model, (field, dividers, pieces, height), spec, threshold)
    reading = combined(digits, line)
    if reading is None:
        raise error
    return reading


def read_both(predictor, sequence_model, marks, spec: dict, threshold: float):
    """(the digit-by-digit reading, the sequence model's, the digit-by-digit reader's error) of a
    field's marks (number.field_marks); a reading is None where its reader found no digits or too many."""
    field, dividers, pieces, height = marks
    geometry = number.digit_geometry(predictor)  # a model that cannot read digits is refused, not skipped
    try:
        line = sequence.read_line(predictor, sequence_model, field, pieces, spec, threshold)
    except PreprocessError:  # no digit emitted, or too many
        line = None
    try:
        return number.read_digits(predictor, field, dividers, pieces, height, spec, threshold, geometry), line, None
    except PreprocessError as exc:  # too crowded to cut, or only scraps
        return None, line, exc


def combined(digits: number.Reading | None, line: number.Reading | None) -> number.Reading | None:
    """`read`'s answer from both readings: sequence.combine when there are both, else the one there is."""
    if digits is None or line is None:
        return digits or line
    return sequence.combine(digits, line)
