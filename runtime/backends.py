"""Inference engines behind one small interface: `run(x: float32 [N, 28, 28]) -> float32 [N, classes]`.

- `OnnxSession`: ONNX Runtime, for .onnx and .ort files; tuned for single-image latency.
- `LiteRTSession`: the LiteRT interpreter (`ai-edge-litert`, optional) for .tflite files,
  including full-integer models whose input and output are int8.

Sessions are created once, from bytes that were already checked against the manifest.
"""

from __future__ import annotations

import os

import numpy as np

from runtime.errors import ModelLoadError

# Single-image latency is best on one thread for models this small; batches may use more.
DEFAULT_THREADS = 1
LITERT_CHUNK = 512  # LiteRT runs a fixed batch shape; big inputs go through in chunks


def default_threads() -> int:
    value = os.environ.get("MNIST_EDGE_THREADS")
    return int(value) if value and value.isdigit() and int(value) > 0 else DEFAULT_THREADS


def onnx_session_options(threads: int | None = None, format: str = "onnx"):
    """The SessionOptions every runtime session uses: all graph optimisations, sequential,
    `threads` intra-op threads (default: MNIST_EDGE_THREADS or 1)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    if format == "ort":
        # From bytes onnxruntime cannot see the file extension; say it is the ORT mobile format.
        options.add_session_config_entry("session.load_model_format", "ORT")
    return options


class OnnxSession:
    """An onnxruntime InferenceSession with all graph optimisations on, created once."""

    def __init__(self, model: bytes, *, threads: int | None = None, name: str = "model", format: str = "onnx"):
        import onnxruntime as ort

        options = onnx_session_options(threads, format)
        try:
            self.session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
            raise ModelLoadError(f"{name}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0]


class LiteRTSession:
    """A LiteRT interpreter. Quantizes inputs and dequantizes outputs of integer-only models.

    Not thread-safe (an interpreter holds its tensors): share it between threads only behind a
    lock, as the demo does. ONNX Runtime sessions may be called from several threads at once."""

    def __init__(self, model: bytes, *, threads: int | None = None, name: str = "model", format: str = "tflite"):
        from mnist_edge.errors import require

        interpreter_module = require("ai_edge_litert.interpreter")
        try:
            self.interpreter = interpreter_module.Interpreter(
                model_content=model, num_threads=threads or default_threads()
            )
        except Exception as exc:
            raise ModelLoadError(f"{name}: LiteRT cannot load it ({str(exc).splitlines()[0]})") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

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
        if len(x) <= LITERT_CHUNK:
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i : i + LITERT_CHUNK]) for i in range(0, len(x), LITERT_CHUNK)])


SESSIONS = {"onnx": OnnxSession, "litert": LiteRTSession}


def open_session(backend: str, model: bytes, *, threads: int | None = None, name: str = "model", format: str | None = None):
    """An engine for `backend` ("onnx" or "litert") over already-verified model bytes."""
    if format is None:
        return SESSIONS[backend](model, threads=threads, name=name)
    return SESSIONS[backend](model, threads=threads, name=name, format=format)
