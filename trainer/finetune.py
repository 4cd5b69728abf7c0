"""Teach a trained model someone's own handwriting without forgetting MNIST.

    mnist-edge finetune artifacts/cnn --data my-digits/ --out artifacts/cnn-mine

1. Read the person's labelled folder (mnist_edge.imagefolder) and prepare every image exactly as
   the runtime will at prediction time; an unreadable or blank file stops here, nothing written.
2. Hold out a stratified, seeded share of it: the before/after figure is measured on digits the
   fine-tuning never saw.
3. Train from the trained weights on the person's samples (each seen several times per epoch,
   augmented) mixed with MNIST training images (replay, so it does not forget), at a tenth of the
   model's own learning rate, for a few epochs.
4. Measure the held-out samples and the MNIST test set, before and after. If MNIST test accuracy
   fell by more than the limit, refuse: nothing is written and the source model is untouched.
   Otherwise write a normal model folder (model.keras, metrics.json, report.md, plots) that
   `export`, `verify`, `predict`, the demo and the web app take like any other.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.data import Dataset, scale_images, split_train_validation
from mnist_edge.errors import MnistEdgeError, require
from mnist_edge.files import atomic_write_text, check_replaceable, mark_written, process_alive
from mnist_edge.imagefolder import ImageFolder, read_image_folder
from mnist_edge.manifest import InputSpec
from mnist_edge.trainer.models import RECIPES, with_test_time_shifts
from mnist_edge.trainer.record import METRICS_FILE, MODEL_FILE, DataRecord, TrainingRecord, load_training_data, read_record

DEFAULT_EPOCHS = 5
DEFAULT_HOLDOUT = 0.3
MAX_MNIST_DROP = 0.003  # 0.3 points of MNIST test accuracy
PERSONAL_REPEATS = 8  # each of the person's training images is seen this often per epoch, augmented anew
REPLAY_RATIO = 4  # MNIST training images per personal image in each epoch...
MIN_REPLAY = 6000  # ...and at least this many
LEARNING_RATE_SHARE = 0.1  # of the model's own recipe: adjust the weights, do not retrain them
PROBLEMS_SHOWN = 3


class FinetuneError(MnistEdgeError):
    """The fine-tuning cannot start: bad data, too few samples, a bad destination."""

    exit_code = 2


class FinetuneRefused(MnistEdgeError):
    """The fine-tuned model forgot too much of MNIST; nothing was published."""


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = DEFAULT_EPOCHS
    holdout: float = DEFAULT_HOLDOUT
    max_mnist_drop: float = MAX_MNIST_DROP
    seed: int = 42


@dataclass(frozen=True)
class Personal:
    """The person's samples as model inputs, with the held-out part marked."""

    x: np.ndarray  # float32 [N, H, W]
    y: np.ndarray  # int [N]
    paths: tuple[Path, ...]
    held_out: np.ndarray  # bool [N]


# --- the person's data ---------------------------------------------------------------------------


def prepare_folder(folder: ImageFolder, spec: InputSpec) -> tuple[np.ndarray, np.ndarray, tuple[Path, ...]]:
    """Every sample as the runtime prepares it for this model; any unreadable or blank file is an error."""
    from mnist_edge.runtime import PreprocessError
    from mnist_edge.runtime.preprocess import preparer

    prepare = preparer(spec)
    inputs, problems = [], []
    for sample in folder.samples:
        try:
            inputs.append(prepare(sample.path))
        except PreprocessError as exc:  # "no digit found" does not name the file: say which one
            problems.append(str(exc) if str(sample.path) in str(exc) else f"{sample.path}: {exc}")
    if problems:
        more = f" (and {len(problems) - PROBLEMS_SHOWN} more)" if len(problems) > PROBLEMS_SHOWN else ""
        raise FinetuneError(
            f"{len(problems)} of {len(folder.samples)} files in {folder.root} cannot be used: "
            + "; ".join(problems[:PROBLEMS_SHOWN]) + more + "; fix or remove them (nothing was written)"
        )
    return np.stack(inputs), np.array([s.label for s in folder.samples]), tuple(s.path for s in folder.samples)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded mask holding out `fraction` of each class (rounded), never a class's only sample."""
    if not 0 < fraction < 1:
        raise FinetuneError(f"--holdout must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        held[idx[: min(len(idx) - 1, int(round(len(idx) * fraction)))]] = True
    return held


def load_personal(folder: ImageFolder, spec: InputSpec, config: FinetuneConfig) -> Personal:
    x, y, paths = prepare_folder(folder, spec)
    held = stratified_holdout(y, config.holdout, config.seed)
    if not held.any() or held.all():
        raise FinetuneError(
            f"{folder.root}: {len(y)} images are too few to hold {config.holdout:.0%} out for the before/after "
            "figure and still train on the rest; add more (a few per class at least) or change --holdout"
        )
    return Personal(x, y, paths, held)


# --- training ------------------------------------------------------------------------------------


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    probabilities = model.predict(x, batch_size=1024, verbose=0)
    return float((probabilities.argmax(axis=1) == y).mean())


def _training_set(personal: Personal, dataset: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray, Dataset]:
    """The person's training images repeated, mixed with a seeded sample of MNIST training images;
    and MNIST's own validation hold-out for the curves."""
    fit_split, val_split = split_train_validation(dataset.train, 0.1, seed)
    mine_x = np.repeat(personal.x[~personal.held_out], PERSONAL_REPEATS, axis=0)
    mine_y = np.repeat(personal.y[~personal.held_out], PERSONAL_REPEATS, axis=0)
    replay = min(len(fit_split), max(MIN_REPLAY, REPLAY_RATIO * len(mine_x)))
    pick = np.random.default_rng(seed).choice(len(fit_split), replay, replace=False)
    x = np.concatenate([mine_x, scale_images(fit_split.images[pick])])
    y = np.concatenate([mine_y, fit_split.labels[pick]])
    return x.astype(np.float32), y, val_split


def fit(model, record: TrainingRecord, personal: Personal, dataset: Dataset, config: FinetuneConfig, stream):
    """Fine-tune `model` in place; returns (history, seconds, the replay size, the learning rate)."""
    from mnist_edge.trainer.train import TrainConfig, _datasets, _epoch_logger, run_fit, seed_everything

    keras = require("keras")
    seed_everything(config.seed)
    architecture = record.architecture if record.architecture in RECIPES else "cnn"
    recipe = RECIPES[architecture]
    x, y, val_split = _training_set(personal, dataset, config.seed)
    classes = len(record.class_names)
    pipeline_config = TrainConfig(model=architecture, epochs=config.epochs, seed=config.seed, augment=True).resolved()
    fit_ds, val_ds, steps = _datasets(
        x, keras.utils.to_categorical(y, classes),
        scale_images(val_split.images), keras.utils.to_categorical(val_split.labels, classes),
        pipeline_config,
    )
    learning_rate = recipe.learning_rate * LEARNING_RATE_SHARE
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy", metrics=["accuracy"])
    print(
        f"Fine-tuning {record.model_dir.name}: {int((~personal.held_out).sum())} of your images "
        f"(x{PERSONAL_REPEATS} per epoch, augmented) with {len(x) - PERSONAL_REPEATS * int((~personal.held_out).sum()):,} "
        f"MNIST training images, {config.epochs} epochs at learning rate {learning_rate:g}",
        file=stream,
        flush=True,
    )
    start = time.monotonic()
    history = run_fit(model, fit_ds, val_ds, config.epochs, steps, [_epoch_logger(config.epochs, stream)])
    return history, time.monotonic() - start, len(x) - PERSONAL_REPEATS * int((~personal.held_out).sum()), learning_rate


# --- the whole loop ------------------------------------------------------------------------------


def finetune(
    source: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    data_dir: str | os.PathLike | None = None,
    signing_key: str | os.PathLike | None = None,
    stream: TextIO | None = None,
) -> dict:
    """Fine-tune the model in `source` on the labelled folder `data`; publish it to `out` unless
    it forgot MNIST. Returns the new model's metrics. With a signing key (`signing_key`, else
    $MNIST_EDGE_SIGNING_KEY) the model folder is signed before it is published (out/model.sig,
    its export/ folders left out: they carry their own signature)."""
    stream = stream or sys.stdout
    from mnist_edge.signature import configured_signing_key, load_signing_key

    source, out = Path(source), Path(out)
    if not (source / MODEL_FILE).is_file():
        raise FinetuneError(f"{source / MODEL_FILE}: no trained model here")
    if out.resolve() == source.resolve():
        raise FinetuneError(f"--out {out} is the source model's folder; choose another (e.g. {source}-mine)")
    if (key := configured_signing_key(signing_key)) is not None:
        load_signing_key(key)  # a bad key fails now, not after the training
    check_replaceable(out, protected=(Path(data), source))
    clean_leftovers(out)
    staging = make_staging(out)  # now, not after training: a destination that cannot be written fails fast
    try:
        return _finetune(source, data, out, staging, config, data_dir, signing_key, stream)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _finetune(source: Path, data, out: Path, staging: Path, config: FinetuneConfig, data_dir, signing_key, stream) -> dict:
    record = read_record(source)
    folder = read_image_folder(data, record.class_names)
    keras = require("keras")
    model = keras.models.load_model(source / MODEL_FILE, compile=False)
    spec = InputSpec.for_images("image", *(int(d) for d in model.input_shape[1:]), record.preprocessing)
    personal = load_personal(folder, spec, config)
    dataset = load_training_data(record, data_dir)
    test_x = scale_images(dataset.test.images)
    held_x, held_y = personal.x[personal.held_out], personal.y[personal.held_out]
    # Measured as it will be exported and read: with the source's test-time shifts (same weights).
    reader = with_test_time_shifts(model, record.test_time_shifts)

    before = {"personal": _accuracy(reader, held_x, held_y), "mnist": _accuracy(reader, test_x, dataset.test.labels)}
    history, seconds, replay, learning_rate = fit(model, record, personal, dataset, config, stream)
    after = {"personal": _accuracy(reader, held_x, held_y), "mnist": _accuracy(reader, test_x, dataset.test.labels)}
    drop = before["mnist"] - after["mnist"]
    figures = (
        f"your held-out images {before['personal']:.2%} -> {after['personal']:.2%}, "
        f"MNIST test {before['mnist']:.2%} -> {after['mnist']:.2%}"
    )
    if drop > config.max_mnist_drop:
        raise FinetuneRefused(
            f"fine-tuned model not published: MNIST test accuracy fell {drop * 100:.2f} points, more than the "
            f"limit {config.max_mnist_drop * 100:.2f} ({figures}); {source} is untouched"
        )
    summary = {
        "source": str(source),
        "source_sha256": json.loads((source / METRICS_FILE).read_text()).get("model_sha256"),
        "data": str(folder.root),
        "images": len(personal.y),
        "held_out": int(personal.held_out.sum()),
        "holdout_fraction": config.holdout,
        "per_class": folder.counts(),
        "before": {k: round(v, 6) for k, v in before.items()},
        "after": {k: round(v, 6) for k, v in after.items()},
        "mnist_drop": round(drop, 6),
        "max_mnist_drop": config.max_mnist_drop,
        "epochs": config.epochs,
        "learning_rate": learning_rate,
        "personal_repeats": PERSONAL_REPEATS,
        "replay_images": replay,
        "config": asdict(config),
    }
    metrics = publish(model, record, dataset, history, seconds, summary, out, staging, signing_key)
    print(f"{out.name}: {figures}; published to {out}", file=stream, flush=True)
    return metrics


# A model folder's signature leaves out its exports (each signs its own files) and their leftovers.
MODEL_FOLDER_UNSIGNED = ("export", "export.previous", "export.rejected")


def publish(
    model, record: TrainingRecord, dataset: Dataset, history: dict, seconds: float, summary: dict, out: Path,
    staging: Path, signing_key: str | os.PathLike | None = None,
) -> dict:
    """Write the fine-tuned model folder in `staging` (next to `out`), sign it if a key is
    configured, and swap it in whole (a failed signature publishes nothing: the previous folder stays)."""
    from mnist_edge.signature import configured_signing_key, sign_folder

    from mnist_edge.trainer.analysis import analyse
    from mnist_edge.trainer.train import predict_probabilities, save_model_folder

    metrics = analyse(
        probabilities=predict_probabilities(with_test_time_shifts(model, record.test_time_shifts), dataset.test.images),
        labels=dataset.test.labels,
        history=history,
        class_names=record.class_names,
    )
    metrics.update(
        model=record.architecture,
        params=int(model.count_params()),
        train_seconds=round(seconds, 2),
        epochs_run=len(history["loss"]),
        best_epoch=len(history["loss"]),
        config=summary["config"],
        data_source=dataset.source,
        data=DataRecord.of(dataset).as_dict(),
        preprocessing=record.preprocessing,
        train_images=summary["replay_images"] + summary["images"] - summary["held_out"],
        test_images=len(dataset.test),
        class_names=list(record.class_names),
        test_time_shifts=[list(s) for s in record.test_time_shifts],
        finetune=summary,
    )
    try:
        save_model_folder(staging, model, history, metrics, dataset.test.images)
        prepend_finetune_section(staging / "report.md", out.name, summary)
        mark_written(staging, "a fine-tuned model")  # before signing: the signature covers every file
        key = configured_signing_key(signing_key)
        if key is not None:
            sign_folder(staging, key, ignore=MODEL_FOLDER_UNSIGNED)
        os.chmod(staging, 0o755)
        swap_in(staging, out, protected=(Path(summary["data"]), Path(summary["source"])))
    except OSError as exc:
        raise FinetuneError(f"cannot write the fine-tuned model next to {out} ({exc.strerror or exc}); nothing was changed") from exc
    return metrics


# --- the destination -----------------------------------------------------------------------------

STAGING_MARK = ".finetune-"  # .<out name>.finetune-<pid>-<random>[.previous] next to `out`


def make_staging(out: Path) -> Path:
    """An empty folder next to `out` named after this process, where the new model is written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise FinetuneError(f"--out {out}: cannot write in {out.parent} ({exc.strerror or exc}); nothing was written") from exc


def swap_in(staging: Path, out: Path, *, protected: tuple) -> None:
    """Put `staging` at `out` with renames; the previous model (checked again: it may have changed
    while training) is moved aside first and removed only once the new one stands."""
    check_replaceable(out, protected=protected)
    previous = staging.with_name(staging.name + ".previous")
    if out.exists():
        os.replace(out, previous)
    os.replace(staging, out)
    shutil.rmtree(previous, ignore_errors=True)


def clean_leftovers(out: Path) -> list[Path]:
    """Remove what a killed fine-tuning left next to `out` (its staging folder, named after its
    process); a previous model caught between the two renames is put back. Folders of a
    fine-tuning still running are kept."""
    removed = []
    for leftover in sorted(out.parent.glob(f".{glob.escape(out.name)}{STAGING_MARK}*")):
        pid = leftover.name[len(out.name) + 1 + len(STAGING_MARK) :].split("-")[0]
        if not leftover.is_dir() or leftover.is_symlink() or not pid.isdigit() or process_alive(int(pid)):
            continue
        if leftover.name.endswith(".previous") and not os.path.lexists(out):
            os.replace(leftover, out)
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover)
    return removed


def prepend_finetune_section(report: Path, name: str, summary: dict) -> None:
    """Put the fine-tuning section (before/after figures) at the top of a model's report.md."""
    atomic_write_text(report, render_finetune_section(name, summary) + "\n" + report.read_text())


def render_finetune_section(name: str, summary: dict) -> str:
    before, after = summary["before"], summary["after"]
    trained = summary["images"] - summary["held_out"]
    return "\n".join(
        [
            f"# {name}: fine-tuned on {Path(summary['data']).name}",
            "",
            f"Started from `{summary['source']}` and trained {summary['epochs']} more epochs on {trained} of your "
            f"{summary['images']} images (each seen {summary['personal_repeats']} times per epoch, augmented) mixed with "
            f"{summary['replay_images']:,} MNIST training images, so that it learns your handwriting without forgetting "
            f"MNIST. {summary['held_out']} of your images ({summary['holdout_fraction']:.0%} of each class, chosen "
            "at random with a fixed seed) were held out and never trained on: they give the honest before/after figure.",
            "",
            "| accuracy | before | after | change |",
            "|---|---|---|---|",
            f"| your held-out images ({summary['held_out']}) | {before['personal']:.2%} | {after['personal']:.2%} "
            f"| {(after['personal'] - before['personal']) * 100:+.2f} points |",
            f"| MNIST test set (10,000) | {before['mnist']:.2%} | {after['mnist']:.2%} "
            f"| {(after['mnist'] - before['mnist']) * 100:+.2f} points |",
            "",
            f"A drop of more than {summary['max_mnist_drop'] * 100:.2f} points on MNIST would have stopped the "
            "model from being published. The report of the fine-tuned model on MNIST follows.",
            "",
        ]
    )
