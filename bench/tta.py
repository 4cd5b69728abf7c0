"""Shift test-time augmentation, measured on trained models (a lead for issue 20, not shipped).

    python bench/tta.py MODEL_DIR_OR_KERAS... [--data-dir D]

For each model: MNIST test accuracy of the model alone, and of the sum of its probabilities on the
image and on the image moved one pixel in 4 directions (shift4) or 8 (shift8, the diagonals too).
MNIST's digits sit inside a blank 28x28 frame, so a move of one pixel (np.roll) loses no ink. Then
the mean ± sd over the models (one per seed). The shifts are fixed in advance, never chosen on the
test set. Measured in Keras only: a shipped option would live in the exported graph and be proven
like any artifact (issue 20).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SHIFT4 = [(0, 1), (0, -1), (1, 0), (-1, 0)]
SHIFT8 = SHIFT4 + [(1, 1), (1, -1), (-1, 1), (-1, -1)]


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(np.roll(images, dy, axis=1), dx, axis=2)


def tta_accuracies(model, images: np.ndarray, labels: np.ndarray) -> list[float]:
    """[alone, shift4, shift8] accuracies of one Keras model on [N, 28, 28] images in [0, 1]."""
    def probabilities(batch):
        batch = batch[..., None] if len(model.input_shape) == 4 else batch
        return model.predict(batch, batch_size=1000, verbose=0)

    alone = probabilities(images)
    moved = {shift: probabilities(shifted(images, *shift)) for shift in SHIFT8}
    sums = [alone] + [alone + sum(moved[s] for s in shifts) for shifts in (SHIFT4, SHIFT8)]
    return [float((p.argmax(1) == labels).mean()) for p in sums]


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
    print("| model | alone | shift4 | shift8 |\n|---|---:|---:|---:|")
    for path in args.models:
        keras_file = path / "model.keras" if path.is_dir() else path
        rows.append(tta_accuracies(keras.models.load_model(keras_file, compile=False), images, labels))
        print(f"| {path} | " + " | ".join(f"{a:.2%}" for a in rows[-1]) + " |", flush=True)
    table = np.array(rows) * 100
    sd = table.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(3)
    print("| mean ± sd | " + " | ".join(f"{m:.3f}% ± {s:.3f}" for m, s in zip(table.mean(axis=0), sd)) + " |")


if __name__ == "__main__":
    main()
