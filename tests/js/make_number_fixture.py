"""Golden readings for tests/js/number.test.mjs: generated fields (mnist_edge/fields.py) read by the
Python recipe (mnist_edge/runtime/number.py), with what it found on the way: the atoms, the
candidate digits, each candidate's 28x28 and the model's probabilities for it. The JavaScript
port reads the same grey pixels and is given the same recorded probabilities, so node needs no
model and any difference is the recipe's.

With an export that has a number reader, `make_sequence_fixture` writes the goldens of
tests/js/sequence.test.mjs the same way: each field read "auto" and "sequence" (runtime/sequence.py),
with the reader's line image and probabilities and the digit model's, and Pillow's bilinear resize
of a few float images (js/resample.js's BILINEAR).

    python tests/js/make_number_fixture.py EXPORT [OUT]   (OUT defaults to tests/js/fixture/number.json.gz)
    python tests/js/make_number_fixture.py --sequence EXPORT_WITH_READER OUT
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

    @property
    def class_names(self):
        return self.predictor.class_names


class RecordingReader:
    """A number reader (sequence.ReaderModel) that keeps every line image it is given and what it answered."""

    def __init__(self, reader, doctor=None):
        self.reader = reader
        self.rules = reader.rules
        self.doctor = doctor  # what to make of the model's probabilities (see DOCTORS), or None
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        probabilities = self.reader.probabilities(x)
        if self.doctor is not None:
            probabilities = self.doctor(probabilities.astype(np.float32)).astype(np.float32).astype(np.float64)
        self.calls.append((np.asarray(x, np.float32), np.asarray(probabilities, np.float64)))
        return probabilities


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


# --- the number reader (runtime/sequence.py) ------------------------------------------------------

SEQUENCE_FIELDS = 40
SEQUENCE_SEED = 23
# Float images and the sizes Pillow's bilinear resize takes them to: down, up, one axis, mixed.
RESAMPLE_CASES = (((61, 23), (40, 32)), ((9, 7), (31, 32)), ((200, 48), (133, 32)), ((30, 30), (30, 11)),
                  ((17, 40), (52, 40)), ((5, 3), (1, 1)), ((128, 64), (29, 70)))


def _reading(reading) -> dict:
    return {
        "text": reading.text, "confidence": reading.confidence, "rejected": reading.rejected, "reader": reading.reader,
        "boxes": [list(d.box) for d in reading.digits],
        "digits": [{"confidence": d.confidence, "top": [list(t) for t in d.top]} for d in reading.digits],
    }


def _tempered(p: np.ndarray, power: float = 0.25) -> np.ndarray:
    """p ** power, renormalised per column: the same best path, less sure of it. A small reader is
    often surer than the digit model; tempered, "auto" chooses each reader on some fields."""
    tempered = p ** np.float32(power)
    return tempered / tempered.sum(axis=1, keepdims=True)


def _one_hot(best: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((len(best), classes), np.float32)
    out[np.arange(len(best)), best] = 1
    return out


# Readings of each field with the reader's probabilities changed (the JS is given the same):
# "tempered" (auto), and on the first fields "silent" (blank everywhere: no digit) and "chatty"
# (a new digit every column: too many), read "auto" and "sequence", for the paths where the line
# reading is refused.
DOCTORS = {
    "tempered": _tempered,
    "silent": lambda p: _one_hot(np.full(len(p), 10), p.shape[1]),
    "chatty": lambda p: _one_hot(np.arange(len(p)) % 10, p.shape[1]),
}
DOCTORED_FIELDS = 6  # fields read "silent" and "chatty"


def read_sequence_recorded(predictor, grey: np.ndarray, mode: str, doctor: str | None = None) -> dict:
    """Python's reading of one grey field with `mode` ("auto" or "sequence"), with the digit model's
    batch and probabilities and the reader's line image and probabilities (`doctor`ed: DOCTORS)."""
    from mnist_edge.runtime import reading as readers

    recording = RecordingPredictor(predictor)
    reader = RecordingReader(predictor.sequence_reader(), DOCTORS[doctor] if doctor else None)
    record: dict = {}
    try:
        reading = readers.read(recording, grey, reader=mode, sequence_model=reader)
    except Exception as exc:  # noqa: BLE001 (the JS must refuse the same fields with the same message)
        record["error"] = str(exc)
        reading = None
    if recording.batches:
        inputs, probabilities = recording.batches[0]
        record["candidates"] = int(inputs.shape[0])
        record["probabilities"] = _b64(probabilities, "<f4")
    if reader.calls:
        x, probabilities = reader.calls[0]
        record["line"] = {"height": int(x.shape[1]), "width": int(x.shape[2]), "image": _b64(x[0, :, :, 0], "<f4")}
        record["line_probabilities"] = _b64(probabilities, "<f4")  # the model's float32, as onnxruntime gave them
        record["columns"] = int(probabilities.shape[0])
    if reading is not None:
        record["reading"] = _reading(reading)
        if reading.reader == "sequence":  # the line image's columns under each digit
            record["reading"]["inputs"] = [{"width": int(d.input.shape[1]), "data": _b64(d.input, "<f4")} for d in reading.digits]
    return record


def resample_cases(seed: int = 5) -> list[dict]:
    """Random float images (ink-like: mostly 0, some values up to 1) and Pillow's BILINEAR resize of each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    cases = []
    for (w, h), (out_w, out_h) in RESAMPLE_CASES:
        image = (rng.random((h, w)) * (rng.random((h, w)) < 0.4)).astype(np.float32)
        resized = np.asarray(Image.fromarray(image, "F").resize((out_w, out_h), Image.Resampling.BILINEAR), np.float32)
        cases.append({"width": w, "height": h, "data": _b64(image, "<f4"), "out_width": out_w, "out_height": out_h, "out": _b64(resized, "<f4")})
    return cases


def make_sequence_fixture(out: Path, predictor, images: np.ndarray, labels: np.ndarray, count: int = SEQUENCE_FIELDS,
                          seed: int = SEQUENCE_SEED) -> Path:
    """The goldens of tests/js/sequence.test.mjs; `predictor` is an export with a number reader."""
    import io

    from PIL import Image

    from mnist_edge.fields import make_fields
    from mnist_edge.runtime import number

    fields = []
    for generated in make_fields(images, labels, count, seed):
        grey = np.asarray(Image.open(io.BytesIO(generated.image)).convert("L"))  # as web_number.field_greys
        field = {"truth": generated.text, "conditions": generated.conditions, "width": int(grey.shape[1]), "height": int(grey.shape[0]), "grey": _b64(grey, "u1")}
        field["auto"] = read_sequence_recorded(predictor, grey, "auto")
        field["sequence"] = read_sequence_recorded(predictor, grey, "sequence")
        field["tempered"] = read_sequence_recorded(predictor, grey, "auto", "tempered")
        if len(fields) < DOCTORED_FIELDS:
            for doctor in ("silent", "chatty"):
                for mode in ("auto", "sequence"):
                    field[f"{doctor} {mode}"] = read_sequence_recorded(predictor, grey, mode, doctor)
        fields.append(field)
    spec = predictor.manifest.input
    reader = predictor.manifest.reader
    document = {
        "spec": number.load_spec(), "class_names": list(predictor.class_names),
        "input": {"shape": [None, spec.height, spec.width], "preprocessing": {"kind": spec.preprocessing.kind, "box": spec.preprocessing.box}},
        "reader": {"file": reader.file, "height": reader.height, "pad": reader.pad, "max_width": reader.max_width, "stride": reader.stride, "blank": reader.blank},
        "fields": fields,
        "resample": resample_cases(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(json.dumps(document).encode("utf-8"), mtime=0))
    return out


def main(argv: list[str]) -> None:
    from mnist_edge import runtime
    from mnist_edge.data import load_dataset

    dataset = load_dataset(os.environ.get("MNIST_DATA_DIR", "../shared/data/mnist"))
    if argv and argv[0] == "--sequence":
        out = Path(argv[2])
        make_sequence_fixture(out, runtime.load(argv[1]), dataset.test.images, dataset.test.labels)
    else:
        out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
        make_fixture(out, runtime.load(argv[0]), dataset.test.images, dataset.test.labels)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
