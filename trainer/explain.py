"""Where the network looked when it was wrong: integrated gradients on the Keras model, and the
maps read back in words.

Why integrated gradients (Sundararajan et al., 2017): it gives one value per pixel, for the MLP
and the CNN alike, and its values add up to the change of the class score between a reference
image and the digit, so a map shows how much each pixel pushed, not only where the gradient is
steep. Grad-CAM, the usual choice for convnets, works on the last convolutional block: 7x7 cells
for our CNN, each 4x4 pixels of a 28x28 digit, too coarse to tell a closed loop from an open one
(and the MLP has no convolution at all). The plain gradient saturates on sure answers.

Two references, averaged: a black image (the attribution of a pixel is its ink times the
average gradient: ink can count) and a white one (empty pixels get the evidence of the ink they
lack: missing ink can count too). With a black reference alone, background pixels always get
exactly zero, and a 4 read as a 9 could never be blamed on the gap at its top (see Sturmfels,
Lundberg and Lee, "Visualizing the Impact of Feature Attribution Baselines", Distill 2020).

The class score is the logit (the input of the softmax), which keeps moving where the
probability is already saturated at 99.99%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_edge.data import scale_images
from mnist_edge.errors import require

IG_STEPS = 32  # points on the straight path from the reference to the image (midpoint rule)
REFERENCES = (0.0, 1.0)  # black, white
EXPLAINED_MISTAKES = 12  # the worst mistakes that get maps in the report
INK = 0.25  # a pixel at or above this (on 0..1) is ink
SPOT = 5  # the strongest evidence is looked for in SPOT x SPOT windows
IN_INK, IN_GAPS = 0.6, 0.4  # share of a spot's evidence on ink for "in the strokes" / "in empty space"
WEAK_EVIDENCE = 0.25  # the true class's evidence below this share of the predicted class's is "little"


def class_scores(model):
    """A function float32 images [N, H, W] -> class scores [N, classes]: the logits, for a model
    whose last layer is a softmax Dense (both of ours), else the log-probabilities."""
    keras = require("keras")
    last = model.layers[-1]
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
        features = keras.Model(model.input, last.input)

        def logits(x):
            z = keras.ops.matmul(features(x, training=False), last.kernel)
            return z + last.bias if last.use_bias else z

        return logits

    def log_probabilities(x):
        return keras.ops.log(keras.ops.clip(model(x, training=False), 1e-7, 1.0))

    return log_probabilities


def integrated_gradients(scores, x: np.ndarray, target: int, *, steps: int = IG_STEPS, references=REFERENCES) -> np.ndarray:
    """Integrated gradients of `scores(...)[:, target]` for one image `x` (float [H, W] in 0..1),
    averaged over the constant `references`; float32 [H, W]. Each reference's map adds up to
    score(x) - score(reference), up to the midpoint rule's error."""
    tf = require("tensorflow")
    x = np.asarray(x, np.float32)
    alphas = ((np.arange(steps, dtype=np.float32) + 0.5) / steps)[:, None, None]
    starts = [np.full_like(x, value) for value in references]
    path = np.concatenate([start + alphas * (x - start) for start in starts])  # [len(references) * steps, H, W]
    points = tf.convert_to_tensor(path)
    with tf.GradientTape() as tape:
        tape.watch(points)
        score = tf.reduce_sum(scores(points)[:, target])
    gradients = tape.gradient(score, points).numpy().reshape(len(references), steps, *x.shape).mean(axis=1)
    return np.mean([(x - start) * g for start, g in zip(starts, gradients)], axis=0).astype(np.float32)


# --- reading a map in words ----------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Where the positive part of an attribution map is strongest, relative to the digit."""

    where: str  # "top left", "top", ..., "centre", or "nowhere" for a map with no positive value
    ink_share: float  # share of the strongest spot's evidence lying on ink
    total: float  # sum of the positive attributions

    @property
    def kind(self) -> str:
        if self.ink_share >= IN_INK:
            return "in the strokes"
        if self.ink_share <= IN_GAPS:
            return "in empty space, where there is no ink"
        return "along the edge of the strokes"


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum of every size x size window (same shape as `values`, windows clipped at the border)."""
    pad = size // 2
    padded = np.pad(values, pad)
    table = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = values.shape
    return table[size : size + h, size : size + w] - table[:h, size : size + w] - table[size : size + h, :w] + table[:h, :w]


def _third(position: float, names: tuple[str, str, str]) -> str:
    return names[0] if position < 1 / 3 else names[2] if position > 2 / 3 else names[1]


def place_name(row: int, col: int, ink: np.ndarray) -> str:
    """`row`, `col` relative to the ink's bounding box, in thirds: "top left" ... "centre"."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        rows, cols = np.arange(ink.shape[0]), np.arange(ink.shape[1])
    vertical = _third((row - rows[0] + 0.5) / (rows[-1] - rows[0] + 1), ("top", "middle", "bottom"))
    horizontal = _third((col - cols[0] + 0.5) / (cols[-1] - cols[0] + 1), ("left", "centre", "right"))
    if vertical == "middle":
        return "centre" if horizontal == "centre" else horizontal
    return vertical if horizontal == "centre" else f"{vertical} {horizontal}"


def read_evidence(image: np.ndarray, attribution: np.ndarray) -> Evidence:
    """Where the strongest positive evidence of `attribution` lies on `image` (float 0..1)."""
    positive = np.maximum(np.asarray(attribution, np.float64), 0)
    if positive.sum() <= 0:
        return Evidence("nowhere", 0.0, 0.0)
    ink = np.asarray(image) >= INK
    spots = _window_sums(positive, SPOT)
    row, col = np.unravel_index(int(spots.argmax()), spots.shape)
    window = (slice(max(0, row - SPOT // 2), row + SPOT // 2 + 1), slice(max(0, col - SPOT // 2), col + SPOT // 2 + 1))
    share = positive[window][ink[window]].sum() / positive[window].sum()
    return Evidence(place_name(row, col, ink), round(float(share), 3), float(positive.sum()))


def describe_mistake(true: str, predicted: str, for_predicted: Evidence, against_true: Evidence, for_true: Evidence) -> str:
    """One sentence on a mistake, read from its maps: where the evidence for the given class is
    strongest, where the strongest evidence against the true class lies, and what still spoke for it."""
    if for_predicted.where == "nowhere":
        parts = [f"No pixel pushed towards {predicted} more than the reference images did"]
    else:
        parts = [f"The evidence for {predicted} is strongest at the {for_predicted.where} of the digit, {for_predicted.kind}"]
    if against_true.where != "nowhere":
        parts.append(f"the strongest evidence against {true} is at the {against_true.where}, {against_true.kind}")
    if for_true.where == "nowhere" or for_true.total < WEAK_EVIDENCE * for_predicted.total:
        ratio = for_true.total / for_predicted.total if for_predicted.total else 0.0
        parts.append(f"little spoke for {true} ({ratio:.0%} of the evidence for {predicted})")
    else:
        parts.append(f"what spoke for {true} is at the {for_true.where}, {for_true.kind}")
    return "; ".join(parts) + "."


# --- the mistakes of a trained model ---------------------------------------------------------------


@dataclass(frozen=True)
class ExplainedMistake:
    index: int
    true: str
    predicted: str
    confidence: float
    image: np.ndarray  # float [H, W] in 0..1
    for_predicted: np.ndarray  # attribution map towards the predicted class
    for_true: np.ndarray  # attribution map towards the true class
    evidence: Evidence  # where the map towards the predicted class is strongest
    sentence: str

    def as_dict(self) -> dict:
        return {"index": self.index, "true": self.true, "predicted": self.predicted, "sentence": self.sentence}


def explain_mistakes(model, test_images: np.ndarray, worst: list[dict], class_names, count: int = EXPLAINED_MISTAKES) -> list[ExplainedMistake]:
    """Maps and a sentence for the first `count` of `worst` (metrics["mistakes"]["worst"]):
    what pushed each image towards the class it was given, and towards its true class."""
    scores = class_scores(model)
    names = list(class_names)
    explained = []
    for item in worst[:count]:
        image = scale_images(np.asarray(test_images[item["index"]]))
        for_predicted = integrated_gradients(scores, image, names.index(item["predicted"]))
        for_true = integrated_gradients(scores, image, names.index(item["true"]))
        evidence = read_evidence(image, for_predicted)
        sentence = describe_mistake(
            item["true"], item["predicted"], evidence, read_evidence(image, -for_true), read_evidence(image, for_true)
        )
        explained.append(
            ExplainedMistake(
                item["index"], item["true"], item["predicted"], item["confidence"], image, for_predicted, for_true,
                evidence, sentence,
            )
        )
    return explained
