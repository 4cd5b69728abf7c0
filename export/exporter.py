"""Export a trained model: convert to every requested format and precision, prove each artifact
against the Keras model on the real test set, and publish only if all of them pass.

Everything is built in a staging folder next to `export/`. Only when every artifact passes is
the staging folder swapped in, so a failed export never touches the previous good one; the
rejected files are kept in `export.rejected/` for inspection.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import convert
from export.manifest import build_manifest, render_parity, write_manifest
from export.parity import ParityError, Thresholds, accuracy, check, compare
from mnist_edge.errors import MnistEdgeError, require
from mnist_edge.files import atomic_write_text, sha256_file
from runtime.backends import open_session
from runtime.manifest import BACKEND_FORMATS
from trainer.data import DIGIT_NAMES, Dataset, calibration_sample, fingerprint, load_dataset, scale_images
from trainer.train import predict_probabilities

EXPORT_DIR = "export"
REJECTED_DIR = "export.rejected"
DEFAULT_CALIBRATION_SIZE = 1000
CALIBRATION_SEED = 0


@dataclass(frozen=True)
class ArtifactSpec:
    file: str
    format: str  # onnx | ort | tflite
    precision: str  # fp32 | fp16 | int8
    runtime: str  # the engine that proves it: onnxruntime | litert

    @property
    def backend(self) -> str:
        return next(b for b, formats in BACKEND_FORMATS.items() if self.format in formats)


ARTIFACTS = (
    ArtifactSpec("model.onnx", "onnx", "fp32", "onnxruntime"),
    ArtifactSpec("model.int8.onnx", "onnx", "int8", "onnxruntime"),
    ArtifactSpec("model.ort", "ort", "fp32", "onnxruntime"),
    ArtifactSpec("model.tflite", "tflite", "fp32", "litert"),
    ArtifactSpec("model.fp16.tflite", "tflite", "fp16", "litert"),
    ArtifactSpec("model.int8.tflite", "tflite", "int8", "litert"),
)
FORMATS = ("onnx", "tflite")  # `--formats onnx` also makes the .ort file
PRECISIONS = ("fp32", "fp16", "int8")


class ExportError(MnistEdgeError):
    """The export could not be made (missing model, bad options)."""


class ExportFailed(MnistEdgeError):
    """At least one artifact failed its parity checks; nothing was published."""

    def __init__(self, failures: list[str], rejected: Path):
        self.failures = failures
        self.rejected = rejected
        super().__init__(
            f"export rejected, previous export left in place; {len(failures)} check(s) failed: "
            + "; ".join(failures)
            + f" (files kept in {rejected})"
        )


def select_artifacts(formats: tuple[str, ...], precisions: tuple[str, ...]) -> list[ArtifactSpec]:
    for f in formats:
        if f not in FORMATS:
            raise ExportError(f"unknown format {f!r}; choose from {', '.join(FORMATS)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise ExportError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    family = {"onnx": "onnx", "ort": "onnx", "tflite": "tflite"}
    chosen = [a for a in ARTIFACTS if family[a.format] in formats and a.precision in precisions]
    if not chosen:
        raise ExportError(f"no artifact for formats {','.join(formats)} at precisions {','.join(precisions)}")
    return chosen


def load_keras_model(model_dir: Path):
    path = model_dir / "model.keras"
    if not path.is_file():
        raise ExportError(f"{path}: no trained model here; run `mnist-edge train --model <name> --out {model_dir.parent}`")
    keras = require("keras")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ExportError(f"{path}: cannot load the Keras model ({exc})") from None


def _class_names(model_dir: Path) -> list[str]:
    metrics = model_dir / "metrics.json"
    if metrics.is_file():
        names = json.loads(metrics.read_text()).get("class_names")
        if names:
            return list(names)
    return list(DIGIT_NAMES)


def _publish(staging: Path, target: Path) -> None:
    """Swap the staging folder in for `target` with renames, never a half-written folder."""
    previous = target.with_name(target.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


def _convert_one(spec: ArtifactSpec, keras_model, folder: Path, fp32_onnx: Path, calibration: np.ndarray, opset: int):
    path = folder / spec.file
    if spec.format == "onnx" and spec.precision == "fp32":
        return convert.to_onnx(keras_model, path, opset)
    if spec.format == "onnx" and spec.precision == "int8":
        return convert.quantize_onnx(fp32_onnx, path, calibration)
    if spec.format == "ort":
        return convert.to_ort(fp32_onnx, path)
    return convert.to_tflite(keras_model, path, spec.precision, calibration)


def export_model(
    model_dir: str | os.PathLike,
    *,
    formats: tuple[str, ...] = FORMATS,
    precisions: tuple[str, ...] = PRECISIONS,
    opset: int = convert.DEFAULT_OPSET,
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    thresholds: Thresholds = Thresholds(),
    data_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    stream=sys.stdout,
) -> dict:
    """Convert, prove and publish. Returns the manifest; raises ExportFailed if any check fails."""
    model_dir = Path(model_dir)
    specs = select_artifacts(tuple(formats), tuple(precisions))
    if dataset is None:
        dataset = load_dataset(data_dir)  # before TensorFlow loads: bad data fails fast
    keras_model = load_keras_model(model_dir)
    test_x = scale_images(dataset.test.images)
    labels = dataset.test.labels
    calibration = scale_images(calibration_sample(dataset.train, calibration_size, CALIBRATION_SEED).images)
    reference = predict_probabilities(keras_model, dataset.test.images)
    keras_accuracy = accuracy(reference, labels)
    print(
        f"Exporting {model_dir.name}: Keras test accuracy {keras_accuracy:.4f} on {len(labels):,} images; "
        f"{len(specs)} artifacts",
        file=stream,
        flush=True,
    )

    staging = Path(tempfile.mkdtemp(prefix=".export-staging-", dir=model_dir))
    try:
        scratch = staging / ".scratch"  # intermediates that are not published (fp32 ONNX for int8-only runs)
        scratch.mkdir()
        fp32_onnx = staging / "model.onnx"
        if any(s.format in ("onnx", "ort") for s in specs) and not any(s.file == "model.onnx" for s in specs):
            fp32_onnx = convert.to_onnx(keras_model, scratch / "model.onnx", opset)
        fp32_bytes: dict[str, int] = {}
        entries, failures = [], []
        for spec in specs:
            start = time.monotonic()
            path = _convert_one(spec, keras_model, staging, fp32_onnx, calibration, opset)
            seconds = time.monotonic() - start
            content = path.read_bytes()
            session = open_session(spec.backend, content, name=spec.file, format=spec.format)
            probabilities = session.run(test_x)
            if spec.precision == "fp32":
                fp32_bytes[spec.format] = len(content)
            base = fp32_bytes.get(spec.format)
            if base is None and spec.precision != "fp32":
                base = _fp32_size(spec, keras_model, scratch, fp32_onnx, opset)
                fp32_bytes[spec.format] = base
            ratio = len(content) / base if spec.precision != "fp32" else None
            report = compare(reference, probabilities, labels, size_ratio=ratio)
            failure = None
            try:
                check(report, spec.precision, thresholds, spec.file)
            except ParityError as exc:
                failure = str(exc)
                failures.append(failure)
            entries.append(
                {
                    "file": spec.file,
                    "format": spec.format,
                    "precision": spec.precision,
                    "runtime": spec.runtime,
                    "bytes": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                    "test_accuracy": round(report.accuracy, 6),
                    "parity": report.as_dict(),
                    "export_seconds": round(seconds, 2),
                    "passed": failure is None,
                    "failure": failure,
                }
            )
            print(
                f"  {spec.file:<20} {len(content) / 1024:9.1f} KiB  accuracy {report.accuracy:.4f}  "
                f"agreement {report.argmax_agreement:.4%}  max|Δp| {report.max_abs_diff:.2e}  "
                f"{seconds:5.1f}s  {'pass' if failure is None else 'FAIL'}",
                file=stream,
                flush=True,
            )
        shutil.rmtree(scratch)

        manifest = build_manifest(
            model={
                "name": model_dir.name,
                "file": "model.keras",
                "sha256": sha256_file(model_dir / "model.keras"),
                "params": int(keras_model.count_params()),
                "test_accuracy": round(keras_accuracy, 6),
            },
            class_names=_class_names(model_dir),
            test_set={"source": dataset.source, "images": int(len(labels)), "sha256": fingerprint(dataset.test)},
            artifacts=entries,
            thresholds=thresholds.as_dict(),
            calibration={"images": int(len(calibration)), "source": "training set", "seed": CALIBRATION_SEED},
            opset=opset,
        )
        write_manifest(staging, manifest)
        atomic_write_text(staging / "parity.md", render_parity(manifest))
        if failures:
            rejected = model_dir / REJECTED_DIR
            shutil.rmtree(rejected, ignore_errors=True)
            os.replace(staging, rejected)
            raise ExportFailed(failures, rejected)
        os.chmod(staging, 0o755)  # mkdtemp made it private; an export is meant to be shared
        _publish(staging, model_dir / EXPORT_DIR)
        shutil.rmtree(model_dir / REJECTED_DIR, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"Published {len(entries)} artifacts to {model_dir / EXPORT_DIR}", file=stream, flush=True)
    return manifest


def _fp32_size(spec: ArtifactSpec, keras_model, scratch: Path, fp32_onnx: Path, opset: int) -> int:
    """Size of the fp32 file of this format, made in scratch when fp32 was not requested."""
    if spec.format == "onnx":
        return fp32_onnx.stat().st_size
    return convert.to_tflite(keras_model, scratch / "model.tflite", "fp32").stat().st_size
