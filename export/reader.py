"""Publish a number reader with a digit model's export: convert it to ONNX and prove it.

The proof runs the reader the way the runtime does (runtime/sequence.py, onnxruntime) on generated
fields of MNIST *test* digits (mnist_edge.fields, the reading benchmark's generator and seed), and
records for each field group the share read whole by the digit-by-digit reader, by the sequence
model alone and by both combined (what `read` answers). It passes when onnxruntime reads the same
text as Keras on at least `reader_min_agreement` of the fields and the combined reading beats the
digit-by-digit one by at least `reader_min_gain` (points, over all fields): a reader that does not
measurably help is not published.

`verify` repeats the runtime's half from the files alone (no TensorFlow): verify_reader.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge import formats
from mnist_edge.manifest import Reader, ReaderProof
from mnist_edge.fields import GROUPS as FIELD_GROUPS
from mnist_edge.runtime import number, reading, sequence

READER_FILE = "reader.onnx"
INPUT_NAME = "field"
PROOF_SEED = 2026  # the reading benchmark's fields (bench/read.py)
PROOF_FIELDS = 1000
GROUPS = ("all", *FIELD_GROUPS)
MIN_AGREEMENT = 0.99  # onnxruntime and Keras read the same text on at least this share of the fields
MIN_GAIN = 1.0  # points: the combined reading beats the digit-by-digit one over all fields by this much


def convert(keras_path: Path, out: Path, height: int) -> object:
    """reader.keras -> `out` (ONNX, a softmax over the 11 classes, free batch and width); returns the Keras model."""
    import keras
    import tensorflow as tf
    import tf2onnx

    model = keras.models.load_model(keras_path)
    spec = (tf.TensorSpec([None, height, None, 1], tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def probabilities(x):
        return tf.nn.softmax(model(x, training=False), axis=-1)

    tf2onnx.convert.from_function(probabilities, input_signature=spec, opset=17, output_path=str(out))
    return model


def read_fields(predictor, reader: sequence.ReaderModel, fields, keras_model=None) -> tuple[dict, int]:
    """Whole-field accuracy by group for the three ways of reading (`read`'s own, runtime/reading.py),
    and on how many fields the Keras model (if given) read the same text as the runtime's sequence reader."""
    spec = number.load_spec()
    right = {way: dict.fromkeys(GROUPS, 0) for way in ("digits", "sequence", "combined")}
    seen, agree = dict.fromkeys(GROUPS, 0), 0
    for f in fields:
        marks = number.field_marks(f.image, spec)
        digits, line, _ = reading.read_both(predictor, reader, marks, spec, 0.0)
        texts = {way: r.text if r else None for way, r in (("digits", digits), ("sequence", line), ("combined", reading.combined(digits, line)))}
        if keras_model is not None:
            x = sequence.model_input(sequence.line_image(marks[0], marks[2], reader.rules), reader.rules["stride"])
            scores = np.asarray(keras_model(x, training=False))[0]
            agree += _greedy(scores, reader.rules["blank"]) == (texts["sequence"] or "")
        for g in (f.group, "all"):
            seen[g] += 1
            for way, text in texts.items():
                right[way][g] += text == f.text
    accuracy = {way: {g: round(right[way][g] / seen[g], 6) for g in GROUPS if seen[g]} for way in right}
    return accuracy, agree


def _greedy(scores: np.ndarray, blank: int) -> str:
    return "".join(str(e.digit) for e in sequence.best_path(scores, blank))


def proof_fields(dataset, count: int, seed: int):
    from mnist_edge.fields import make_fields

    return make_fields(dataset.test.images, dataset.test.labels, count, seed=seed)


def publish_reader(
    reader_dir: Path, staging: Path, predictor, dataset, *, thresholds, fields: int = PROOF_FIELDS, seed: int = PROOF_SEED,
    stream: TextIO,
) -> tuple[Reader, str | None]:
    """Convert the reader into the staging folder and prove it against `predictor` (the staged
    fp32 ONNX digit model). Returns its manifest entry and the failure, if it failed."""
    from mnist_edge.files import sha256_file
    from mnist_edge.trainer.reader import MODEL_FILE, read_reader_record

    record = read_reader_record(reader_dir)
    geometry = record["geometry"]
    start = time.time()
    out = staging / READER_FILE
    keras_model = convert(reader_dir / MODEL_FILE, out, geometry["height"])
    content = out.read_bytes()
    entry = dict(
        file=READER_FILE, bytes=len(content), sha256=sha256_file(out), params=int(keras_model.count_params()),
        keras_sha256=sha256_file(reader_dir / MODEL_FILE), input_name=INPUT_NAME, trained_on=record["trained_on"], **geometry,
    )
    model = sequence.ReaderModel(sequence.reader_session(content, 1, str(out)), dict(geometry))
    accuracy, agree = read_fields(predictor, model, proof_fields(dataset, fields, seed), keras_model)
    agreement = agree / fields
    gain = 100 * (accuracy["combined"]["all"] - accuracy["digits"]["all"])
    failure = None
    if agreement < thresholds.reader_min_agreement:
        failure = f"onnxruntime and Keras read the same text on {agreement:.1%} of the fields (< {thresholds.reader_min_agreement:.0%})"
    elif gain < thresholds.reader_min_gain:
        failure = (
            f"read with it, {accuracy['combined']['all']:.1%} of the fields are read whole against {accuracy['digits']['all']:.1%} "
            f"digit by digit: a gain of {gain:+.1f} points, under the {thresholds.reader_min_gain:.1f} required"
        )
    proof = ReaderProof(
        engine=formats.READER_ENGINE, fields=fields, seed=seed, source=f"mnist_edge.fields of {dataset.source} test digits",
        keras_agreement=round(agreement, 6), passed=failure is None, failure=failure, **accuracy,
    )
    print(
        f"  {READER_FILE:<18} {len(content) / 1024:>7.1f} KiB  read whole: {accuracy['combined']['all']:.1%} "
        f"(digit by digit {accuracy['digits']['all']:.1%}; touching {accuracy['combined'].get('touching or overlapping', 0):.1%} "
        f"against {accuracy['digits'].get('touching or overlapping', 0):.1%}) on {fields:,} fields; ONNX = Keras on "
        f"{agreement:.1%}  {'ok' if failure is None else 'FAILED: ' + failure}  ({time.time() - start:.0f} s)",
        file=stream, flush=True,
    )
    return Reader(proof=proof, **entry), failure


def verify_reader(predictor, dataset, tolerance_fields: int = 2) -> tuple[str, str]:
    """(status, detail) for the export's reader, from its files alone: the bytes against the
    manifest (and the signature, if the predictor was loaded with a key), then the proof's fields
    read again through the runtime; each accuracy must come within `tolerance_fields` fields."""
    reader = predictor.manifest.reader
    model = predictor.sequence_reader()
    accuracy, _ = read_fields(predictor, model, proof_fields(dataset, reader.proof.fields, reader.proof.seed))
    recorded = {"sequence": reader.proof.sequence, "combined": reader.proof.combined, "digits": reader.proof.digits}
    allowed = tolerance_fields / max(1, reader.proof.fields) + 1e-9
    for way, groups in recorded.items():
        if abs(accuracy[way].get("all", -1) - groups.get("all", -2)) > allowed:
            return "FAIL", (
                f"read whole ({way}) {accuracy[way].get('all', 0):.2%} of {reader.proof.fields} fields, "
                f"the manifest says {groups.get('all', 0):.2%}"
            )
    return "ok", f"sha256 ok, reading reproduced: {accuracy['combined']['all']:.1%} of {reader.proof.fields} fields read whole"
