"""Export a trained model in three steps: convert every planned artifact, prove each one against
the Keras model on the real test set (collecting every failure), then publish the set or reject it.

    manifest = export_model("artifacts/cnn")            # all kinds of mnist_edge.formats.KINDS

Everything is built in a staging folder next to `export/`. Only when every artifact passes is the
staging folder swapped in, so a failed export never touches the previous good one; the rejected
files and their parity report are kept in `export.rejected/` whatever the failure was.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge import formats, termination
from mnist_edge.data import Dataset, calibration_sample, scale_images
from mnist_edge.errors import MnistEdgeError, require
from mnist_edge.export import convert, publish
from mnist_edge.export.parity import Thresholds, accuracy, check, compare
from mnist_edge.manifest import Artifact, Companion, Manifest
from mnist_edge.runtime.backends import open_session
from mnist_edge.trainer.record import MODEL_FILE, load_training_data, read_record
from mnist_edge.trainer.models import with_test_time_shifts
from mnist_edge.trainer.train import predict_probabilities

CALIBRATION_SEED = 0
REFERENCE = "keras"


class ExportError(MnistEdgeError):
    """The export could not be started (missing model, bad options)."""


@dataclass
class Converted:
    """Step 1's result for one kind: its file, or why it could not be made."""

    kind: formats.ArtifactKind
    path: Path | None
    seconds: float
    failure: str | None = None


def plan_artifacts(families: tuple[str, ...], precisions: tuple[str, ...]) -> tuple[formats.ArtifactKind, ...]:
    """The kinds to make for `--formats` and `--precisions`, checked against the registry."""
    for f in families:
        if f not in formats.families():
            raise ExportError(f"unknown format {f!r}; choose from {', '.join(formats.families())}")
    for p in precisions:
        if p not in formats.PRECISIONS:
            raise ExportError(f"unknown precision {p!r}; choose from {', '.join(formats.PRECISIONS)}")
    kinds = formats.plan(families, precisions)
    if not kinds:
        raise ExportError(f"no artifact for formats {','.join(families)} at precisions {','.join(precisions)}")
    return kinds


def load_keras_model(model_dir: Path):
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ExportError(f"{path}: no trained model here; run `mnist-edge train --model <name> --out {model_dir.parent}`")
    keras = require("keras")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ExportError(f"{path}: cannot load the Keras model ({exc})") from exc


# --- step 1: convert ---------------------------------------------------------------------------


def convert_all(kinds, job: convert.ConversionJob, folder: Path) -> list[Converted]:
    """Make every planned artifact in `folder`; a converter that fails is recorded, not raised."""
    results = []
    for kind in kinds:
        start = time.monotonic()
        try:
            path = convert.convert(job, kind, folder / kind.file)
            results.append(Converted(kind, path, time.monotonic() - start))
        except MnistEdgeError as exc:
            results.append(Converted(kind, None, time.monotonic() - start, str(exc)))
    return results


# --- step 2: prove -----------------------------------------------------------------------------


def prove(
    item: Converted,
    job: convert.ConversionJob,
    reference: np.ndarray,
    test_x: np.ndarray,
    labels: np.ndarray,
    thresholds: Thresholds,
) -> tuple[Artifact | None, list[str]]:
    """Run one artifact through its own engine on the whole test set and compare it with Keras
    (and, for a kind with a `same_file_reference`, with that engine's run of its source file):
    the manifest entry (None when it cannot even be compared) and every failed check."""
    kind = item.kind
    content = item.path.read_bytes()
    details = dict(job.details.get(kind.file, {}))
    companions = tuple(_companion(item.path.parent / name) for name in details.pop("companions", ()))
    size_ratio = None
    if kind.size_reference:
        size_ratio = len(content) / job.source(kind.size_reference).stat().st_size
    try:
        session = open_session(kind.engine, content, name=kind.file, format=kind.format, settings=details or None)
        probabilities = session.run(test_x)
        report = compare(reference, probabilities, labels, size_ratio=size_ratio)
        failures = check(report, kind.precision, thresholds, kind.file, rules=kind.rules)
        proofs = [report.proof(kind.engine, REFERENCE, failures)]
        if kind.same_file_reference:
            same_file, same_file_failures = _prove_same_file(kind, job, probabilities, test_x, labels, thresholds)
            proofs.append(same_file)
            failures += same_file_failures
    except MnistEdgeError as exc:  # an engine cannot load it, or its output cannot be compared
        return None, [f"{kind.file}: {exc}"]
    artifact = Artifact(
        file=kind.file,
        format=kind.format,
        precision=kind.precision,
        engine=kind.engine,
        bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        batch=kind.batch,
        integer_io=kind.integer_io,
        test_accuracy=round(report.accuracy, 6),
        size_ratio=None if size_ratio is None else round(size_ratio, 4),
        export_seconds=round(item.seconds, 2),
        proofs=tuple(proofs),
        companions=companions,
        details=details or None,
    )
    return artifact, [str(f) for f in failures]


def prove_all(
    converted: list[Converted],
    job: convert.ConversionJob,
    reference: np.ndarray,
    test_x: np.ndarray,
    labels: np.ndarray,
    thresholds: Thresholds,
    stream,
) -> tuple[list[Artifact], list[str]]:
    """Prove every converted artifact, printing one line each: the manifest entries and every
    failure (conversions that failed included)."""
    artifacts, failures = [], []
    for item in converted:
        if item.failure:
            failures.append(f"{item.kind.file}: {item.failure}")
            print(f"  {item.kind.file:<20} conversion failed: {item.failure}", file=stream, flush=True)
            continue
        artifact, problems = prove(item, job, reference, test_x, labels, thresholds)
        failures += problems
        if artifact is not None:
            artifacts.append(artifact)
        publish.print_artifact_line(item.kind.file, artifact, problems, stream)
    return artifacts, failures
def _prove_same_file(kind, job, probabilities, test_x, labels, thresholds):
    """The kind's run against `kind.same_file_reference`'s run of the file it was made from."""
    source = formats.kind(kind.source)
    content = job.source(kind.source).read_bytes()
    session = open_session(kind.same_file_reference, content, name=kind.source, format=source.format)
    report = compare(session.run(test_x), probabilities, labels)
    name = f"{kind.file} against {kind.same_file_reference}"
    failures = check(report, kind.precision, thresholds, name, rules=formats.SAME_FILE_RULES)
    return report.proof(kind.engine, kind.same_file_reference, failures), failures


def _companion(path: Path) -> Companion:
    content = path.read_bytes()
    return Companion(path.name, len(content), hashlib.sha256(content).hexdigest())


# --- the whole export --------------------------------------------------------------------------


def _reading(record, one_pass: bool):
    """(the record for the manifest, the test-time shifts to export with). A model whose recipe reads
    with shifts is exported with them in the graph (trainer.models.with_test_time_shifts) and proven
    so. With `one_pass` it is exported without them (5x less compute); the recipe's figures over seeds
    are for the shifted reading, so the manifest then says what this export is and quotes no mean."""
    if not one_pass or not record.test_time_shifts:
        return record, record.test_time_shifts
    return replace(
        record, recipe_mean=None,
        accuracy_is=f"the network alone, exported with --one-pass (without its recipe's {len(record.test_time_shifts)} "
        "test-time shifts): this export's Keras accuracy; the recipe's figures over seeds are for the shifted reading",
    ), ()


def signing_key_of(signing_key: str | os.PathLike | None) -> Path | None:
    """The configured signing key, read once up front so a bad key fails before any conversion."""
    from mnist_edge.signature import configured_signing_key, load_signing_key

    key = configured_signing_key(signing_key)
    if key is not None:
        load_signing_key(key)
    return key


def sign_staged(folder: Path, key: Path | None, stream) -> None:
    """Sign the export about to be published (a failure raises: nothing is published)."""
    from mnist_edge.signature import sign_export

    if key is not None:
        sign_export(folder, key)
        print(f"  signed every file with {key}", file=stream, flush=True)


def export_model(
    model_dir: str | os.PathLike,
    *,
    families: tuple[str, ...] | None = None,
    precisions: tuple[str, ...] = formats.PRECISIONS,
    opset: int = convert.DEFAULT_OPSET,
    calibration_size: int = convert.DEFAULT_CALIBRATION_SIZE,
    thresholds: Thresholds = Thresholds(),
    data_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    signing_key: str | os.PathLike | None = None,
    one_pass: bool = False,
    reader: str | os.PathLike | None = None,
    reader_fields: int | None = None,
    stream: TextIO | None = None,
) -> Manifest:
    """Convert, prove and publish. Returns the manifest; raises ExportFailed if any artifact could not
    be made or failed a check (every failure is listed). With a signing key (`signing_key`, else
    $MNIST_EDGE_SIGNING_KEY) the export is signed first; if that fails the previous export stays.
    Test-time shifts go into the graph (_reading); `one_pass` exports the network alone. `reader`:
    a trained number reader's folder, proven on `reader_fields` fields and published too (_with_reader)."""
    stream = stream or sys.stdout
    model_dir = Path(model_dir)
    kinds = plan_artifacts(tuple(families or formats.families()), tuple(precisions))
    record, shifts = _reading(read_record(model_dir), one_pass)
    reader_dir = _reader_dir(reader, kinds, record)
    signing_key = signing_key_of(signing_key)
    dataset = load_training_data(record, data_dir, dataset=dataset)  # before TensorFlow loads: fails fast
    publish.check_target(model_dir, Path(dataset.source))
    keras_model = with_test_time_shifts(load_keras_model(model_dir), shifts)
    test_x = scale_images(dataset.test.images)
    labels = dataset.test.labels
    calibration = scale_images(calibration_sample(dataset.train, calibration_size, CALIBRATION_SEED).images)
    reference = predict_probabilities(keras_model, dataset.test.images)
    keras_accuracy = accuracy(reference, labels)
    print(
        f"Exporting {model_dir.name}: Keras test accuracy {keras_accuracy:.4f} on {len(labels):,} images; "
        f"{len(kinds)} artifacts", file=stream, flush=True,
    )

    with publish.Staging(model_dir) as staging, termination.exit_at_once(staging.remove):
        job = convert.ConversionJob(keras_model, calibration, opset, scratch=staging.scratch)
        converted = convert_all(kinds, job, staging.folder)
        artifacts, failures = prove_all(converted, job, reference, test_x, labels, thresholds, stream)
        manifest = publish.build_manifest(
            model_dir=model_dir, keras_model=keras_model, keras_accuracy=keras_accuracy, record=record, dataset=dataset,
            artifacts=artifacts, thresholds=thresholds,
            calibration={"images": int(len(calibration)), "source": "training set", "seed": CALIBRATION_SEED},
            opset=opset if "tf2onnx" in formats.export_modules(kinds) else None,  # an ONNX graph was made
            input_name=convert.INPUT_NAME, output_name=convert.OUTPUT_NAME,
        )
        manifest, failures = _with_reader(manifest, failures, reader_dir, staging, dataset, thresholds, reader_fields, stream)
        staging.write(manifest, failures)
        if failures:
            staging.reject(failures)  # raises ExportFailed
        sign_staged(staging.folder, signing_key, stream)
        staging.publish()
    print(publish.published_line(manifest, model_dir), file=stream, flush=True)
    return manifest


def _reader_dir(reader, kinds, record) -> Path | None:
    """The trained reader's folder, checked before any conversion: it needs a model of centred
    digits and the registry's reader partner among the kinds (the proof reads digit by digit with it)."""
    if reader is None:
        return None
    from mnist_edge.trainer.reader import read_reader_record

    reader_dir = Path(reader)
    read_reader_record(reader_dir)
    if record.preprocessing != "digit" or tuple(record.class_names) != tuple("0123456789"):
        raise ExportError("--reader reads numbers: it goes with a model of the digits 0-9 (MNIST), not this one")
    partner = formats.reader_partner()
    if partner not in kinds:
        raise ExportError(
            f"--reader needs {partner.file} (its proof reads digit by digit with it); add --formats {partner.family} "
            f"and --precisions {partner.precision}"
        )
    return reader_dir


def _with_reader(manifest: Manifest, failures: list[str], reader_dir: Path | None, staging, dataset, thresholds, fields, stream):
    """(manifest, failures) with the number reader converted and proven in the staging folder
    (export/reader.py), when there is one and everything else passed: if it fails its proof, the
    whole export is rejected, as for any artifact."""
    from mnist_edge.export.reader import PROOF_FIELDS, READER_FILE, publish_reader

    if reader_dir is None or failures:
        return manifest, failures
    from mnist_edge.runtime import load

    staging.write(manifest, [])  # the staged digit model, loadable by the runtime for the proof
    entry, failure = publish_reader(
        reader_dir, staging.folder, load(staging.folder, file=formats.reader_partner().file), dataset, thresholds=thresholds,
        fields=fields or PROOF_FIELDS, stream=stream,
    )
    return replace(manifest, reader=entry), failures + ([f"{READER_FILE}: {failure}"] if failure else [])

