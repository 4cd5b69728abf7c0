"""Experiment (issue 19): read a whole field with one sequence model instead of cutting it into digits.

Measured, not shipped: nothing in the runtime, the CLI or the apps uses it (docs/reading.md,
"A sequence reader: measured, not shipped"). The reader of `predictor.read` partitions the field's
ink into candidate digits and cannot read digits that interleave or cross; this model reads the
whole row at once:

    the field's ink as `read` finds it (runtime/number.py: paper, polarity, working scale, ruled
    lines, box borders and comb dividers removed, specks dropped), cropped to the digits and scaled
    to HEIGHT rows -> a small CNN (stride 4 along the row) -> 11 scores per column (10 digits and
    a blank) -> CTC: the text is the best class of each column, repeats merged, blanks dropped.

It is trained with the CTC loss on fields that `mnist_edge/fields.py` builds from MNIST *training*
digits (the same generator, conditions and spacings as the reading benchmark, other seeds), and
measured on the benchmark's own fields of MNIST *test* digits (`bench/read.py`: 1,000 fields,
seed 2026), which it never sees, in Keras and as ONNX in onnxruntime (one thread):

    python bench/sequence_reader.py data OUT/train-1001.npz --fields 12000 --seed 1001   # and 1002, 1003
    python bench/sequence_reader.py data OUT/bench.npz --fields 1000 --seed 2026 --split test
    python bench/sequence_reader.py train OUT OUT/train-1001.npz OUT/train-1002.npz OUT/train-1003.npz
    python bench/sequence_reader.py eval OUT OUT/bench.npz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

HEIGHT = 32  # rows of the model's input
PAD = 8  # empty columns either side of the ink
MAX_WIDTH = 640  # columns at most (12 wide digits and their gaps)
BLANK = 10  # the CTC blank's class
MAX_DIGITS = 12
EPOCHS = 8
BATCH = 32
PEAK_LR = 2e-3


def line_image(image: bytes, spec: dict) -> np.ndarray:
    """The field's ink with lines and specks removed, cropped to the digits, HEIGHT rows tall."""
    from mnist_edge.runtime import number

    field, _, pieces, _ = number.field_marks(image, spec)
    own = np.zeros(field.mask.shape, bool)
    for p in pieces:
        own[p.y0 : p.y1, p.x0 : p.x1] |= p.pixels
    own = number._grown(own)
    ys, xs = np.nonzero(own)
    ink = (field.ink * own)[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
    width = min(max(1, round(ink.shape[1] * HEIGHT / ink.shape[0])), MAX_WIDTH - 2 * PAD)
    scaled = np.asarray(Image.fromarray(ink, "F").resize((width, HEIGHT), Image.Resampling.BILINEAR))
    out = np.zeros((HEIGHT, width + 2 * PAD), np.float32)
    out[:, PAD : PAD + width] = np.clip(scaled, 0, 1)
    return out


def make_data(path: Path, count: int, seed: int, split: str, data_dir: str | None) -> None:
    """`count` generated fields of one split's digits as line images, saved to `path` (.npz)."""
    from mnist_edge.data import load_dataset
    from mnist_edge.fields import SEPARATED, make_fields
    from mnist_edge.runtime import number

    spec = number.load_spec()
    part = getattr(load_dataset(data_dir), split)
    images, texts, groups = [], [], []
    start = time.time()
    for f in make_fields(part.images, part.labels, count, seed=seed):
        images.append(line_image(f.image, spec))
        texts.append(f.text)
        groups.append("separated" if f.spacing in SEPARATED else "touching or overlapping")
    widths = np.array([im.shape[1] for im in images])
    flat = np.zeros((len(images), HEIGHT, widths.max()), np.float16)
    for k, im in enumerate(images):
        flat[k, :, : im.shape[1]] = im
    np.savez_compressed(path, images=flat, widths=widths, texts=np.array(texts), groups=np.array(groups))
    print(f"{len(images)} fields in {time.time() - start:.0f}s, {widths.min()}-{widths.max()} columns (mean {widths.mean():.0f})")


def build():
    """The sequence model: [batch, HEIGHT, width, 1] -> [batch, width / 4, 11] scores (logits)."""
    import keras
    from keras import layers

    def conv(x, filters, name):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(momentum=0.9, name=name + "_bn")(x)
        return layers.ReLU(name=name + "_relu")(x)

    inputs = keras.Input(shape=(HEIGHT, None, 1), name="field")
    x = layers.MaxPooling2D(2, name="p1")(conv(inputs, 16, "c1"))  # 16 x W/2
    x = layers.MaxPooling2D(2, name="p2")(conv(conv(x, 32, "c2"), 32, "c3"))  # 8 x W/4
    x = layers.MaxPooling2D((2, 1), name="p3")(conv(conv(x, 64, "c4"), 64, "c5"))  # 4 x W/4
    x = layers.Conv2D(96, (4, 1), padding="valid", use_bias=False, name="collapse")(x)  # 1 x W/4
    x = layers.ReLU(name="collapse_relu")(layers.BatchNormalization(momentum=0.9, name="collapse_bn")(x))
    x = layers.Reshape((-1, 96), name="columns")(x)
    x = layers.Conv1D(96, 5, padding="same", activation="relu", name="t1")(x)
    x = layers.Conv1D(96, 3, padding="same", activation="relu", name="t2")(layers.Dropout(0.2, name="drop")(x))
    return keras.Model(inputs, layers.Dense(11, name="logits")(x), name="sequence")


def load(paths):
    images, widths, texts, groups = [], [], [], []
    for path in paths:
        data = np.load(path)
        images += [im[:, :w] for im, w in zip(data["images"], data["widths"])]
        widths += list(data["widths"])
        texts += [str(t) for t in data["texts"]]
        groups += [str(g) for g in data["groups"]]
    return images, np.array(widths), texts, groups


def padded(images, widths, rows) -> np.ndarray:
    """The line images of `rows` side by side in one batch, padded to a multiple of 4 columns."""
    width = int(max(widths[k] for k in rows))
    x = np.zeros((len(rows), HEIGHT, width + (-width) % 4, 1), np.float32)
    for j, k in enumerate(rows):
        x[j, :, : widths[k], 0] = images[k]
    return x


def batches(images, widths, texts, rng):
    """Batches of fields of similar width, in random order: (inputs, labels -1-padded, frames)."""
    order = np.argsort(widths + rng.uniform(0, 24, len(widths)))
    chunks = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    rng.shuffle(chunks)
    for chunk in chunks:
        x = padded(images, widths, chunk)
        labels = np.full((len(chunk), MAX_DIGITS), -1, np.int32)
        for j, k in enumerate(chunk):
            labels[j, : len(texts[k])] = [int(c) for c in texts[k]]
        yield x, labels, np.full(len(chunk), x.shape[2] // 4, np.int32)


def augment(x, rng):
    """Ink strength and a vertical shift of up to 2 rows."""
    gain = rng.uniform(0.7, 1.2, (x.shape[0], 1, 1, 1)).astype(np.float32)
    return np.roll(np.clip(x * gain, 0, 1), rng.integers(-2, 3), axis=1)


def train(out: Path, paths: list[str], epochs: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    tf.config.experimental.enable_op_determinism()
    images, widths, texts, _ = load(paths)
    model = build()
    print(f"{model.count_params():,} parameters, {len(images):,} fields", flush=True)
    steps = epochs * ((len(images) + BATCH - 1) // BATCH)
    schedule = keras.optimizers.schedules.CosineDecay(
        PEAK_LR * 0.1, steps - steps // 10, alpha=0.02, warmup_target=PEAK_LR, warmup_steps=steps // 10
    )
    optimizer = keras.optimizers.Adam(schedule)

    @tf.function(input_signature=[
        tf.TensorSpec([None, HEIGHT, None, 1], tf.float32), tf.TensorSpec([None, MAX_DIGITS], tf.int32),
        tf.TensorSpec([None], tf.int32)])
    def step(x, labels, frames):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            sparse = tf.sparse.from_dense(labels + 1)  # -1 padding -> 0, dropped
            sparse = tf.SparseTensor(sparse.indices, sparse.values - 1, sparse.dense_shape)
            loss = tf.reduce_mean(tf.nn.ctc_loss(sparse, logits, None, frames, logits_time_major=False, blank_index=BLANK))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rng, start = np.random.default_rng(0), time.time()
    for epoch in range(epochs):
        losses = [float(step(augment(x, rng), labels, frames)) for x, labels, frames in batches(images, widths, texts, rng)]
        print(f"epoch {epoch + 1}/{epochs}  CTC loss {np.mean(losses):.4f}  {time.time() - start:.0f}s", flush=True)
    model.save(out / "sequence.keras")
    to_onnx(model, out / "sequence.onnx")


def to_onnx(model, path: Path) -> None:
    """The model with a softmax, as ONNX with a free batch and width."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec([None, HEIGHT, None, 1], tf.float32, name="field"),)

    @tf.function(input_signature=spec)
    def probabilities(x):
        return tf.nn.softmax(model(x, training=False), axis=-1)

    tf2onnx.convert.from_function(probabilities, input_signature=spec, opset=17, output_path=str(path))
    print(f"{path}: {path.stat().st_size:,} bytes")


def greedy(scores: np.ndarray) -> str:
    """CTC's best path: the best class of each column, repeats merged, blanks dropped."""
    best = scores.argmax(axis=1)
    keep = (best != BLANK) & np.concatenate([[True], best[1:] != best[:-1]])
    return "".join(str(c) for c in best[keep])


def evaluate(out: Path, path: str) -> None:
    """Whole-field accuracy by group, in Keras and in onnxruntime (one thread), and ONNX's time."""
    import keras
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out / "sequence.onnx"), options, providers=["CPUExecutionProvider"])
    model = keras.models.load_model(out / "sequence.keras")
    images, widths, texts, groups = load([path])
    right, seen, agree, times = {}, {}, 0, []
    for k in range(len(images)):
        x = padded(images, widths, [k])
        start = time.perf_counter()
        text = greedy(session.run(None, {session.get_inputs()[0].name: x})[0][0])
        times.append(time.perf_counter() - start)
        agree += text == greedy(np.asarray(model(x, training=False))[0])
        for group in (groups[k], "all"):
            seen[group] = seen.get(group, 0) + 1
            right[group] = right.get(group, 0) + (text == texts[k])
    for group in sorted(seen):
        print(f"{group}: {100 * right[group] / seen[group]:.1f}% of {seen[group]} fields read whole")
    print(f"ONNX and Keras read the same text on {agree} of {len(images)} fields; "
          f"onnxruntime, one thread: {1000 * np.median(times):.2f} ms per field (median, the model alone)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="generate fields as line images")
    data.add_argument("path", type=Path)
    data.add_argument("--fields", type=int, default=12000)
    data.add_argument("--seed", type=int, default=1001)
    data.add_argument("--split", choices=("train", "test"), default="train")
    data.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR"))
    fit = commands.add_parser("train", help="train, then export sequence.onnx")
    fit.add_argument("out", type=Path)
    fit.add_argument("data", nargs="+")
    fit.add_argument("--epochs", type=int, default=EPOCHS)
    check = commands.add_parser("eval", help="whole-field accuracy in Keras and ONNX")
    check.add_argument("out", type=Path)
    check.add_argument("data")
    args = parser.parse_args(argv)
    if args.command == "train" and args.out.exists() and not args.out.is_dir():
        parser.error(f"{args.out} is a file; give a folder for the model")
    if args.command == "eval" and not (args.out / "sequence.onnx").is_file():
        parser.error(f"no trained model in {args.out}: run `train` first")
    if args.command == "data":
        make_data(args.path, args.fields, args.seed, args.split, args.data_dir)
    elif args.command == "train":
        args.out.mkdir(parents=True, exist_ok=True)
        train(args.out, args.data, args.epochs)
    else:
        evaluate(args.out, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
