"""Explain a trained model's result from its test probabilities and its training history.

Pure numpy: every figure in metrics.json comes from here, so it can be tested on small arrays.
"""

from __future__ import annotations

import numpy as np

from mnist_edge.metrics import confusion_matrix, per_class_scores  # noqa: F401 (part of the report's figures)
from mnist_edge.trainer.calibration import calibration_summary

# A mistake made with at least this confidence is "confident"; below AMBIGUOUS_CONFIDENCE, or
# with the runner-up this close, it is "ambiguous": the image honestly looks like two classes.
CONFIDENT = 0.9
AMBIGUOUS_CONFIDENCE = 0.6
AMBIGUOUS_MARGIN = 0.2
WORST_MISTAKES = 24
MOST_CONFUSED = 10
LOSS_EPSILON = 1e-7

# Thresholds of the overfitting verdict.
OVERFIT_ACCURACY_GAP = 0.01  # train above validation accuracy by more than one point
OVERFIT_LOSS_RISE = 0.15  # validation loss at the last epoch 15% above its best
UNDERFIT_ACCURACY = 0.9

# The "right and wrong" grid: random test images (fixed seed), this many right and wrong ones.
SAMPLE_RIGHT = 24
SAMPLE_WRONG = 8
SAMPLE_SEED = 0


def most_confused_pairs(matrix: np.ndarray, class_names, top: int = MOST_CONFUSED) -> list[dict]:
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1]
    pairs = []
    for flat in order[:top]:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        pairs.append({"true": class_names[t], "predicted": class_names[p], "count": int(off[t, p])})
    return pairs


def mistakes(probabilities: np.ndarray, labels: np.ndarray, class_names, top: int = WORST_MISTAKES) -> dict:
    """The misclassified test images, worst (most confident) first, and how they split into
    confident mistakes and ambiguous ones."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities.max(axis=1)
    runner_up = np.sort(probabilities, axis=1)[:, -2]
    margin = confidence - runner_up
    confident = wrong[confidence[wrong] >= CONFIDENT]
    ambiguous = wrong[(confidence[wrong] < AMBIGUOUS_CONFIDENCE) | (margin[wrong] < AMBIGUOUS_MARGIN)]
    # The true class's rank among the model's choices: 2 means "it was the second guess".
    true_rank = (probabilities > probabilities[np.arange(len(labels)), labels][:, None]).sum(axis=1) + 1
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:top]
    return {
        "count": int(len(wrong)),
        "confident_count": int(len(confident)),
        "ambiguous_count": int(len(ambiguous)),
        "true_class_second_count": int((true_rank[wrong] == 2).sum()),
        "mean_confidence": round(float(confidence[wrong].mean()), 4) if len(wrong) else None,
        "mean_confidence_correct": round(float(confidence[predicted == labels].mean()), 4)
        if (predicted == labels).any()
        else None,
        "worst": [
            {
                "index": int(i),
                "true": class_names[labels[i]],
                "predicted": class_names[predicted[i]],
                "confidence": round(float(confidence[i]), 4),
                "true_probability": round(float(probabilities[i, labels[i]]), 4),
                "kind": "confident"
                if confidence[i] >= CONFIDENT
                else ("ambiguous" if confidence[i] < AMBIGUOUS_CONFIDENCE or margin[i] < AMBIGUOUS_MARGIN else "unsure"),
            }
            for i in worst
        ],
    }


def _epoch_figures(history: dict, epoch_index: int) -> dict:
    train_loss, val_loss = history["loss"][epoch_index], history["val_loss"][epoch_index]
    train_acc, val_acc = history["accuracy"][epoch_index], history["val_accuracy"][epoch_index]
    return {
        "epoch": epoch_index + 1,
        "train_loss": round(train_loss, 4),
        "val_loss": round(val_loss, 4),
        "loss_gap": round(val_loss - train_loss, 4),
        "train_accuracy": round(train_acc, 4),
        "val_accuracy": round(val_acc, 4),
        "accuracy_gap": round(train_acc - val_acc, 4),
    }


def overfitting(history: dict) -> dict:
    """Train/validation gaps at the best and the last epoch, and a verdict in plain words.

    Training figures are measured while dropout and augmentation are active, which makes them
    pessimistic; a negative gap (validation better than training) is normal then.
    """
    best_index = int(np.argmin(history["val_loss"]))
    last_index = len(history["val_loss"]) - 1
    best, last = _epoch_figures(history, best_index), _epoch_figures(history, last_index)
    loss_rise = (last["val_loss"] - best["val_loss"]) / max(best["val_loss"], LOSS_EPSILON)
    train_loss_fell = history["loss"][last_index] < history["loss"][best_index]

    if best["val_accuracy"] < UNDERFIT_ACCURACY:
        verdict = (
            f"underfitting: validation accuracy peaks at {best['val_accuracy']:.1%}; "
            "the model needs more epochs, more data or more capacity"
        )
    elif loss_rise > OVERFIT_LOSS_RISE and train_loss_fell:
        verdict = (
            f"overfitting after epoch {best['epoch']}: validation loss rose {loss_rise:.0%} by epoch "
            f"{last['epoch']} while training loss kept falling; early stopping kept epoch "
            f"{best['epoch']}'s weights"
        )
    elif best["accuracy_gap"] > OVERFIT_ACCURACY_GAP:
        verdict = (
            f"some overfitting: at the best epoch training accuracy is {best['accuracy_gap'] * 100:.1f} "
            "points above validation accuracy; more dropout, augmentation or data would help"
        )
    elif best["accuracy_gap"] < 0:
        verdict = (
            "no overfitting: validation accuracy is at or above training accuracy (training figures are "
            "taken with dropout/augmentation on), so the model generalises to unseen digits"
        )
    else:
        verdict = (
            f"no meaningful overfitting: training and validation accuracy are within "
            f"{best['accuracy_gap'] * 100:.2f} points at the best epoch"
        )
    return {
        "best_epoch": best,
        "last_epoch": last,
        "val_loss_rise_after_best": round(float(loss_rise), 4),
        "verdict": verdict,
    }


def random_sample(probabilities: np.ndarray, labels: np.ndarray, class_names, *, right: int = SAMPLE_RIGHT,
                  wrong: int = SAMPLE_WRONG, seed: int = SAMPLE_SEED) -> dict:
    """Random test images (seeded) with the model's answer: `right` drawn from the correct answers
    and `wrong` from the mistakes, shuffled together. The picture shows mistakes as they come,
    not only the worst ones; the real share of mistakes is stated next to it."""
    rng = np.random.default_rng(seed)
    predicted = probabilities.argmax(axis=1)
    hits = np.flatnonzero(predicted == labels)
    misses = np.flatnonzero(predicted != labels)
    chosen = np.concatenate([
        rng.choice(hits, min(right, len(hits)), replace=False),
        rng.choice(misses, min(wrong, len(misses)), replace=False),
    ]).astype(np.int64)
    rng.shuffle(chosen)
    return {
        "seed": seed,
        "images": [
            {
                "index": int(i),
                "true": class_names[labels[i]],
                "predicted": class_names[predicted[i]],
                "confidence": round(float(probabilities[i].max()), 4),
                "correct": bool(predicted[i] == labels[i]),
            }
            for i in chosen
        ],
    }


def loss_and_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Categorical cross-entropy and accuracy of softmax outputs against integer labels."""
    true_p = np.clip(probabilities[np.arange(len(labels)), labels], LOSS_EPSILON, 1.0)
    return float(-np.log(true_p).mean()), float((probabilities.argmax(axis=1) == labels).mean())


def analyse(probabilities: np.ndarray, labels: np.ndarray, history: dict, class_names) -> dict:
    """Every test-set and training-history figure that goes into metrics.json."""
    class_names = list(class_names)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, len(class_names))
    test_loss, test_accuracy = loss_and_accuracy(probabilities, labels)
    return {
        "test_accuracy": round(test_accuracy, 4),
        "test_loss": round(test_loss, 4),
        "per_class": per_class_scores(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
        "most_confused": most_confused_pairs(matrix, class_names),
        "mistakes": mistakes(probabilities, labels, class_names),
        "overfitting": overfitting(history),
        "calibration": calibration_summary(probabilities, labels),
        "sample": random_sample(probabilities, labels, class_names),
    }
