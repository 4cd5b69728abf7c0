"""Classification figures from labels and predictions, numpy only: shared by training's report
and the runtime-only `mnist-edge evaluate` (which must not import the trainer)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def per_class_scores(matrix: np.ndarray, class_names) -> list[dict]:
    true_counts = matrix.sum(axis=1)
    predicted_counts = matrix.sum(axis=0)
    scores = []
    for c, name in enumerate(class_names):
        hit = matrix[c, c]
        precision = hit / predicted_counts[c] if predicted_counts[c] else 0.0
        recall = hit / true_counts[c] if true_counts[c] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(
            {
                "class": name,
                "precision": round(float(precision), 4),
                "recall": round(float(recall), 4),
                "f1": round(float(f1), 4),
                "support": int(true_counts[c]),
            }
        )
    return scores
