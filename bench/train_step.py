"""What one training step costs: milliseconds per batch for the CNN, the previous CNN and the
keras.io convnet, in float32, bfloat16 mixed precision and with XLA, with and without the
augmentation in the input pipeline. Every variant is measured in each of --rounds rounds
(interleaved, so a busy moment of the machine spreads over all of them); the table shows the
median.

    python bench/train_step.py [--batch 128] [--steps 40] [--rounds 2] [--out FILE]

The levers this measures are the ones docs/training.md weighs; accuracy needs full runs
(bench/accuracy.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from accuracy import keras_io_convnet  # noqa: E402

from mnist_edge.data import load_dataset, scale_images  # noqa: E402
from mnist_edge.trainer.models import build_cnn, build_cnn_v1  # noqa: E402
from mnist_edge.trainer.train import _augmenter, seed_everything  # noqa: E402

WARMUP_STEPS = 8  # tracing and first-call allocations, not counted
MODELS = {"cnn": build_cnn, "cnn_v1": build_cnn_v1, "keras.io convnet": keras_io_convnet}
# name -> (dtype policy, XLA, augmentation)
VARIANTS = {
    "float32": ("float32", False, False),
    "float32 + augmentation": ("float32", False, True),
    "bfloat16 mixed": ("mixed_bfloat16", False, False),
    "float32 + XLA": ("float32", True, False),
}


def multiply_adds(model) -> int:
    """Multiply-adds of one image through the convolution and dense layers."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, out = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += h * w * out * kh * kw * layer.input.shape[-1]
        elif kind == "Dense":
            total += layer.input.shape[-1] * layer.units
    return int(total)


def step_ms(build, images, labels, batch: int, steps: int, policy: str, xla: bool, augment: bool) -> tuple[float, int, int]:
    """Median milliseconds per training step, parameters and multiply-adds per image."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"], jit_compile=xla)
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True).cache().repeat()
        if augment:
            data = data.enumerate().map(_augmenter(0), num_parallel_calls=tf.data.AUTOTUNE)
        if len(model.input_shape) == 4:  # the keras.io convnet takes [28, 28, 1]
            data = data.map(lambda x, y: (x[..., None], y))
        data = data.prefetch(tf.data.AUTOTUNE)
        ends = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                ends.append(time.perf_counter())

        model.fit(data, steps_per_epoch=WARMUP_STEPS + steps, epochs=1, verbose=0, callbacks=[Clock()])
        return float(np.median(np.diff(ends[WARMUP_STEPS - 1:])) * 1000), model.count_params(), multiply_adds(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import keras
    import numpy as np

    seed_everything(0)
    train = load_dataset(args.data_dir).train.head(args.batch * 16)
    images, labels = scale_images(train.images), keras.utils.to_categorical(train.labels, 10)
    times: dict[tuple[str, str], list[float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for round_ in range(args.rounds):
        for variant, (policy, xla, augment) in VARIANTS.items():
            for name, build in MODELS.items():
                ms, params, macs = step_ms(build, images, labels, args.batch, args.steps, policy, xla, augment)
                times.setdefault((name, variant), []).append(ms)
                sizes[name] = (params, macs)
                print(f"round {round_ + 1}: {name:<17} {variant:<23} {ms:7.1f} ms/step", flush=True)
    lines = [
        f"Milliseconds per training step of {args.batch} images (median of {args.rounds} rounds x {args.steps} steps):",
        "",
        "| model | parameters | multiply-adds per image | " + " | ".join(VARIANTS) + " |",
        "|---|---|---|" + "---|" * len(VARIANTS),
    ]
    for name in MODELS:
        cells = [f"{np.median(times[(name, v)]):.0f}" for v in VARIANTS]
        lines.append(f"| {name} | {sizes[name][0]:,} | {sizes[name][1] / 1e6:.1f}M | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
