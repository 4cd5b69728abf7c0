"""Inference engines behind one small interface:

    session.run(x: float32 [N, H, W]) -> float32 [N, classes]
    session.input, session.output: TensorInfo (name, shape, dtype) as the engine sees them

- `OnnxSession`: onnxruntime, for .onnx and .ort files; tuned for single-image latency.
- `LiteRTSession`: the LiteRT interpreter (`ai-edge-litert`, optional) for .tflite files,
  including full-integer models whose input and output are int8, and static batch-1 models.
- `MicroSession` (in `mnist_edge.runtime.micro`): TFLite Micro (`tflite-micro`, optional) for
  the microcontroller artifact, a C++ source holding the int8 flatbuffer.

Which engine runs which file is declared in `mnist_edge.formats`; sessions are created once, from
bytes that were already checked against the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mnist_edge.runtime.errors import ModelLoadError

# Single-image latency is best on one thread for models this small; batches may use more.
DEFAULT_THREADS = 1
THREADS_ENV = "MNIST_EDGE_THREADS"
LITERT_CHUNK = 512  # a dynamic-batch LiteRT model runs big inputs in chunks of this many


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | None, ...]  # None for a dimension the engine leaves open
    dtype: str  # numpy's name: float32, int8


def default_threads() -> int:
    value = os.environ.get(THREADS_ENV)
    return int(value) if value and value.isdigit() and int(value) > 0 else DEFAULT_THREADS


def onnx_session_options(threads: int | None = None, format: str = "onnx"):
    """The SessionOptions every runtime session uses: all graph optimisations, sequential,
    `threads` intra-op threads (default: MNIST_EDGE_THREADS or 1), and the settings the registry
    declares for reading this `format` from bytes."""
    import onnxruntime as ort

    from mnist_edge import formats

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 4  # fatal only: errors come back as exceptions, which the runtime words in one line
    for key, value in formats.load_options(format):
        options.add_session_config_entry(key, value)
    return options


_ONNX_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(float16)": "float16"}


class OnnxSession:
    """An onnxruntime InferenceSession with all graph optimisations on, created once.
    May be called from several threads at once."""

    named_io = True  # onnxruntime feeds tensors by name: the names are part of the contract

    def __init__(
        self, model: bytes, *, threads: int | None = None, name: str = "model", format: str = "onnx",
        settings: dict | None = None,
    ):
        import onnxruntime as ort

        options = onnx_session_options(threads, format)
        try:
            self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
            raise ModelLoadError(f"{name}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from exc
        self.input = self._info(self.session.get_inputs()[0])
        self.output = self._info(self.session.get_outputs()[0])

    @staticmethod
    def _info(node) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in node.shape)
        return TensorInfo(node.name, shape, _ONNX_TYPES.get(node.type, node.type))

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output.name], {self.input.name: x})[0]


class LiteRTSession:
    """A LiteRT interpreter. Quantizes inputs and dequantizes outputs of integer-only models; runs
    a static batch-1 model one image at a time and a dynamic one in chunks.

    Not thread-safe (an interpreter holds its tensors): share it between threads only behind a
    lock, as the demo does."""

    named_io = False  # LiteRT feeds tensors by index; the converter picks the names

    def __init__(
        self, model: bytes, *, threads: int | None = None, name: str = "model", format: str = "tflite",
        settings: dict | None = None,
    ):
        from mnist_edge.errors import require
        from mnist_edge.quiet import captured_output

        interpreter_module = require("ai_edge_litert.interpreter")
        try:
            # LiteRT announces its XNNPACK delegate on stderr when tensors are first allocated.
            with captured_output():
                self.interpreter = interpreter_module.Interpreter(
                    model_content=model, num_threads=threads or default_threads()
                )
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelLoadError(f"{name}: LiteRT cannot load it ({str(exc).splitlines()[0]})") from exc
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        signature = self._input.get("shape_signature", self._input["shape"])
        self.static_batch = len(signature) > 0 and int(signature[0]) > 0
        self.input = self._info(self._input)
        self.output = self._info(self._output)
        self._batch = None

    def _info(self, details: dict) -> TensorInfo:
        signature = details.get("shape_signature", details["shape"])
        shape = tuple(int(d) if d >= 0 else None for d in signature)
        return TensorInfo(details["name"], shape, np.dtype(details["dtype"]).name)

    def _ensure_batch(self, batch: int) -> None:
        if batch != self._batch:
            shape = list(self._input["shape"])
            shape[0] = batch
            self.interpreter.resize_tensor_input(self._input["index"], shape)
            self.interpreter.allocate_tensors()
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if dtype == np.float32:
            return x
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._output["dtype"] == np.float32:
            return y.copy()
        scale, zero_point = self._output["quantization"]
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self._ensure_batch(len(x))
        self.interpreter.set_tensor(self._input["index"], self._quantize(x))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._output["index"]))

    def run(self, x: np.ndarray) -> np.ndarray:
        step = self.input.shape[0] if self.static_batch else LITERT_CHUNK
        if len(x) <= step and not (self.static_batch and len(x) != step):
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i : i + step]) for i in range(0, len(x), step)])


def open_session(
    engine: str, model: bytes, *, threads: int | None = None, name: str = "model", format: str,
    settings: dict | None = None,
):
    """A session of `engine` (a name from mnist_edge.formats.ENGINES) over already-verified bytes.
    `settings` are what the export recorded for the artifact (its manifest `details`): a session
    takes what it needs from them (TFLite Micro its tensor arena size) and ignores the rest."""
    from mnist_edge import formats

    session_class = formats.resolve(formats.ENGINES[engine].session)
    return session_class(model, threads=threads, name=name, format=format, settings=settings)
