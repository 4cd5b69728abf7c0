"""Train one model on a Dataset and write everything a person needs to judge it.

Order of work, as a person thinks it: split a validation set off the training data, build the
model, fit with early stopping and a learning-rate schedule, evaluate once on the test set,
then explain the result (trainer.analysis) and draw it (trainer.report).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.data import IMAGE_SIZE, Dataset, scale_images, split_train_validation
from mnist_edge.errors import require
from mnist_edge.files import atomic_write_text, sha256_file
from mnist_edge.trainer.models import (  # noqa: F401 (DEFAULT_RECIPE and RECIPES are used by its callers)
    DEFAULT_RECIPE, RECIPES, build_model, predict_probabilities, recipe_of, with_test_time_shifts,
)
from mnist_edge.trainer.record import METRICS_FILE, MODEL_FILE, DataRecord, default_preprocessing

VALIDATION_FRACTION = 0.1
DEFAULT_SEED = 42
MIN_LR_FRACTION = 0.02  # the schedule ends at this fraction of the peak rate...
WARMUP_START_FRACTION = 0.1  # ...and its warm-up starts at this one

# Weight averaging (Recipe.ema_momentum) is used only when the run has at least this many averaging
# windows of 1 / (1 - momentum) steps: the initial weights then weigh less than e^-7 in the average.
EMA_MIN_WINDOWS = 7

# Augmentation strengths for the CNN: small, so a 6 stays a 6 and a 1 stays a 1.
SHIFT_FRACTION = 0.08
ROTATION_DEGREES = 10.0
ZOOM_FRACTION = 0.1

# The input pipeline: batches augmented in parallel, and made ahead of the training step.
AUGMENT_THREADS = 2
PREFETCH_BATCHES = 4


@dataclass
class TrainConfig:
    model: str
    epochs: int | None = None  # None: the model's recipe
    batch_size: int | None = None
    limit: int | None = None  # train on the first N training images only (tests, quick looks)
    seed: int = DEFAULT_SEED
    validation_fraction: float = VALIDATION_FRACTION
    augment: bool | None = None  # None: the model's recipe
    preprocessing: str | None = None  # what runtimes do to images: "digit" or "plain"; None: by class names
    dropout: float | None = None  # None: the model builder's default
    recipe: str = DEFAULT_RECIPE  # which of the model's recipes (trainer.models.ARCHITECTURES)

    def resolved(self) -> "TrainConfig":
        recipe = recipe_of(self.model, self.recipe)
        return TrainConfig(
            model=self.model,
            epochs=self.epochs or recipe.epochs,
            batch_size=self.batch_size or recipe.batch_size,
            limit=self.limit,
            seed=self.seed,
            validation_fraction=self.validation_fraction,
            augment=recipe.augment if self.augment is None else self.augment,
            preprocessing=self.preprocessing,
            dropout=self.dropout,
            recipe=self.recipe,
        )

    def follows_recipe(self) -> bool:
        """True when this run trains exactly as its recipe says: on all the training images, with
        the recipe's epochs, batch size and augmentation, the usual validation split and the builder's dropout."""
        recipe = recipe_of(self.model, self.recipe)
        resolved = self.resolved()
        return (self.limit is None and self.dropout is None and self.validation_fraction == VALIDATION_FRACTION
                and resolved.epochs == recipe.epochs
                and resolved.batch_size == recipe.batch_size and resolved.augment == recipe.augment)


def one_cycle_schedule(peak_lr: float, total_steps: int, warmup_fraction: float):
    """Per-step learning rate: a linear warm-up from a tenth of peak_lr over the first
    warmup_fraction of the steps, then a cosine decay to MIN_LR_FRACTION * peak_lr at the last
    step. With warmup_fraction 0 it is a plain cosine decay from peak_lr."""
    keras = require("keras")
    warmup_steps = int(total_steps * warmup_fraction)
    decay_steps = max(1, total_steps - warmup_steps)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak_lr, decay_steps, alpha=MIN_LR_FRACTION)
    return keras.optimizers.schedules.CosineDecay(
        peak_lr * WARMUP_START_FRACTION, decay_steps, alpha=MIN_LR_FRACTION,
        warmup_target=peak_lr, warmup_steps=warmup_steps,
    )


def _augmenter(seed: int, strength: float = 1.0):
    """Random small rotations, zooms and shifts of [B, H, W] batches, as one affine warp each.

    Stateless random numbers keyed on (seed, global step) make the augmentation identical from
    run to run, however tf.data schedules its parallel calls."""
    tf = require("tensorflow")
    size = IMAGE_SIZE
    centre = (size - 1) / 2.0

    def augment(step, batch):
        images, labels = batch
        n = tf.shape(images)[0]
        key = tf.stack([tf.constant(seed, tf.int64), step])
        u = tf.random.stateless_uniform([n, 4], seed=key, minval=-1.0, maxval=1.0) * strength
        angle = u[:, 0] * (ROTATION_DEGREES * math.pi / 180.0)
        zoom = 1.0 + u[:, 1] * ZOOM_FRACTION
        shift_x, shift_y = u[:, 2] * SHIFT_FRACTION * size, u[:, 3] * SHIFT_FRACTION * size
        # The warp maps each output pixel back to the input pixel it samples:
        # input = R(-angle) / zoom * (output - centre - shift) + centre.
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        ox, oy = centre + shift_x, centre + shift_y
        zeros = tf.zeros_like(cos)
        transforms = tf.stack(
            [cos, sin, centre - cos * ox - sin * oy, -sin, cos, centre + sin * ox - cos * oy, zeros, zeros], axis=1
        )
        warped = tf.raw_ops.ImageProjectiveTransformV3(
            images=images[..., tf.newaxis],
            transforms=transforms,
            output_shape=tf.constant([size, size]),
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )
        return warped[..., 0], labels

    return augment


def _fixed_parallelism(dataset):
    """The dataset with tf.data's autotuning off. Its tuning thread sleeps up to a minute between
    rounds and an iterator's destructor waits for it to wake, so fit() hung for up to a minute
    after its last epoch (35-56 s in 4 of 6 full CNN runs). Our pipeline is cheap (augmenting
    an epoch takes about half a second) and needs no tuning: fixed parallelism does as well."""
    tf = require("tensorflow")
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)


def _datasets(fit_x, fit_y, val_x, val_y, config: TrainConfig, *, augment_strength: float = 1.0):
    """The training pipeline repeats across epochs so that every step has its own augmentation
    seed (augmented at `augment_strength` of the full ranges); fit() is told how many steps make an epoch."""
    tf = require("tensorflow")
    fit = tf.data.Dataset.from_tensor_slices((fit_x, fit_y))
    fit = fit.shuffle(len(fit_x), seed=config.seed, reshuffle_each_iteration=True)
    fit = fit.batch(config.batch_size, drop_remainder=len(fit_x) >= config.batch_size).repeat()
    if config.augment:
        fit = fit.enumerate().map(_augmenter(config.seed, augment_strength), num_parallel_calls=AUGMENT_THREADS)
    val = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(512)
    steps_per_epoch = max(1, len(fit_x) // config.batch_size)
    return _fixed_parallelism(fit), _fixed_parallelism(val), steps_per_epoch


def _epoch_logger(total_epochs: int, stream):
    keras = require("keras")

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch: loss/accuracy, validation figures, learning rate, elapsed time."""

        def on_train_begin(self, logs=None):
            self.start = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["learning_rate"] = lr  # the History callback, which runs after this one, keeps it
            print(
                f"epoch {epoch + 1:>3}/{total_epochs}  "
                f"loss {logs.get('loss', float('nan')):.4f}  acc {logs.get('accuracy', float('nan')):.4f}  "
                f"val_loss {logs.get('val_loss', float('nan')):.4f}  val_acc {logs.get('val_accuracy', float('nan')):.4f}  "
                f"lr {lr:.2e}  {time.monotonic() - self.start:6.1f}s",
                file=stream,
                flush=True,
            )

    return EpochLine()


def seed_everything(seed: int) -> None:
    """Python, numpy and TensorFlow seeds, and deterministic TensorFlow kernels, so that the same
    seed trains the same weights bit for bit."""
    keras = require("keras")
    tf = require("tensorflow")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run_fit(model, fit_ds, val_ds, epochs: int, steps_per_epoch: int, callbacks: list) -> dict:
    """model.fit on our tf.data pipelines; the history as plain floats per epoch."""
    with warnings.catch_warnings():
        # Keras warns that it cannot shuffle a tf.data pipeline; ours shuffles itself.
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")
        fit = model.fit(
            fit_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
            callbacks=callbacks, verbose=0,
        )
    return {key: [float(v) for v in values] for key, values in fit.history.items()}


def uses_ema(ema_momentum: float, total_steps: int) -> bool:
    """Whether a run of total_steps averages its weights (see EMA_MIN_WINDOWS)."""
    return ema_momentum > 0 and total_steps * (1 - ema_momentum) >= EMA_MIN_WINDOWS


def _optimizer(schedule, ema_momentum: float, total_steps: int):
    """Adam on the schedule; with weight averaging, fit() ends by copying the averaged weights into
    the model (Keras's finalize_variable_values), so what is evaluated and saved is the average.
    Batch normalisation's moving statistics are not averaged: they follow the last steps, where the
    schedule has brought the rate down to a fiftieth and the weights barely move."""
    keras = require("keras")
    if not uses_ema(ema_momentum, total_steps):
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=ema_momentum)


def _ema_swap(model) -> list:
    """With weight averaging: a callback that validates the averaged weights and holds them in the
    model at each epoch's end, so that early stopping judges and keeps the average (it restores its
    best epoch's weights after fit() has finalised them, which would otherwise undo the average)."""
    if not getattr(model.optimizer, "use_ema", False):
        return []
    return [require("keras").callbacks.SwapEMAWeights(swap_on_epoch=True)]


TEMPERATURES = np.geomspace(0.1, 10.0, 801)  # the candidates fold_temperature chooses from


def fold_temperature(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017), folded into the weights: the temperature T that
    minimises the negative log-likelihood of softmax(logits / T) on these images, applied by
    dividing the last layer's kernel and bias by T. The exported graph is unchanged in shape and
    its argmax is unchanged; its probabilities are calibrated again after smoothed-label training.
    Returns T."""
    keras = require("keras")
    last = model.get_layer("probabilities")
    features = keras.Model(model.inputs, last.input)
    hidden = np.asarray(features.predict(images, batch_size=1024, verbose=0), np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in last.get_weights())
    logits = hidden @ kernel + bias
    rows = np.arange(len(labels))

    def nll(temperature: float) -> float:
        scaled = logits / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(scaled).sum(axis=1)) - scaled[rows, labels]))

    temperature = float(min(TEMPERATURES, key=nll))
    last.set_weights([(kernel / temperature).astype(np.float32), (bias / temperature).astype(np.float32)])
    return temperature


def fit_model(dataset: Dataset, config: TrainConfig, *, stream: TextIO | None = None, extra_callbacks=()):
    """Build and fit the model. Returns (model, history dict, train_seconds, best_epoch, the
    resolved config). `extra_callbacks` (Keras callbacks) watch the fit, e.g. the overfitting experiment's."""
    stream = stream or sys.stdout
    config = config.resolved()
    keras = require("keras")
    seed_everything(config.seed)

    fit_split, val_split = split_train_validation(
        dataset.train.head(config.limit), config.validation_fraction, config.seed
    )
    num_classes = len(dataset.class_names)
    fit_x, val_x = scale_images(fit_split.images), scale_images(val_split.images)
    fit_y = keras.utils.to_categorical(fit_split.labels, num_classes)
    val_y = keras.utils.to_categorical(val_split.labels, num_classes)
    recipe = recipe_of(config.model, config.recipe)
    fit_ds, val_ds, steps_per_epoch = _datasets(fit_x, fit_y, val_x, val_y, config, augment_strength=recipe.augment_strength)
    dropout = recipe.dropout if config.dropout is None else config.dropout
    model = build_model(config.model, **({} if dropout is None else {"dropout": dropout}))
    schedule = one_cycle_schedule(recipe.learning_rate, steps_per_epoch * config.epochs, recipe.warmup_fraction)
    model.compile(
        optimizer=_optimizer(schedule, recipe.ema_momentum, steps_per_epoch * config.epochs),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    early_stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=recipe.patience, restore_best_weights=True
    )
    callbacks = [_epoch_logger(config.epochs, stream), *_ema_swap(model), early_stop, *extra_callbacks]
    print(
        f"Training {config.model}: {model.count_params():,} parameters, {len(fit_x):,} training and "
        f"{len(val_x):,} validation images, up to {config.epochs} epochs"
        + (" with augmentation" if config.augment else ""),
        file=stream,
        flush=True,
    )
    start = time.monotonic()
    history = run_fit(model, fit_ds, val_ds, config.epochs, steps_per_epoch, callbacks)
    if recipe.label_smoothing > 0:
        temperature = fold_temperature(model, val_x, val_split.labels)
        print(f"Smoothed labels: temperature {temperature:.3f} (fitted on the validation split) folded into the last layer",
              file=stream, flush=True)
    train_seconds = time.monotonic() - start
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    return model, history, train_seconds, best_epoch, config


def save_model_folder(model_dir: Path, model, history: dict, metrics: dict, test_images: np.ndarray) -> None:
    """Write a model folder: model.keras, history.json, metrics.json (with the model's sha256),
    the plots and report.md. The model goes first, via a temporary name, so a crash never leaves
    half a model.keras behind."""
    from mnist_edge.trainer.report import write_report

    tmp_model = model_dir / f".{MODEL_FILE}.tmp.keras"
    model.save(tmp_model)
    os.replace(tmp_model, model_dir / MODEL_FILE)
    metrics["model_sha256"] = sha256_file(model_dir / MODEL_FILE)
    atomic_write_text(model_dir / "history.json", json.dumps(history, indent=2) + "\n")
    atomic_write_text(model_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    write_report(model_dir, metrics, history, test_images, model=model)


def _recipe_mean(config: TrainConfig, test_sha256: str) -> dict | None:
    """The recipe's recorded mean over seeds (trainer/recipe_figures.json), for a run that follows
    the recipe exactly on the data the figures were measured on; None otherwise."""
    from mnist_edge.trainer.recipe_figures import recorded_mean

    if not config.follows_recipe():
        return None
    return recorded_mean(config.model, config.recipe, asdict(recipe_of(config.model, config.recipe)), test_sha256)


def train(dataset: Dataset, config: TrainConfig, out_dir: str | os.PathLike, *, stream: TextIO | None = None) -> dict:
    """Train, evaluate on the test set, and write DIR/<model>/ with model, metrics, plots and report."""
    stream = stream or sys.stdout
    from mnist_edge.trainer.analysis import analyse

    model_dir = Path(out_dir) / config.model
    model_dir.mkdir(parents=True, exist_ok=True)

    model, history, train_seconds, best_epoch, config = fit_model(dataset, config, stream=stream)

    # The model as it is exported and read: with its recipe's test-time shifts, if any.
    shifts = recipe_of(config.model, config.recipe).test_time_shifts
    probabilities = predict_probabilities(with_test_time_shifts(model, shifts), dataset.test.images)
    metrics = analyse(
        probabilities=probabilities,
        labels=dataset.test.labels,
        history=history,
        class_names=dataset.class_names,
    )
    data = DataRecord.of(dataset).as_dict()
    metrics.update(
        model=config.model,
        params=int(model.count_params()),
        train_seconds=round(train_seconds, 2),
        epochs_run=len(history["loss"]),
        best_epoch=best_epoch,
        config=asdict(config),
        data_source=dataset.source,
        data=data,
        preprocessing=config.preprocessing or default_preprocessing(dataset.class_names),
        train_images=len(dataset.train.head(config.limit)),
        test_images=len(dataset.test),
        class_names=list(dataset.class_names),
        accuracy_is=f"this run's test accuracy (seed {config.seed}), one sample of the recipe; "
        "recipe_mean is the recipe's mean over seeds when recorded",
        recipe_mean=_recipe_mean(config, data["test_sha256"]),
        test_time_shifts=[list(s) for s in shifts],
    )
    if shifts:  # what the network alone reads, for comparison
        one_pass = predict_probabilities(model, dataset.test.images)
        metrics["test_accuracy_one_pass"] = float((one_pass.argmax(axis=1) == dataset.test.labels).mean())

    save_model_folder(model_dir, model, history, metrics, dataset.test.images)
    mean = metrics["recipe_mean"]
    print(
        f"{config.model} ({config.recipe} recipe): test accuracy {metrics['test_accuracy']:.4f} with seed {config.seed}"
        + (f" (read with {len(shifts)} shifts; {metrics['test_accuracy_one_pass']:.4f} in one pass)" if shifts else "")
        + (f" (the recipe's mean over {len(mean['seeds'])} seeds: {mean['test_accuracy_mean']:.4f})" if mean else "")
        + f", test loss {metrics['test_loss']:.4f}, "
        f"{metrics['epochs_run']} epochs (best {best_epoch}) in {train_seconds:.0f}s -> {model_dir}",
        file=stream,
        flush=True,
    )
    return metrics
