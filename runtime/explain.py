"""What an exported model looked at: occlusion sensitivity, through the runtime only (numpy).

Cover one small square of the input with background, see how much the probability of the class
drops, and repeat over the whole image. All the covered copies go to the model in ONE call of
`Predictor.predict_array`, so this works for every artifact and engine the runtime can load
(LiteRT's static batch-1 models are looped over inside their session).

    from mnist_edge import runtime
    from mnist_edge.runtime.explain import occlusion_map

    predictor = runtime.load("artifacts/cnn/export")
    x = predictor.prepare("my_digit.png")          # float32 [28, 28]
    heat = occlusion_map(predictor, x)             # float32 [28, 28]; > 0: the model relied on it

Occlusion needs no gradients, so it explains an int8 TFLite file as well as the fp32 ONNX one.
Covering with background can only take ink away: the map says which strokes mattered, not
where missing ink would have changed the answer (the training report's integrated gradients
show both).
"""

from __future__ import annotations

import numpy as np

from mnist_edge.runtime.errors import InvalidImageError

# A 4x4 square is about two stroke widths of a 28x28 MNIST digit; moved 2 pixels at a time it
# gives 13 x 13 = 169 positions, each pixel covered by up to 4 of them.
OCCLUSION_PATCH = 4
OCCLUSION_STRIDE = 2
PROBABILITY_FLOOR = 1e-30  # a probability of exactly 0 (an int8 output, an underflow) counts as this


def patch_positions(size: int, patch: int, stride: int) -> list[int]:
    """Start offsets along one side of `size` pixels, the last one flush with the edge."""
    if not 0 < patch <= size or stride <= 0:
        raise ValueError(f"patch must be in 1..{size} and stride positive, got patch={patch}, stride={stride}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def square_corners(shape: tuple[int, int], patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of every patch x patch square that tiles an image of `shape`."""
    height, width = shape
    return [(r, c) for r in patch_positions(height, patch, stride) for c in patch_positions(width, patch, stride)]


def occluded_copies(x: np.ndarray, corners: list[tuple[int, int]], patch: int, fill: float) -> np.ndarray:
    """One copy of `x` [H, W] per corner, with that patch x patch square set to `fill`."""
    copies = np.repeat(x[np.newaxis], len(corners), axis=0)
    for k, (r, c) in enumerate(corners):
        copies[k, r : r + patch, c : c + patch] = fill
    return copies


def log_odds(probabilities: np.ndarray, target: int) -> np.ndarray:
    """log(p / (1 - p)) of class `target` for each row of `probabilities` [N, classes]: unlike the
    probability, it keeps changing when a sure model (99.99%) loses some of its evidence. 1 - p is
    taken as the sum of the other classes' probabilities, which float32 still holds when p itself
    has rounded to exactly 1."""
    p = np.asarray(probabilities, np.float64)
    others = np.delete(p, target, axis=1).sum(axis=1)
    return np.log(np.maximum(p[:, target], PROBABILITY_FLOOR)) - np.log(np.maximum(others, PROBABILITY_FLOOR))


def occlusion_map(
    predictor,
    x: np.ndarray,
    target: int | None = None,
    *,
    patch: int = OCCLUSION_PATCH,
    stride: int = OCCLUSION_STRIDE,
    fill: float | None = None,
) -> np.ndarray:
    """How much each pixel supported class `target` (default: the predicted class), as float32
    [H, W]: the drop in the target's log-odds when a square around the pixel is covered with
    `fill` (default: the low end of the input range, MNIST's black background), averaged over
    the squares that cover the pixel. Positive: the model relied on it; negative: it spoke
    against the class. The log-odds, not the probability: a 99.99% sure model barely changes
    its probability when one stroke is covered, but its log-odds fall clearly.

    `predictor` is a `runtime.Predictor` (anything with `input_shape` and `predict_array`); `x`
    a prepared input, float32 [H, W], as `predictor.prepare` returns it."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape != tuple(predictor.input_shape):
        raise InvalidImageError(f"occlusion_map expects one prepared input of shape {list(predictor.input_shape)}, got {list(x.shape)}")
    if fill is None:
        fill = float(predictor.manifest.input.range[0])
    corners = square_corners(x.shape, patch, stride)
    # A square that holds nothing but `fill` already changes nothing when covered: its drop is 0
    # without asking the model, which halves the batch for a typical digit.
    changed = [(r, c) for r, c in corners if np.any(x[r : r + patch, c : c + patch] != fill)]
    probabilities = predictor.predict_array(np.concatenate([x[np.newaxis], occluded_copies(x, changed, patch, fill)]))
    if target is None:
        target = int(probabilities[0].argmax())
    evidence = log_odds(probabilities, target)
    total = np.zeros(x.shape, np.float64)
    for drop, (r, c) in zip(evidence[0] - evidence[1:], changed):
        total[r : r + patch, c : c + patch] += drop
    covered = np.zeros(x.shape, np.float64)
    for r, c in corners:
        covered[r : r + patch, c : c + patch] += 1
    return (total / covered).astype(np.float32)
