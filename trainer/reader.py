"""Train the number reader: a small CNN with a CTC output that reads a whole row of digits.

    mnist-edge train-reader --out artifacts/reader        # reader.keras, reader.json, the fields it learnt from

It learns from fields that `mnist_edge.fields` builds from MNIST *training* digits (the generator
of the reading benchmark, with other seeds: the benchmark's fields are of *test* digits), each
turned into the line image the runtime gives it (runtime/sequence.py: the field's marks after
line and speck removal, cropped, `height` rows). `mnist-edge export MODEL --reader DIR` converts
it to ONNX, proves it and publishes it with the digit model (export/reader.py).

The model: [batch, height, width, 1] -> three conv blocks (stride 4 along the row, 8 along the
height) -> a (height/8 x 1) convolution that collapses the rows -> two 1-D convolutions along the
row -> 11 logits per 4 columns (10 digits, CTC's blank). 170,043 parameters.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.errors import MnistEdgeError

MODEL_FILE = "reader.keras"
RECORD_FILE = "reader.json"
DATA_FILE = "fields-{seed}.npz"  # the line images of one seed's fields, kept to train again without regenerating
MAX_DIGITS = 12


class ReaderTrainingError(MnistEdgeError):
    """The reader could not be trained (bad options, unusable output folder)."""


@dataclass(frozen=True)
class ReaderConfig:
    fields: int = 12_000  # per seed
    seeds: tuple[int, ...] = (1001, 1002, 1003)
    epochs: int = 8
    batch: int = 32
    peak_lr: float = 2e-3
    seed: int = 1  # weights, dropout and batch order
    jobs: int = 2  # processes generating the fields


def rules() -> dict:
    """The line image's geometry and the CTC blank: number_spec.json's "sequence" section."""
    from mnist_edge.runtime.number import load_spec

    return dict(load_spec()["sequence"])


# --- the fields, as line images ----------------------------------------------------------------


def field_lines(images: np.ndarray, labels: np.ndarray, count: int, seed: int):
    """(line image, text, group) for each of `count` generated fields of these digits."""
    from mnist_edge.fields import make_fields
    from mnist_edge.runtime import number, sequence

    spec, geometry = number.load_spec(), rules()
    for f in make_fields(images, labels, count, seed=seed):
        field, _, pieces, _ = number.field_marks(f.image, spec)
        line = sequence.line_image(field, pieces, geometry)
        yield line.image, f.text, f.group


def _make_seed(args) -> tuple[int, str]:
    """One seed's fields, saved as float16 line images (what training reads back)."""
    path, count, seed, data_dir = args
    from mnist_edge.data import load_dataset

    train = load_dataset(data_dir).train
    lines = list(field_lines(train.images, train.labels, count, seed))
    widths = np.array([im.shape[1] for im, _, _ in lines])
    flat = np.zeros((len(lines), lines[0][0].shape[0], widths.max()), np.float16)
    for k, (im, _, _) in enumerate(lines):
        flat[k, :, : im.shape[1]] = im
    texts = np.array([t for _, t, _ in lines])
    partial = Path(str(path) + ".partial.npz")
    np.savez_compressed(partial, images=flat, widths=widths, texts=texts, groups=np.array([g for _, _, g in lines]))
    os.replace(partial, path)
    return seed, f"{len(lines):,} fields, {widths.min()}-{widths.max()} columns"


def make_data(out: Path, config: ReaderConfig, data_dir, stream: TextIO) -> list[Path]:
    """The training fields of every seed (reused when already generated with the same count)."""
    paths, todo = [], []
    for seed in config.seeds:
        path = out / DATA_FILE.format(seed=seed)
        paths.append(path)
        if path.is_file() and len(np.load(path)["widths"]) == config.fields:
            print(f"  fields of seed {seed}: reusing {path}", file=stream, flush=True)
        else:
            todo.append((path, config.fields, seed, str(data_dir) if data_dir else None))
    if todo:
        start = time.time()
        print(f"  generating {len(todo) * config.fields:,} fields of MNIST training digits in {config.jobs} processes",
              file=stream, flush=True)
        if config.jobs > 1 and len(todo) > 1:
            # Spawned, not forked: the pipeline trains the reader in a process where TensorFlow's
            # thread pools already run, and a forked child must not inherit their locks.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(config.jobs, len(todo)), mp_context=context) as pool:
                done = list(pool.map(_make_seed, todo))
        else:
            done = [_make_seed(job) for job in todo]
        for seed, what in done:
            print(f"  fields of seed {seed}: {what}", file=stream, flush=True)
        print(f"  generated in {time.time() - start:.0f} s", file=stream, flush=True)
    return paths


def load_lines(paths) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    images, widths, texts = [], [], []
    for path in paths:
        data = np.load(path)
        images += [im[:, :w].astype(np.float32) for im, w in zip(data["images"], data["widths"])]
        widths += list(data["widths"])
        texts += [str(t) for t in data["texts"]]
    return images, np.array(widths), texts


# --- the model and its training ----------------------------------------------------------------


def build(height: int):
    """[batch, height, width, 1] -> [batch, width / 4, 11] logits."""
    import keras
    from keras import layers

    def conv(x, filters, name):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(momentum=0.9, name=name + "_bn")(x)
        return layers.ReLU(name=name + "_relu")(x)

    inputs = keras.Input(shape=(height, None, 1), name="field")
    x = layers.MaxPooling2D(2, name="p1")(conv(inputs, 16, "c1"))  # height/2 x W/2
    x = layers.MaxPooling2D(2, name="p2")(conv(conv(x, 32, "c2"), 32, "c3"))  # height/4 x W/4
    x = layers.MaxPooling2D((2, 1), name="p3")(conv(conv(x, 64, "c4"), 64, "c5"))  # height/8 x W/4
    x = layers.Conv2D(96, (height // 8, 1), padding="valid", use_bias=False, name="collapse")(x)  # 1 x W/4
    x = layers.ReLU(name="collapse_relu")(layers.BatchNormalization(momentum=0.9, name="collapse_bn")(x))
    x = layers.Reshape((-1, 96), name="columns")(x)
    x = layers.Conv1D(96, 5, padding="same", activation="relu", name="t1")(x)
    x = layers.Conv1D(96, 3, padding="same", activation="relu", name="t2")(layers.Dropout(0.2, name="drop")(x))
    return keras.Model(inputs, layers.Dense(11, name="logits")(x), name="reader")


def padded(images, widths, rows, stride: int) -> np.ndarray:
    """The line images of `rows` side by side in one batch, padded to a multiple of `stride` columns."""
    width = int(max(widths[k] for k in rows))
    x = np.zeros((len(rows), images[rows[0]].shape[0], width + (-width) % stride, 1), np.float32)
    for j, k in enumerate(rows):
        x[j, :, : widths[k], 0] = images[k]
    return x


def batches(images, widths, texts, rng, batch: int, stride: int):
    """Batches of fields of similar width, in random order: (inputs, labels -1-padded, columns)."""
    order = np.argsort(widths + rng.uniform(0, 24, len(widths)))
    chunks = [order[i : i + batch] for i in range(0, len(order), batch)]
    rng.shuffle(chunks)
    for chunk in chunks:
        x = padded(images, widths, chunk, stride)
        labels = np.full((len(chunk), MAX_DIGITS), -1, np.int32)
        for j, k in enumerate(chunk):
            labels[j, : len(texts[k])] = [int(c) for c in texts[k]]
        yield x, labels, np.full(len(chunk), x.shape[2] // stride, np.int32)


def augment(x: np.ndarray, rng) -> np.ndarray:
    """Ink strength and a vertical shift of up to 2 rows."""
    gain = rng.uniform(0.7, 1.2, (x.shape[0], 1, 1, 1)).astype(np.float32)
    return np.roll(np.clip(x * gain, 0, 1), rng.integers(-2, 3), axis=1)


def fit(paths, config: ReaderConfig, stream: TextIO):
    """The trained Keras model and its per-epoch CTC losses."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    geometry = rules()
    images, widths, texts = load_lines(paths)
    model = build(geometry["height"])
    print(f"  {model.count_params():,} parameters, {len(images):,} fields, {config.epochs} epochs", file=stream, flush=True)
    steps = config.epochs * ((len(images) + config.batch - 1) // config.batch)
    warmup = max(1, steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        config.peak_lr * 0.1, max(1, steps - warmup), alpha=0.02, warmup_target=config.peak_lr, warmup_steps=warmup
    )
    optimizer = keras.optimizers.Adam(schedule)
    blank, stride = geometry["blank"], geometry["stride"]

    @tf.function(input_signature=[
        tf.TensorSpec([None, geometry["height"], None, 1], tf.float32), tf.TensorSpec([None, MAX_DIGITS], tf.int32),
        tf.TensorSpec([None], tf.int32)])
    def step(x, labels, frames):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            sparse = tf.sparse.from_dense(labels + 1)  # -1 padding -> 0, dropped
            sparse = tf.SparseTensor(sparse.indices, sparse.values - 1, sparse.dense_shape)
            loss = tf.reduce_mean(tf.nn.ctc_loss(sparse, logits, None, frames, logits_time_major=False, blank_index=blank))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    rng, start, losses = np.random.default_rng(0), time.time(), []
    for epoch in range(config.epochs):
        epoch_losses = [
            float(step(augment(x, rng), labels, frames))
            for x, labels, frames in batches(images, widths, texts, rng, config.batch, stride)
        ]
        losses.append(round(float(np.mean(epoch_losses)), 5))
        print(f"  epoch {epoch + 1}/{config.epochs}  CTC loss {losses[-1]:.4f}  {time.time() - start:.0f} s", file=stream, flush=True)
    return model, losses


def train_reader(out: str | os.PathLike, config: ReaderConfig = ReaderConfig(), *, data_dir=None, stream: TextIO | None = None) -> Path:
    """Generate the fields (or reuse them), train, and write reader.keras and reader.json into
    `out` (created if missing; only these files and the fields' .npz are written there). The
    previous reader.keras stays until the new one is saved whole."""
    stream = stream or sys.stdout
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReaderTrainingError(f"{out} is a file; give a folder for the reader")
    if out.is_dir() and not _reader_folder(out):
        raise ReaderTrainingError(
            f"{out} holds files that are not a number reader's; give a new or empty folder (or a reader's, to train again)"
        )
    if config.fields < 1 or config.epochs < 1 or not config.seeds:
        raise ReaderTrainingError("--fields and --epochs must be at least 1, with at least one seed")
    from mnist_edge.data import load_dataset

    dataset = load_dataset(data_dir)  # fails fast on missing data, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    print(f"Training the number reader in {out}", file=stream, flush=True)
    paths = make_data(out, config, dataset.source, stream)
    generated = time.time() - start
    model, losses = fit(paths, config, stream)
    partial = out / (MODEL_FILE + ".partial.keras")
    model.save(partial)
    os.replace(partial, out / MODEL_FILE)
    record = {
        "params": int(model.count_params()),
        "config": {**asdict(config), "seeds": list(config.seeds)},
        "geometry": rules(),
        "trained_on": (
            f"{len(config.seeds) * config.fields:,} fields of MNIST training digits (mnist_edge.fields, seeds "
            f"{', '.join(map(str, config.seeds))}), {config.epochs} epochs"
        ),
        "data": dataset.source,
        "losses": losses,
        "generate_seconds": round(generated, 1),
        "train_seconds": round(time.time() - start - generated, 1),
    }
    from mnist_edge.files import atomic_write_text

    atomic_write_text(out / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    print(f"Saved {out / MODEL_FILE} ({record['params']:,} parameters; fields {generated:.0f} s, "
          f"training {record['train_seconds']:.0f} s)", file=stream, flush=True)
    return out / MODEL_FILE


def _reader_folder(folder: Path) -> bool:
    """Empty, or holding only what train_reader writes (it never writes among a user's files)."""
    own = (MODEL_FILE, RECORD_FILE, MODEL_FILE + ".partial.keras")
    return all(p.name in own or (p.name.startswith("fields-") and p.name.endswith(".npz")) for p in folder.iterdir())


def read_reader_record(folder: Path) -> dict:
    """reader.json of a trained reader, or a ReaderTrainingError saying what is missing."""
    model, record = Path(folder) / MODEL_FILE, Path(folder) / RECORD_FILE
    if not model.is_file() or not record.is_file():
        raise ReaderTrainingError(f"no trained reader in {folder} (expected {MODEL_FILE} and {RECORD_FILE}): run `mnist-edge train-reader --out {folder}`")
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReaderTrainingError(f"{record}: unreadable ({exc})") from exc
