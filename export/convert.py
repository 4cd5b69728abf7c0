"""Turn a Keras model into deployable files: ONNX (fp32, int8 QDQ), ORT mobile format, TFLite
(fp32, fp16, full-integer int8). Conversion only; whether the result is any good is decided
in export.parity.

Every converter writes into the folder it is given (the export's staging folder) and returns
the path it wrote. Calibration data always comes from training images, never test images.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from mnist_edge.errors import MnistEdgeError, require
from mnist_edge.files import atomic_write_bytes

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
DEFAULT_OPSET = 17
MIN_OPSET = 13  # per-channel QDQ quantization needs opset 13


class ConversionError(MnistEdgeError):
    """A converter failed or produced a file that does not load."""


OUTPUT_TAIL_LINES = 3  # of a failed converter's own output, quoted in the error


@contextlib.contextmanager
def converting(what: str):
    """Run a converter with its own printing (Python and C++ alike) silenced at the
    file-descriptor level; if it fails, raise ConversionError quoting the end of that output,
    where MLIR and tf2onnx put the actual reason."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except Exception as exc:
            sink.seek(0)
            lines = [line.strip() for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip()]
            tail = " | ".join(lines[-OUTPUT_TAIL_LINES:])
            raise ConversionError(f"{what} failed: {exc}" + (f" (its last output: {tail})" if tail else "")) from exc
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _signature(tf):
    return [tf.TensorSpec([None, 28, 28], tf.float32, name=INPUT_NAME)]


def to_onnx(model, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """ONNX fp32 through tf2onnx, from a tf.function with an explicit signature (tf2onnx's
    from_keras does not understand Keras 3 models). Input `image` [batch, 28, 28], output
    `probabilities` [batch, 10], dynamic batch; checked with onnx.checker's full check."""
    if opset < MIN_OPSET:
        raise ConversionError(f"--opset {opset} is too old; {MIN_OPSET} or newer is needed for per-channel int8")
    tf = require("tensorflow")
    tf2onnx = require("tf2onnx")
    onnx = require("onnx")

    # Returning a dict names the graph output; training=False freezes dropout and batch norm.
    serve = tf.function(lambda image: {OUTPUT_NAME: model(image, training=False)}, input_signature=_signature(tf))
    with converting(f"tf2onnx at opset {opset}"):
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=_signature(tf), opset=opset)
    proto.doc_string = f"mnist-edge {model.name}: [batch, 28, 28] float32 in [0, 1] -> [batch, 10] probabilities"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ConversionError(f"{path.name}: onnx.checker rejected the converted model: {exc}") from exc
    atomic_write_bytes(path, proto.SerializeToString())
    return path


class CalibrationReader:
    """onnxruntime's CalibrationDataReader protocol over a float32 [N, 28, 28] array of training images."""

    def __init__(self, images: np.ndarray, batch_size: int = 32):
        self.images = images
        self.batch_size = batch_size
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.images):
            return None
        batch = self.images[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return {INPUT_NAME: batch}

    def rewind(self) -> None:
        self.position = 0


def quantize_onnx(fp32_path: Path, path: Path, calibration: np.ndarray) -> Path:
    """ONNX int8: static quantization in QDQ format with per-channel weights, calibrated on
    training images. The graph is pre-processed (shape inference, fusions) first, as onnxruntime
    recommends."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "quantized.onnx"
        with converting("onnxruntime int8 quantization"):
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized),
                CalibrationReader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                # Keep the softmax in float: probabilities stay smooth, at no cost in size.
                nodes_to_exclude=_softmax_nodes(prepared),
            )
        atomic_write_bytes(path, quantized.read_bytes())
    return path


def _softmax_nodes(onnx_path: Path) -> list[str]:
    onnx = require("onnx")
    graph = onnx.load(str(onnx_path)).graph
    return [node.name for node in graph.node if node.op_type == "Softmax"]


def to_ort(onnx_path: Path, path: Path) -> Path:
    """ONNX Runtime's mobile format, made by its own converter tool (fixed optimisations, no
    platform-specific layout transforms, so it runs on ARM as well as x86)."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source = Path(tmp) / "in" / onnx_path.name
        source.parent.mkdir()
        shutil.copyfile(onnx_path, source)  # a folder of its own, so only this model is converted
        out = Path(tmp) / "out"
        result = subprocess.run(
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
    return path


def to_tflite(model, path: Path, precision: str, calibration: np.ndarray | None = None) -> Path:
    """TFLite with built-in operators only (no Flex ops), so a plain LiteRT interpreter runs it.

    fp16 stores weights as float16; int8 is full-integer (weights, activations, input and output),
    calibrated with a representative dataset of training images."""
    tf = require("tensorflow")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if calibration is None:
            raise ConversionError("int8 TFLite needs calibration images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ConversionError(f"unknown TFLite precision {precision!r}")
    with converting(f"TFLite conversion ({precision})"), warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": they come from the representative data.
        warnings.simplefilter("ignore", UserWarning)
        content = converter.convert()
    atomic_write_bytes(path, content)
    return path
