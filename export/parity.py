"""Does an artifact still behave like the Keras model? Measured on the real test set.

Unlike checks on dummy inputs, every figure here comes from all test images run through the
artifact's own runtime: accuracy, how many images keep their predicted class (argmax agreement),
and how far the probabilities moved. Each kind of failure has its own error type whose message
gives the measured figure and the limit; `check` returns every failed check, not just the first.
Numpy only: `verify` and the web app's proofs use it without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from mnist_edge import formats
from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import Proof

# Limits, per precision. A flag of `mnist-edge export` can override each.
FP32_MIN_AGREEMENT = 1.0  # every test image keeps its class
FP32_MAX_ABS_DIFF = 1e-4  # max |delta p| over all images and classes
FP16_MIN_AGREEMENT = 0.999
INT8_MIN_AGREEMENT = 0.995
INT8_MAX_ACCURACY_DROP = 0.003  # 0.3 percentage points
INT8_MAX_SIZE_RATIO = 0.35  # of the fp32 file of the same format
# Two engines running the same file (TFLite Micro and LiteRT on one int8 flatbuffer).
SAME_FILE_MIN_AGREEMENT = 0.999


class ParityError(MnistEdgeError):
    """An artifact does not match the Keras model closely enough."""


class ShapeError(ParityError):
    """The artifact's output has the wrong shape."""


class ArgmaxAgreementError(ParityError):
    """Too many test images changed predicted class."""


class AtolError(ParityError):
    """Probabilities moved more than the tolerance."""


class AccuracyDropError(ParityError):
    """Test accuracy fell more than allowed."""


class SizeError(ParityError):
    """A quantized artifact is not small enough to be worth shipping."""


@dataclass(frozen=True)
class Thresholds:
    fp32_min_agreement: float = FP32_MIN_AGREEMENT
    fp32_max_abs_diff: float = FP32_MAX_ABS_DIFF
    fp16_min_agreement: float = FP16_MIN_AGREEMENT
    int8_min_agreement: float = INT8_MIN_AGREEMENT
    int8_max_accuracy_drop: float = INT8_MAX_ACCURACY_DROP
    int8_max_size_ratio: float = INT8_MAX_SIZE_RATIO
    same_file_min_agreement: float = SAME_FILE_MIN_AGREEMENT
    # The number reader (export/reader.py): ONNX reads as Keras on this share of the proof's fields,
    # and reading with it gets this many more points of the fields right than digit by digit.
    reader_min_agreement: float = 0.99
    reader_min_gain: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ParityReport:
    """How one artifact compares with the reference (Keras) on the test set."""

    accuracy: float
    reference_accuracy: float
    argmax_agreement: float
    changed_predictions: int
    images: int
    max_abs_diff: float
    mean_abs_diff: float
    size_ratio: float | None = None  # bytes / bytes of the fp32 artifact of the same format

    @property
    def accuracy_delta(self) -> float:
        return self.accuracy - self.reference_accuracy

    def proof(self, engine: str, reference: str, failures: list) -> Proof:
        """These figures as the manifest records them."""
        return Proof(
            engine=engine,
            reference=reference,
            images=self.images,
            test_accuracy=round(self.accuracy, 6),
            accuracy_delta=round(self.accuracy_delta, 6),
            argmax_agreement=round(self.argmax_agreement, 6),
            changed_predictions=self.changed_predictions,
            max_abs_diff=float(f"{self.max_abs_diff:.3g}"),
            mean_abs_diff=float(f"{self.mean_abs_diff:.3g}"),
            passed=not failures,
            failure="; ".join(str(f) for f in failures) or None,
        )


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(probabilities).argmax(axis=1) == labels).mean())


def compare(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, size_ratio: float | None = None
) -> ParityReport:
    """All parity figures of `candidate` against `reference` probabilities. Raises ShapeError
    when the two cannot be compared (another shape, or non-finite values)."""
    reference = np.asarray(reference, dtype=np.float32)
    candidate = np.asarray(candidate, dtype=np.float32)
    if candidate.shape != reference.shape:
        raise ShapeError(f"output shape {candidate.shape} differs from the reference's {reference.shape}")
    if not np.isfinite(candidate).all():
        raise ShapeError(f"output holds {int((~np.isfinite(candidate)).sum())} non-finite values (NaN/inf)")
    diff = np.abs(candidate - reference)
    changed = int((reference.argmax(axis=1) != candidate.argmax(axis=1)).sum())
    return ParityReport(
        accuracy=accuracy(candidate, labels),
        reference_accuracy=accuracy(reference, labels),
        argmax_agreement=1.0 - changed / len(reference),
        changed_predictions=changed,
        images=len(reference),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        size_ratio=size_ratio,
    )


@dataclass(frozen=True)
class Check:
    """One check a proof rule can name: whether a report passes it under a limit, and if not, the
    error to raise and what it says (the measured figure and the limit)."""

    error: type[ParityError]
    passes: Callable[[ParityReport, float], bool]
    says: Callable[[ParityReport, float], str]


# The checks a proof rule (mnist_edge.formats.PROOF_RULES) can name.
CHECKS = {
    "argmax_agreement": Check(
        ArgmaxAgreementError,
        lambda report, limit: report.argmax_agreement >= limit,
        lambda report, limit: f"argmax agreement {report.argmax_agreement:.4%} is below the limit {limit:.4%} "
        f"({report.changed_predictions} of {report.images} test images changed class)",
    ),
    "max_abs_diff": Check(
        AtolError,
        lambda report, limit: report.max_abs_diff <= limit,
        lambda report, limit: f"max |delta p| {report.max_abs_diff:.3g} exceeds the tolerance "
        f"{limit:.3g} (mean {report.mean_abs_diff:.3g})",
    ),
    "accuracy_drop": Check(
        AccuracyDropError,
        lambda report, limit: -report.accuracy_delta <= limit,
        lambda report, limit: f"test accuracy {report.accuracy:.4%} is {-report.accuracy_delta * 100:.2f} points below "
        f"the reference's {report.reference_accuracy:.4%}; the limit is {limit * 100:.2f} points",
    ),
    "size_ratio": Check(
        SizeError,
        lambda report, limit: report.size_ratio is None or report.size_ratio <= limit,
        lambda report, limit: f"{report.size_ratio:.1%} of the fp32 size, the limit is {limit:.0%}",
    ),
}


def check(
    report: ParityReport,
    precision: str,
    thresholds: Thresholds,
    name: str,
    rules: tuple[tuple[str, str], ...] | None = None,
) -> list[ParityError]:
    """Every check this precision (or a kind's own `rules`) must pass that `report` fails, each
    with the measured figure and the limit; an empty list when it passes them all."""
    if rules is None:
        if precision not in formats.PROOF_RULES:
            raise ValueError(f"unknown precision {precision!r}")
        rules = formats.PROOF_RULES[precision]
    failures: list[ParityError] = []
    for check_name, limit_field in rules:
        rule, limit = CHECKS[check_name], getattr(thresholds, limit_field)
        if not rule.passes(report, limit):
            failures.append(rule.error(f"{name}: {rule.says(report, limit)}"))
    return failures

