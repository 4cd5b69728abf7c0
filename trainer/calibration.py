"""Is a "99% sure" answer right 99% of the time? Reliability bins, the expected calibration
error, and what rejecting doubtful answers below a confidence threshold buys.

Pure numpy, like trainer.analysis: the figures go into metrics.json and the report draws them.
"""

from __future__ import annotations

import numpy as np

# Equal-width confidence bins over [0, 1], the usual choice since Guo et al. (2017), "On
# Calibration of Modern Neural Networks".
ECE_BINS = 15
REJECT_THRESHOLDS = (0.5, 0.7, 0.9, 0.95, 0.99, 0.999)


def bin_index(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Which of `bins` equal-width bins each confidence falls in: bin i holds (i/bins, (i+1)/bins],
    and bin 0 also holds 0."""
    confidence = np.asarray(confidence, np.float64)
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per bin: its edges, how many answers fall in it, their mean confidence and their accuracy
    (None for an empty bin)."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    index = bin_index(confidence, bins)
    rows = []
    for i in range(bins):
        inside = index == i
        count = int(inside.sum())
        rows.append(
            {
                "lower": round(i / bins, 6),
                "upper": round((i + 1) / bins, 6),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the gap between confidence and accuracy in each bin, weighted by the bin's share of
    the answers. 0 for a perfectly calibrated model."""
    total = len(np.asarray(confidence))
    if total == 0:
        raise ValueError("expected_calibration_error needs at least one answer")
    return float(
        sum(row["count"] / total * abs(row["confidence"] - row["accuracy"]) for row in reliability_bins(confidence, correct, bins) if row["count"])
    )


def coverage_table(confidence: np.ndarray, correct: np.ndarray, thresholds=REJECT_THRESHOLDS) -> list[dict]:
    """Answer only when confidence >= threshold: the share of images still answered (coverage),
    the accuracy on them, and how many of all the mistakes the rejection catches."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    mistakes = int((~correct).sum())
    rows = []
    for threshold in thresholds:
        kept = confidence >= threshold
        rows.append(
            {
                "threshold": threshold,
                "coverage": float(kept.mean()),
                "accuracy": float(correct[kept].mean()) if kept.any() else None,
                "rejected": int((~kept).sum()),
                "mistakes_rejected": int((~correct & ~kept).sum()),
                "correct_rejected": int((correct & ~kept).sum()),
                "mistakes": mistakes,
            }
        )
    return rows


def calibration_summary(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Everything metrics.json says about the confidence of the top answer on the test set."""
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    return {
        "bins_count": bins,
        "ece": round(expected_calibration_error(confidence, correct, bins), 6),
        "mean_confidence": round(float(confidence.mean()), 6),
        "accuracy": round(float(correct.mean()), 6),
        "bins": reliability_bins(confidence, correct, bins),
        "coverage": coverage_table(confidence, correct),
    }
