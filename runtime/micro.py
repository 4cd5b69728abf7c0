"""TensorFlow Lite for Microcontrollers (TFLM) in Python: the `tflite-micro` engine.

The microcontroller artifact is a C++ source file holding the int8 flatbuffer as a byte array
(`mnist_edge.export.micro` writes it). `MicroSession` parses that array back, so what is proven
and predicted here is byte for byte what a board compiles in, and runs it in TFLM's own
interpreter (PyPI `tflite-micro`, the `micro` extra) with the tensor arena the export measured.

A TFLM interpreter given too small an arena may crash the whole process (a segmentation fault,
not an exception). So every arena is first tried in a child process (`probe_arena`): a session
refuses an arena that fails there with a ModelLoadError, and only then creates its own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from mnist_edge.runtime.errors import ModelLoadError

ARENA_SETTING = "arena_bytes"  # the artifact setting (from the manifest) that sizes the tensor arena
PROBE_TIMEOUT = 120  # seconds; allocating and running one image takes well under one
_ARRAY = re.compile(r"alignas\(16\)\s+const\s+unsigned\s+char\s+(\w+)\[\]\s*=\s*\{([^}]*)\};")
_HEX_BYTE = re.compile(r"0x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class ProbeResult:
    """One arena size tried in a child process."""

    arena_bytes: int
    ok: bool
    detail: str  # TFLM's own last words when it failed: an error line, or the signal that killed it


def flatbuffer_from_source(source: bytes, name: str = "model") -> bytes:
    """The flatbuffer inside a generated C++ source: its one 16-byte aligned byte array."""
    text = source.decode("ascii", errors="replace")
    found = _ARRAY.search(text)
    if found is None:
        raise ModelLoadError(f"{name}: no `alignas(16) const unsigned char name[] = {{...}};` array in this C++ source")
    data = bytes(int(h, 16) for h in _HEX_BYTE.findall(found.group(2)))
    length = re.search(rf"{found.group(1)}_len\s*=\s*(\d+)", text)
    if length is None or int(length.group(1)) != len(data):
        raise ModelLoadError(
            f"{name}: the array {found.group(1)} holds {len(data)} bytes but its _len constant says "
            f"{length.group(1) if length else 'nothing'}"
        )
    return data


def probe_arena(flatbuffer: bytes, arena_bytes: int) -> ProbeResult:
    """Allocate and run the model once with this arena, in a child process (a too-small arena may
    crash it; this process is never at risk)."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE_CHILD, str(arena_bytes)],
            input=flatbuffer, capture_output=True, timeout=PROBE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(arena_bytes, False, f"no answer within {PROBE_TIMEOUT} s")
    if result.returncode == 0:
        return ProbeResult(arena_bytes, True, "")
    lines = [line.strip() for line in result.stderr.decode(errors="replace").splitlines() if line.strip()]
    if result.returncode < 0:
        said = f" after {lines[-1]!r}" if lines else ""
        return ProbeResult(arena_bytes, False, f"TFLM crashed the process (signal {-result.returncode}){said}")
    return ProbeResult(arena_bytes, False, " | ".join(lines[-2:]) or f"exit code {result.returncode}")


# The child: the flatbuffer on stdin, the arena size as argument; allocate, run one zero image.
# It imports tflite_micro and numpy only (not this package), so a probe costs a fraction of a second.
_PROBE_CHILD = """
import sys
import numpy as np
from tflite_micro import runtime
try:
    interpreter = runtime.Interpreter.from_bytes(sys.stdin.buffer.read(), arena_size=int(sys.argv[1]))
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()
except Exception as exc:  # TFLM's RuntimeError; its own diagnostics are already on stderr
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
"""


class MicroSession:
    """A TFLM interpreter over a generated C++ model source, with the recorded tensor arena.

    Runs one image per invoke (the model has a static batch of one, as on a board); quantizes
    the float input and dequantizes the int8 output with the scales in the file. Not
    thread-safe: an interpreter holds its tensors in its arena."""

    named_io = False  # TFLM addresses tensors by index

    def __init__(
        self, model: bytes, *, threads: int | None = None, name: str = "model", format: str = "tflm",
        settings: dict | None = None,
    ):
        from mnist_edge.errors import require

        runtime = require("tflite_micro").runtime
        arena = (settings or {}).get(ARENA_SETTING)
        if not isinstance(arena, int) or arena <= 0:
            raise ModelLoadError(f"{name}: no tensor arena size recorded for it (setting {ARENA_SETTING!r})")
        flatbuffer = flatbuffer_from_source(model, name)
        probe = probe_arena(flatbuffer, arena)
        if not probe.ok:
            raise ModelLoadError(
                f"{name}: TFLM cannot allocate and run the model in a {arena:,}-byte tensor arena ({probe.detail})"
            )
        try:
            self.interpreter = runtime.Interpreter.from_bytes(flatbuffer, arena_size=arena)
        except Exception as exc:
            raise ModelLoadError(f"{name}: TFLM cannot load it ({str(exc).splitlines()[0]})") from exc
        self.arena_bytes = arena
        self._input = self.interpreter.get_input_details(0)
        self._output = self.interpreter.get_output_details(0)
        self.input = self._info("input", self._input)
        self.output = self._info("output", self._output)

    @staticmethod
    def _info(name: str, details: dict):
        from mnist_edge.runtime.backends import TensorInfo

        return TensorInfo(name, tuple(int(d) for d in details["shape"]), np.dtype(details["dtype"]).name)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        scale = float(self._input["quantization_parameters"]["scales"][0])
        zero_point = int(self._input["quantization_parameters"]["zero_points"][0])
        info = np.iinfo(self._input["dtype"])
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(self._input["dtype"])

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale = float(self._output["quantization_parameters"]["scales"][0])
        zero_point = int(self._output["quantization_parameters"]["zero_points"][0])
        return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        quantized = self._quantize(x)
        rows = []
        for image in quantized:
            self.interpreter.set_input(image[np.newaxis], 0)
            self.interpreter.invoke()
            rows.append(self.interpreter.get_output(0)[0])
        return self._dequantize(np.stack(rows))

