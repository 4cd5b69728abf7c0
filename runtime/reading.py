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
    geometry = number._digit_geometry(predictor)
    if sequence_model is None or reader == "digits":
        return number.read_digits(predictor, field, dividers, pieces, height, spec, threshold, geometry)
    try:
        line = sequence.read_line(predictor, sequence_model, field, pieces, spec, threshold)
    except PreprocessError:  # no digit emitted, or too many: the digit-by-digit reading (or its error) stands
        line = None
    try:
        digits = number.read_digits(predictor, field, dividers, pieces, height, spec, threshold, geometry)
    except PreprocessError:  # too crowded to cut, or only scraps: the sequence model's reading stands
        if line is None:
            raise
        return line
    return digits if line is None else sequence.combine(digits, line)
