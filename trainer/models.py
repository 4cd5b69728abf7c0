"""The digit classifiers. Each takes [batch, 28, 28] float32 in [0, 1] and returns [batch, 10]
softmax probabilities, so every exported artifact shares one input contract.

Training augmentation is not part of any model: it lives in the input pipeline (trainer.train), so
the exported graph holds only what inference needs. A recipe's test-time shifts are part of how its
model reads, so they go into the exported graph (with_test_time_shifts).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mnist_edge.data import IMAGE_SIZE, NUM_CLASSES, scale_images
from mnist_edge.errors import require

INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE)
BN_MOMENTUM = 0.9  # the moving statistics settle within an epoch, even on small training slices


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: the defaults `mnist-edge train` uses for it.

    The learning rate follows one cycle per run: a linear warm-up from a tenth of
    `learning_rate` to `learning_rate` over the first `warmup_fraction` of the steps, then a
    cosine decay to a fiftieth of it at the last step (no warm-up when the fraction is 0).

    With `ema_momentum` > 0 the optimizer keeps an exponential moving average of the weights
    (Polyak averaging, Keras's `use_ema`) and the model ends the fit with the averaged weights,
    which are the ones evaluated, saved and exported. A short run (fewer steps than
    trainer.train.EMA_MIN_WINDOWS averaging windows, 1 / (1 - ema_momentum) steps each, such as
    the tests' tiny trainings) trains without it: the average would still remember the initial weights.

    With `label_smoothing` > 0 the targets are smoothed (the true class gets 1 - label_smoothing,
    the others share the rest), which caps the softmax near 1 - label_smoothing; after the fit a
    temperature fitted on the validation split is folded into the last layer, so the exported
    probabilities are calibrated again (the argmax, hence the accuracy, is unchanged)."""

    epochs: int
    batch_size: int
    learning_rate: float  # the peak of the schedule
    augment: bool
    patience: int  # early-stopping patience, in epochs without a better validation loss
    warmup_fraction: float = 0.0
    ema_momentum: float = 0.0  # 0: no weight averaging
    label_smoothing: float = 0.0  # > 0: trained on smoothed targets, then recalibrated (trainer.train.fold_temperature)
    # Test-time shifts: the exported graph reads the image and the image moved by each (rows, columns)
    # here, and returns the mean of the probabilities (with_test_time_shifts). (): one pass.
    test_time_shifts: tuple[tuple[int, int], ...] = ()
    augment_strength: float = 1.0  # scales the augmentation's rotation, zoom and shift ranges
    dropout: float | None = None  # None: the model builder's default


def build_mlp(hidden_units: tuple[int, ...] = (512, 512), dropout: float = 0.3):
    """The classic first network: 784 pixels -> Dense+ReLU+Dropout layers -> 10-way softmax."""
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = layers.Flatten(name="flatten")(inputs)
    for i, units in enumerate(hidden_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


def _conv_block(x, filters: int, name: str):
    """3x3 convolution -> batch normalisation -> ReLU, keeping the spatial size. No bias: the
    batch normalisation that follows has its own offset."""
    layers = require("keras").layers
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _convnet(stages: tuple[tuple[int, ...], ...], dropout: float, name: str):
    """image -> add_channel -> for each stage: its conv blocks, then 2x2 max pooling before the
    next stage -> global average pooling -> dropout -> 10-way softmax."""
    keras = require("keras")
    layers = keras.layers
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    # Convolutions want a channel axis: (28, 28) -> (28, 28, 1).
    x = layers.Reshape((*INPUT_SHAPE, 1), name="add_channel")(inputs)
    for stage, widths in enumerate(stages, start=1):
        if stage > 1:
            x = layers.MaxPooling2D(name=f"pool{stage - 1}")(x)
        for i, filters in enumerate(widths):
            suffix = "abcdefgh"[i] if len(widths) > 1 else ""
            x = _conv_block(x, filters, f"block{stage}{suffix}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def build_cnn(stages: tuple[tuple[int, ...], ...] = ((16,), (32, 32), (64, 64)), dropout: float = 0.3):
    """A convnet that spends its compute where it is cheap (~71k parameters, ~5.5M multiply-adds
    per image):

        image 28x28 -> conv 16                    (28x28: finds edges; 1 input channel, so cheap)
                    -> pool -> conv 32 -> conv 32 (14x14: strokes)
                    -> pool -> conv 64 -> conv 64 (7x7: digit parts)
                    -> global average pooling -> dropout -> softmax 10

    Training cost on a CPU follows the multiply-adds, and they grow with the channels at full
    resolution: the previous design (build_cnn_v1) put 32 at 28x28 and 64+64 at 14x14, 14.7M
    per image. See docs/training.md for the measurements."""
    return _convnet(stages, dropout, "cnn")


def build_cnn_v1(dropout: float = 0.3):
    """The previous CNN (131,754 parameters, 14.7M multiply-adds per image), kept to measure the
    current one against (bench/accuracy.py --previous):

        image 28x28 -> conv 32 -> pool -> conv 64 -> conv 64 -> pool -> conv 128
                    -> global average pooling -> dropout -> softmax 10"""
    return _convnet(((32,), (64, 64), (128,)), dropout, "cnn")


# One pixel up, down, left and right: MNIST's digits sit inside a blank frame (the 20x20 box centred in
# 28x28), so a move of one pixel loses no ink. Fixed in advance, never chosen on the test set.
SHIFTS_4 = ((-1, 0), (1, 0), (0, -1), (0, 1))


def with_test_time_shifts(model, shifts: tuple[tuple[int, int], ...]):
    """`model` read with test-time shifts, as one Keras graph that every exporter converts: the image
    and a copy moved by each (rows, columns) in `shifts` (zero-filled, so nothing wraps round) are
    stacked on the batch axis, go through the network once, and the output is the mean of each
    image's probabilities. The input and output contract is the model's own ([batch, 28, 28] ->
    [batch, classes]); with no shifts, the model itself.

    The copies share one set of weights and one pass of the graph (so an int8 file is no larger),
    and cost len(shifts) + 1 times the network's compute and activation memory per image. What they
    buy is measured in docs/training.md."""
    if not shifts:
        return model
    keras = require("keras")
    shifts = require_shifts(shifts)
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), name="image")
    copies = _shifted_copies_layer()(shifts, name="shifted_copies")(inputs)
    outputs = _mean_of_copies_layer()(len(shifts) + 1, name="mean_of_copies")(model(copies))
    return keras.Model(inputs, outputs, name=model.name)  # the C symbols of the microcontroller files come from it


@functools.cache  # one class per process: defined and registered once, not at every wrap
def _shifted_copies_layer():
    keras = require("keras")

    @keras.saving.register_keras_serializable(package="mnist_edge")
    class ShiftedCopies(keras.layers.Layer):
        """[B, H, W] -> [(1 + len(shifts)) * B, H, W]: the images, then the images moved by each shift."""

        def __init__(self, shifts, **kwargs):
            super().__init__(**kwargs)
            self.shifts = tuple(tuple(s) for s in shifts)

        def call(self, images):
            ops = keras.ops
            height, width = images.shape[1], images.shape[2]
            padded = ops.pad(images, [[0, 0], [1, 1], [1, 1]])
            # Content moved down by dy and right by dx: padded rows from 1 - dy, columns from 1 - dx.
            moved = [padded[:, 1 - dy:1 - dy + height, 1 - dx:1 - dx + width] for dy, dx in self.shifts]
            return ops.concatenate([images, *moved], axis=0)

        def compute_output_shape(self, input_shape):
            return (None, *input_shape[1:])

        def get_config(self):
            return {**super().get_config(), "shifts": [list(s) for s in self.shifts]}

    return ShiftedCopies


@functools.cache
def _mean_of_copies_layer():
    keras = require("keras")

    @keras.saving.register_keras_serializable(package="mnist_edge")
    class MeanOfCopies(keras.layers.Layer):
        """[copies * B, C] -> [B, C]: each image's mean over its copies (ShiftedCopies' order)."""

        def __init__(self, copies: int, **kwargs):
            super().__init__(**kwargs)
            self.copies = int(copies)

        def call(self, probabilities):
            ops = keras.ops
            return ops.mean(ops.reshape(probabilities, (self.copies, -1, probabilities.shape[-1])), axis=0)

        def compute_output_shape(self, input_shape):
            return (None, input_shape[-1])

        def get_config(self):
            return {**super().get_config(), "copies": self.copies}

    return MeanOfCopies


def require_shifts(shifts) -> tuple[tuple[int, int], ...]:
    """Shifts as a tuple of (rows, columns) pairs of -1, 0 or 1, not (0, 0), no repeats; a clear error otherwise."""
    try:
        pairs = tuple((int(dy), int(dx)) for dy, dx in shifts)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"test-time shifts must be (rows, columns) pairs, not {shifts!r}") from exc
    bad = [p for p in pairs if p == (0, 0) or max(abs(p[0]), abs(p[1])) > 1]
    if bad or len(set(pairs)) != len(pairs):
        raise ValueError(f"test-time shifts must be distinct one-pixel moves (each of rows, columns in -1..1, not both 0), not {list(shifts)!r}")
    return pairs


DEFAULT_RECIPE = "default"


@dataclass(frozen=True)
class Architecture:
    build: object  # () -> keras.Model
    recipes: dict  # recipe name -> Recipe; DEFAULT_RECIPE is what `mnist-edge train` uses

    @property
    def recipe(self) -> Recipe:
        return self.recipes[DEFAULT_RECIPE]


ARCHITECTURES = {
    "mlp": Architecture(
        build_mlp, {DEFAULT_RECIPE: Recipe(epochs=30, batch_size=128, learning_rate=1e-3, augment=True, patience=8)}
    ),
    "cnn": Architecture(
        build_cnn,
        {
            DEFAULT_RECIPE: Recipe(
                epochs=12, batch_size=128, learning_rate=3e-3, augment=True, patience=4, warmup_fraction=0.2,
                label_smoothing=0.1, test_time_shifts=SHIFTS_4,
            ),
            # `--recipe fast`: the same network in 3 epochs with half-strength augmentation and no dropout
            # (a short fit underfits: both regularisers cost more than they give), a higher peak (5e-3: chosen on
            # seeds 52-56, which the benchmark never uses), read with the same shifts.
            # Figures in trainer/recipe_figures.json and docs/training.md.
            "fast": Recipe(
                epochs=3, batch_size=128, learning_rate=5e-3, augment=True, patience=4, warmup_fraction=0.2,
                label_smoothing=0.1, test_time_shifts=SHIFTS_4, augment_strength=0.5, dropout=0.0,
            ),
        },
    ),
    # The previous CNN and its recipe, for side-by-side benchmarks only.
    "cnn_v1": Architecture(
        build_cnn_v1, {DEFAULT_RECIPE: Recipe(epochs=20, batch_size=128, learning_rate=3e-3, augment=True, patience=6)}
    ),
}
MODEL_NAMES = ("mlp", "cnn")  # what `mnist-edge train` and the pipeline offer
RECIPES = {name: architecture.recipe for name, architecture in ARCHITECTURES.items()}  # the defaults
RECIPE_NAMES = tuple(sorted({recipe for a in ARCHITECTURES.values() for recipe in a.recipes}))


def recipe_of(model: str, recipe: str = DEFAULT_RECIPE) -> Recipe:
    """The named recipe of a model; a clear error for a model or recipe it does not have."""
    if model not in ARCHITECTURES:
        raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODEL_NAMES)}")
    recipes = ARCHITECTURES[model].recipes
    if recipe not in recipes:
        raise ValueError(f"model {model!r} has no recipe {recipe!r}; it has: {', '.join(recipes)}")
    return recipes[recipe]


def build_model(name: str, **options):
    """The named model; `options` (e.g. dropout=0.0) go to its builder."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return ARCHITECTURES[name].build(**options)


def predict_probabilities(model, images_uint8: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's softmax output for uint8 images, as float32 [N, classes]."""
    return np.asarray(model.predict(scale_images(images_uint8), batch_size=batch_size, verbose=0), dtype=np.float32)
