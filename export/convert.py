"""Turn a Keras model into deployable files. Conversion only; whether a file is any good is
decided in `mnist_edge.export.parity`.

Every converter has the same shape, `converter(job, kind, path)`: it writes the artifact `kind`
(an entry of `mnist_edge.formats.KINDS`, which names the converter) to `path`. A converter that
starts from another artifact (int8 ONNX from the fp32 ONNX) asks `job.source(file)` for it. It
may return a dict of facts for the manifest's `details` (the engine's settings among them); a
"companions" list in it names further files it wrote next to `path`, published and checked
with the artifact.
Calibration data always comes from training images, never test images.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_edge import formats, termination
from mnist_edge.errors import MnistEdgeError, require
from mnist_edge.files import atomic_write_bytes
from mnist_edge.quiet import captured_output

INPUT_NAME = "image"  # the graph's input and output names, written into the manifest
OUTPUT_NAME = "probabilities"
DEFAULT_OPSET = 17
DEFAULT_CALIBRATION_SIZE = 1000  # training images that calibrate int8 quantization
MIN_OPSET = 13  # per-channel QDQ quantization needs opset 13
CALIBRATION_BATCH = 32
OUTPUT_TAIL_LINES = 3  # of a failed converter's own output, quoted in the error


class ConversionError(MnistEdgeError):
    """A converter failed or produced a file that does not load."""


@dataclass
class ConversionJob:
    """What every converter may use: the model, calibration images, options, and the files
    already made. Artifacts are made in registry order, so a source is made before its users."""

    model: object  # the Keras model
    calibration: np.ndarray  # float32 [N, H, W] training images in [0, 1]
    opset: int
    scratch: Path  # intermediates that are not published
    made: dict[str, Path] = field(default_factory=dict)  # file name -> where it was written
    details: dict[str, dict] = field(default_factory=dict)  # file name -> what its converter returned

    @property
    def input_shape(self) -> tuple[int, ...]:
        """[height, width] of one input, from the model itself."""
        return tuple(int(d) for d in self.model.input_shape[1:])

    def source(self, file: str) -> Path:
        """The artifact `file`, made in the scratch folder if this export does not publish it."""
        if file not in self.made:
            kind = formats.kind(file)
            path = self.scratch / file
            _run_converter(self, kind, path)
            self.made[file] = path
        return self.made[file]


def convert(job: ConversionJob, kind: formats.ArtifactKind, path: Path) -> Path:
    """Make one artifact with its registered converter and remember where it is."""
    _run_converter(job, kind, path)
    job.made[kind.file] = path
    return path


def _run_converter(job: ConversionJob, kind: formats.ArtifactKind, path: Path) -> None:
    try:
        job.details[kind.file] = formats.resolve(kind.converter)(job, kind, path) or {}
    finally:
        termination.reinstall()  # the TFLite converter's LLVM replaces the signal handlers


@contextlib.contextmanager
def converting(what: str):
    """Run a converter with its own printing (Python and C++ alike) captured; if it fails, raise
    ConversionError quoting the end of that output, where MLIR and tf2onnx put the reason."""
    failure = None
    with captured_output() as output:
        try:
            yield
        except Exception as exc:
            failure = exc
    if failure is not None:
        tail = output.tail(OUTPUT_TAIL_LINES)
        raise ConversionError(f"{what} failed: {failure}" + (f" (its last output: {tail})" if tail else "")) from failure


def _signature(tf, job: ConversionJob, batch: int | None):
    return [tf.TensorSpec([batch, *job.input_shape], tf.float32, name=INPUT_NAME)]


def _serving_function(tf, job: ConversionJob, batch: int | None):
    # Returning a dict names the graph output; training=False freezes dropout and batch norm.
    return tf.function(
        lambda image: {OUTPUT_NAME: job.model(image, training=False)}, input_signature=_signature(tf, job, batch)
    )


def _with_batch(model, batch: int | None):
    """The model itself, or for a static batch the same layers behind an input of that batch size
    (the TFLite converter then fixes every shape, as mobile delegates and LiteRT.js need)."""
    if batch is None:
        return model
    keras = require("keras")
    inputs = keras.Input(shape=model.input_shape[1:], batch_size=batch, name=INPUT_NAME)
    return keras.Model(inputs, model(inputs, training=False), name=model.name)


def to_onnx(job: ConversionJob, kind: formats.ArtifactKind, path: Path) -> None:
    """ONNX fp32 through tf2onnx, from a tf.function with an explicit signature (tf2onnx's
    from_keras does not understand Keras 3 models): input `image` [batch, H, W], output
    `probabilities` [batch, classes]; checked with onnx.checker's full check."""
    if job.opset < MIN_OPSET:
        raise ConversionError(f"--opset {job.opset} is too old; {MIN_OPSET} or newer is needed for per-channel int8")
    tf = require("tensorflow")
    tf2onnx = require("tf2onnx")
    onnx = require("onnx")

    with converting(f"tf2onnx at opset {job.opset}"):
        proto, _ = tf2onnx.convert.from_function(
            _serving_function(tf, job, kind.batch), input_signature=_signature(tf, job, kind.batch), opset=job.opset
        )
    proto.doc_string = f"mnist-edge {job.model.name}: [batch, H, W] float32 in [0, 1] -> [batch, classes] probabilities"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConversionError(f"{path.name}: onnx.checker rejected the converted model: {exc}") from exc
    atomic_write_bytes(path, proto.SerializeToString())


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over a float32 [N, H, W] array of training images."""

    def __init__(self, images: np.ndarray, batch_size: int = CALIBRATION_BATCH):
        self.images = images
        self.batch_size = batch_size
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.images):
            return None
        batch = self.images[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return {INPUT_NAME: batch}


def quantize_onnx(job: ConversionJob, kind: formats.ArtifactKind, path: Path) -> None:
    """ONNX int8: static quantization in QDQ format with per-channel weights, calibrated on
    training images. The graph is pre-processed (shape inference, fusions) first, as onnxruntime
    recommends."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = job.source(kind.source)
    with tempfile.TemporaryDirectory(dir=job.scratch) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "quantized.onnx"
        with converting("onnxruntime int8 quantization"):
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized),
                CalibrationReader(job.calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # Keep the softmax in float: probabilities stay smooth, at no cost in size.
                nodes_to_exclude=_softmax_nodes(prepared),
            )
        atomic_write_bytes(path, quantized.read_bytes())


def _softmax_nodes(onnx_path: Path) -> list[str]:
    onnx = require("onnx")
    graph = onnx.load(str(onnx_path)).graph
    return [node.name for node in graph.node if node.op_type == "Softmax"]


def to_ort(job: ConversionJob, kind: formats.ArtifactKind, path: Path) -> None:
    """ONNX Runtime's mobile format, made by its own converter tool (fixed optimisations, no
    platform-specific layout transforms, so it runs on ARM as well as x86)."""
    onnx_path = job.source(kind.source)
    with tempfile.TemporaryDirectory(dir=job.scratch) as tmp:
        source = Path(tmp) / "in" / onnx_path.name
        source.parent.mkdir()
        shutil.copyfile(onnx_path, source)  # a folder of its own, so only this model is converted
        out = Path(tmp) / "out"
        result = termination.run_child(  # killed with the export, never left writing into a removed folder
            [
                sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort",
                "--optimization_style", "Fixed", "--output_dir", str(out), str(source),
            ],
            capture_output=True,
            text=True,
        )
        produced = out / source.with_suffix(".ort").name
        if result.returncode != 0 or not produced.is_file():
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ConversionError(f"onnxruntime's ORT converter failed: {tail[0]}")
        atomic_write_bytes(path, produced.read_bytes())


def to_tflite(job: ConversionJob, kind: formats.ArtifactKind, path: Path) -> None:
    """TFLite with built-in operators only (no Flex ops), so a plain LiteRT interpreter runs it.

    The batch dimension is `kind.batch` (1: static, as mobile GPU/NNAPI delegates and LiteRT.js
    want). fp16 stores weights as float16; int8 is full-integer (weights, activations, input and
    output), calibrated with a representative dataset of training images."""
    tf = require("tensorflow")
    converter = tf.lite.TFLiteConverter.from_keras_model(_with_batch(job.model, kind.batch))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if kind.precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind.precision == "int8":
        batch = kind.batch or 1
        calibration = job.calibration
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [calibration[i : i + batch]] for i in range(0, len(calibration) - batch + 1, batch)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif kind.precision != "fp32":
        raise ConversionError(f"no TFLite conversion for precision {kind.precision!r}")
    with converting(f"TFLite conversion ({kind.precision})"), warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": they come from the representative data.
        warnings.simplefilter("ignore", UserWarning)
        content = converter.convert()
    atomic_write_bytes(path, content)
