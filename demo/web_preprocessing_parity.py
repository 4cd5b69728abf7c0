"""Preprocessing parity: digits drawn as strokes on the page's own canvas; the page's 28x28
against Python `to_mnist` on the PNG of the same canvas, and the class the model gives each."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from .web_strokes import digit_strokes


# The page's preprocessing against Python's.
DRAWINGS = 320
MAX_MEAN_PIXEL_DIFF = 0.01
MIN_SAME_PREDICTION = 0.995


@dataclass(frozen=True)
class PreprocessingParity:
    drawings: int
    compared: int  # drawings both sides turned into a model input
    no_digit_both: int  # drawings both sides refused as "no digit"
    no_digit_one_side: int  # drawings only one side refused: a disagreement
    mean_abs_diff: float  # over every pixel of every compared drawing
    worst_mean_abs_diff: float  # the largest per-drawing mean
    max_abs_diff: float
    same_prediction: float  # share of compared drawings the model gives the same class
    js_ms_median: float  # the page's preprocessing time per drawing
    model: str

    @property
    def passed(self) -> bool:
        return (
            self.compared > 0
            and self.no_digit_one_side == 0
            and self.mean_abs_diff <= MAX_MEAN_PIXEL_DIFF
            and self.same_prediction >= MIN_SAME_PREDICTION
        )


PREPARE_ON_PAGE = """async (drawings) => {
  const { sketch, prepare, state } = window.mnistEdge;
  const toBase64 = (floats) => {
    const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
  return drawings.map((strokes) => {
    sketch.setStrokes(strokes);
    const t0 = performance.now();
    let input = null, error = null;
    try { input = toBase64(prepare(sketch.pixels(), state.model.manifest.input)); }
    catch (e) { if (e.name !== 'NoDigitError') throw e; error = e.message; }
    const ms = performance.now() - t0;
    return { input, error, ms, png: sketch.canvas.toDataURL('image/png') };
  });
}"""


def prove_preprocessing(page, predictor, images: np.ndarray, *, count: int = DRAWINGS, seed: int = 0, batch: int = 40) -> PreprocessingParity:
    """`count` digits traced from `images` drawn on the open page's canvas: its 28x28 against
    Python's (`predictor.prepare`) on the PNG of the same canvas."""
    from mnist_edge.runtime.errors import NoDigitError

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=count, replace=False)
    drawings = [digit_strokes(images[i], rng) for i in picks]
    js, py, times = [], [], []
    refused_both = refused_one = 0
    height, width = predictor.input_shape
    for start in range(0, count, batch):
        for result in page.evaluate(PREPARE_ON_PAGE, drawings[start : start + batch]):
            png = base64.b64decode(result["png"].split(",", 1)[1])
            times.append(result["ms"])
            try:
                mine = predictor.prepare(png)
            except NoDigitError:
                mine = None
            if result["input"] is None or mine is None:
                refused_both += result["input"] is None and mine is None
                refused_one += (result["input"] is None) != (mine is None)
                continue
            js.append(np.frombuffer(base64.b64decode(result["input"]), dtype="<f4").reshape(height, width))
            py.append(mine)
    js_x, py_x = np.stack(js), np.stack(py)
    diff = np.abs(js_x - py_x)
    same = predictor.predict_array(js_x).argmax(axis=1) == predictor.predict_array(py_x).argmax(axis=1)
    return PreprocessingParity(
        drawings=count, compared=len(js), no_digit_both=int(refused_both), no_digit_one_side=int(refused_one),
        mean_abs_diff=float(diff.mean()), worst_mean_abs_diff=float(diff.mean(axis=(1, 2)).max()),
        max_abs_diff=float(diff.max()), same_prediction=float(same.mean()),
        js_ms_median=float(np.median(times)), model=predictor.manifest.name,
    )
