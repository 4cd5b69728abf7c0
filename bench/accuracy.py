"""Accuracy benchmark: train the models from scratch on full MNIST, next to the keras.io "Simple
MNIST convnet" trained in the same run as the yardstick, and print one table.

    python bench/accuracy.py [--out bench-artifacts] [--seeds 42] [--models mlp,cnn] [--previous]
                             [--no-yardstick] [--data-dir D]

For each model and seed: parameters, epochs run (best), training seconds, those seconds as a
multiple of the yardstick's, test accuracy and test loss on the 10,000 test images. --previous
also trains the previous CNN (cnn_v1, trainer.models.build_cnn_v1 with its 20-epoch recipe).
The table goes to OUT/accuracy.md as markdown. Training seconds are wall-clock on whatever else
the machine is doing: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_edge.data import Dataset, load_dataset, scale_images  # noqa: E402
from mnist_edge.trainer.train import TrainConfig, seed_everything, train  # noqa: E402

YARDSTICK = "keras.io convnet"
# https://keras.io/examples/vision/mnist_convnet/ (fchollet), as published.
YARDSTICK_BATCH_SIZE = 128
YARDSTICK_EPOCHS = 15


def keras_io_convnet():
    """conv 32 -> pool -> conv 64 -> pool -> flatten -> dropout 0.5 -> softmax 10 (34,826 parameters)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


def train_yardstick(dataset: Dataset, seed: int) -> dict:
    """The keras.io example's own training: Adam at its default rate, batch 128, 15 epochs, the
    last 10% of the training images for validation, no augmentation. Seeded like our models
    (which also turns on deterministic kernels, as for them)."""
    import keras

    seed_everything(seed)
    x_train = scale_images(dataset.train.images)[..., None]
    y_train = keras.utils.to_categorical(dataset.train.labels, 10)
    model = keras_io_convnet()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    finished = {}

    class TrainingEnd(keras.callbacks.Callback):
        # Timed to the end of training, not to fit()'s return: destroying Keras's tf.data iterator
        # can wait up to a minute for the autotuning thread (trainer.train._fixed_parallelism
        # avoids that for our models); counting that stall would flatter our ratio.
        def on_train_end(self, logs=None):
            finished["at"] = time.monotonic()

    start = time.monotonic()
    model.fit(
        x_train, y_train, batch_size=YARDSTICK_BATCH_SIZE, epochs=YARDSTICK_EPOCHS, validation_split=0.1, verbose=0,
        callbacks=[TrainingEnd()],
    )
    seconds = finished["at"] - start
    x_test = scale_images(dataset.test.images)[..., None]
    y_test = keras.utils.to_categorical(dataset.test.labels, 10)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"{YARDSTICK}: test accuracy {accuracy:.4f} in {seconds:.0f}s", flush=True)
    return {
        "model": YARDSTICK, "params": model.count_params(), "epochs_run": YARDSTICK_EPOCHS, "best_epoch": YARDSTICK_EPOCHS,
        "train_seconds": seconds, "test_accuracy": accuracy, "test_loss": loss,
    }


def table(rows: list[tuple[int, dict]], yardstick_seconds: dict[int, float]) -> str:
    lines = [
        "| model | seed | parameters | epochs run (best) | training s | x keras.io time | test accuracy | test loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, m in rows:
        ratio = f"{m['train_seconds'] / yardstick_seconds[seed]:.2f}" if seed in yardstick_seconds else "-"
        lines.append(
            f"| {m['model']} | {seed} | {m['params']:,} | {m['epochs_run']} ({m['best_epoch']}) | {m['train_seconds']:.0f} "
            f"| {ratio} | {m['test_accuracy']:.2%} | {m['test_loss']:.4f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts"))
    parser.add_argument("--seeds", default="42", help="comma-separated seeds; every model is trained once per seed")
    parser.add_argument("--data-dir")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--previous", action="store_true", help="also train the previous CNN (cnn_v1)")
    parser.add_argument("--no-yardstick", action="store_true", help="skip the keras.io convnet")
    args = parser.parse_args()

    dataset = load_dataset(args.data_dir)
    models = args.models.split(",") + (["cnn_v1"] if args.previous else [])
    rows, yardstick_seconds = [], {}
    for seed in (int(s) for s in args.seeds.split(",")):
        if not args.no_yardstick:
            result = train_yardstick(dataset, seed)
            yardstick_seconds[seed] = result["train_seconds"]
            rows.append((seed, result))
        for name in models:
            rows.append((seed, train(dataset, TrainConfig(model=name, seed=seed), args.out / f"seed-{seed}")))
    text = table(rows, yardstick_seconds)
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
