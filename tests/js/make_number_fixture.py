"""Golden readings for tests/js/number.test.mjs: generated fields (mnist_edge/fields.py) read by the
Python recipe (mnist_edge/runtime/number.py), with what it found on the way: the atoms, the
candidate digits, each candidate's 28x28 and the model's probabilities for it. The JavaScript
port reads the same grey pixels and is given the same recorded probabilities, so node needs no
model and any difference is the recipe's.

    python tests/js/make_number_fixture.py EXPORT [OUT]   (OUT defaults to tests/js/fixture/number.json.gz)
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
from pathlib import Path
from unittest import mock

import numpy as np

FIELDS = 30
SEED = 19
DEFAULT_OUT = Path(__file__).parent / "fixture" / "number.json.gz"


class RecordingPredictor:
    """A predictor that keeps every batch it is given and what it answered."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.manifest = predictor.manifest
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        probabilities = self.predictor.predict_array(x)
        self.batches.append((np.asarray(x, np.float32), np.asarray(probabilities, np.float32)))
        return probabilities

    def to_prediction(self, probabilities):
        return self.predictor.to_prediction(probabilities)


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def read_recorded(predictor, grey: np.ndarray) -> dict:
    """Python's reading of one grey field, with the atoms, candidates, inputs and probabilities."""
    from mnist_edge.runtime import number

    seen: dict = {}
    original = number.candidates

    def spy(parts, height, spec):
        spans = original(parts, height, spec)
        seen.update(parts=parts, spans=spans, height=height)
        return spans

    choose = number.best_segmentation

    def spy_choice(*args, **kwargs):
        seen["chosen"] = [tuple(span) for span in choose(*args, **kwargs)]
        return seen["chosen"]

    dividers = number.comb_dividers

    def spy_dividers(vertical):
        seen["dividers"] = [float(x) for x in dividers(vertical)]
        return dividers(vertical)

    recording = RecordingPredictor(predictor)
    record: dict = {"width": int(grey.shape[1]), "height": int(grey.shape[0]), "grey": _b64(grey, "u1")}
    with (
        mock.patch.object(number, "candidates", spy),
        mock.patch.object(number, "best_segmentation", spy_choice),
        mock.patch.object(number, "comb_dividers", spy_dividers),
    ):
        try:
            reading = number.read_number(recording, grey)
        except Exception as exc:  # noqa: BLE001 (the JS must refuse the same fields with the same message)
            record["error"] = str(exc)
            reading = None
    if "parts" in seen:
        record["digit_height"] = int(seen["height"])
        record["dividers"] = seen["dividers"]  # a comb's dividers (the one-digit-per-cell term)
        record["parts"] = [[p.x0, p.y0, p.x1, p.y1, p.area, p.label, p.cut_ink] for p in seen["parts"]]
        seen["spans"] = [tuple(span) for span in seen["spans"]]
        record["spans"] = [list(span) for span in seen["spans"]]
    if recording.batches:
        inputs, probabilities = recording.batches[0]
        # Every candidate's ink (its sum and centre of mass), and the whole 28x28 of those read.
        rows = np.arange(inputs.shape[1], dtype=np.float64)
        mass = inputs.astype(np.float64).sum(axis=(1, 2))
        record["input_moments"] = np.stack(
            [mass, (inputs.sum(axis=2) * rows).sum(axis=1) / np.maximum(mass, 1e-9), (inputs.sum(axis=1) * rows).sum(axis=1) / np.maximum(mass, 1e-9)],
            axis=1,
        ).round(5).tolist()
        record["probabilities"] = _b64(probabilities, "<f4")
        if reading is not None:
            chosen = [seen["spans"].index(span) for span in seen["chosen"]]
            record["chosen"] = chosen
            record["chosen_inputs"] = _b64(inputs[chosen], "<f4")
    if reading is not None:
        record["reading"] = {
            "text": reading.text, "confidence": reading.confidence, "rejected": reading.rejected,
            "boxes": [list(d.box) for d in reading.digits],
        }
    return record


def make_fixture(out: Path, predictor, images: np.ndarray, labels: np.ndarray, count: int = FIELDS, seed: int = SEED) -> Path:
    from mnist_edge.demo.web_number import field_greys
    from mnist_edge.runtime import number

    fields = []
    for grey, truth in field_greys(images, labels, count, seed):
        fields.append({"truth": truth, **read_recorded(predictor, grey)})
    spec = predictor.manifest.input
    document = {
        "spec": number.load_spec(), "class_names": list(predictor.class_names),
        "input": {"shape": [None, spec.height, spec.width], "preprocessing": {"kind": spec.preprocessing.kind, "box": spec.preprocessing.box}},
        "fields": fields,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(document).encode("utf-8"), mtime=0))
    return out


def main(argv: list[str]) -> None:
    from mnist_edge import runtime
    from mnist_edge.data import load_dataset


    dataset = load_dataset(os.environ.get("MNIST_DATA_DIR", "../shared/data/mnist"))
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    make_fixture(out, runtime.load(argv[0]), dataset.test.images, dataset.test.labels)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
