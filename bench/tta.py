"""Test-time shifts, measured on trained models: the network alone against the same weights read
with 4 and with 8 one-pixel shifts, through the graph the export converts.

    python bench/tta.py MODEL_DIR_OR_KERAS... [--data-dir D]

For each model: MNIST test accuracy of the network in one pass, and of
trainer.models.with_test_time_shifts with SHIFTS_4 (up, down, left, right: 5 passes) and with the
diagonals too (9 passes); then the mean ± sd over the models (one per seed). The shifts are fixed
in advance, never chosen on the test set. The default CNN recipe reads with SHIFTS_4 in its export
(docs/training.md).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

DIAGONALS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


def tta_accuracies(model, images: np.ndarray, labels: np.ndarray) -> list[float]:
    """[one pass, 4 shifts, 8 shifts] accuracies of one Keras model on [N, 28, 28] images in [0, 1]."""
    from mnist_edge.trainer.models import SHIFTS_4, with_test_time_shifts

    readers = [model, with_test_time_shifts(model, SHIFTS_4), with_test_time_shifts(model, SHIFTS_4 + DIAGONALS)]
    return [float((r.predict(images, batch_size=500, verbose=0).argmax(1) == labels).mean()) for r in readers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders (with model.keras) or .keras files")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", "../shared/data/mnist"))
    args = parser.parse_args()
    import keras

    from mnist_edge.data import load_dataset

    test = load_dataset(args.data_dir).test
    images, labels = test.images.astype(np.float32) / 255.0, test.labels
    rows = []
    print("| model | one pass | 4 shifts | 8 shifts |\n|---|---:|---:|---:|")
    for path in args.models:
        keras_file = path / "model.keras" if path.is_dir() else path
        rows.append(tta_accuracies(keras.models.load_model(keras_file, compile=False), images, labels))
        print(f"| {path} | " + " | ".join(f"{a:.2%}" for a in rows[-1]) + " |", flush=True)
    table = np.array(rows) * 100
    sd = table.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(3)
    print("| mean ± sd | " + " | ".join(f"{m:.3f}% ± {s:.3f}" for m, s in zip(table.mean(axis=0), sd)) + " |")


if __name__ == "__main__":
    main()
