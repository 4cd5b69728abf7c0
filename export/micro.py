"""The microcontroller artifact: the int8 TFLite model as C++ files for TensorFlow Lite Micro.

From `model.int8.tflite` (the kind's source) it writes, next to each other:

- `model_micro.cc`: the flatbuffer as a 16-byte aligned `const unsigned char g_<model>_model_data[]`
  and its length `g_<model>_model_data_len` (the artifact itself: what a board compiles in);
- `model_micro.h`: their declarations, the tensor arena size and the input/output shapes;
- `model_micro_ops.h`: `<Model>OpResolver`, a `tflite::MicroMutableOpResolver<N>` with exactly one
  `Add...()` per operator the model uses (read from the flatbuffer, not a catch-all resolver).

The arena is measured, not guessed: the smallest size (to ARENA_ALIGN bytes) with which TFLM's
own interpreter allocates and runs the model, found by a binary search in child processes (a
too-small arena can crash the interpreter), plus ARENA_MARGIN, rounded up to ARENA_ROUND.
See docs/microcontrollers.md.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

from mnist_edge import __version__, formats
from mnist_edge.errors import MnistEdgeError, require
from mnist_edge.files import atomic_write_text
from mnist_edge.runtime.micro import ARENA_SETTING, probe_arena

ARENA_ALIGN = 16  # TFLM aligns its allocations to 16 bytes: finer steps cannot differ
ARENA_MARGIN = 0.25  # optimised kernels (CMSIS-NN) ask for scratch buffers the reference ones do not
ARENA_ROUND = 1024
ARENA_START = 16 * 1024  # the first size tried; doubled until the model runs
ARENA_LIMIT = 16 * 1024 * 1024  # no board this is for has more
HEADER = "model_micro.h"
OPS_HEADER = "model_micro_ops.h"
BYTES_PER_LINE = 12

# TFLite builtin operator -> the MicroMutableOpResolver method that registers its TFLM kernel
# (tensorflow/lite/micro/micro_mutable_op_resolver.h). An operator missing here is refused at export.
RESOLVER_METHODS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize",
    "EXPAND_DIMS": "AddExpandDims", "FULLY_CONNECTED": "AddFullyConnected", "HARD_SWISH": "AddHardSwish",
    "LEAKY_RELU": "AddLeakyRelu", "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MUL": "AddMul", "PAD": "AddPad", "QUANTIZE": "AddQuantize", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "SOFTMAX": "AddSoftmax", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
}


class MicroExportError(MnistEdgeError):
    """The model cannot be made into a microcontroller artifact."""


def to_micro(job, kind: formats.ArtifactKind, path: Path) -> dict:
    """Write the three C++ files for `kind` at `path` (the .cc) and return what the manifest
    records: flash bytes, arena bytes (measured and with margin), operators, TFLM's version."""
    tflm = require("tflite_micro")
    flatbuffer = job.source(kind.source).read_bytes()
    prefix = c_identifier(job.model.name)
    model = tflm.runtime.convert_bytearray_to_object(flatbuffer)
    ops = operators(tflm.runtime, model)
    missing = [op for op in ops if op not in RESOLVER_METHODS]
    if missing:
        raise MicroExportError(f"{kind.source}: operators {', '.join(missing)} have no TFLM resolver entry known here")
    measured = smallest_arena(flatbuffer)
    arena = math.ceil(measured * (1 + ARENA_MARGIN) / ARENA_ROUND) * ARENA_ROUND
    shapes = _io_shapes(model)
    atomic_write_text(path, c_source(flatbuffer, prefix, kind.source))
    atomic_write_text(path.parent / HEADER, c_header(prefix, len(flatbuffer), arena, measured, shapes))
    atomic_write_text(path.parent / OPS_HEADER, resolver_header(prefix, ops))
    return {
        "flash_bytes": len(flatbuffer),
        ARENA_SETTING: arena,
        "arena_measured_bytes": measured,
        "arena_margin": ARENA_MARGIN,
        "operators": list(ops),
        "macs_per_image": multiply_adds(tflm.runtime, model),
        "symbols": {"data": f"g_{prefix}_model_data", "resolver": f"{_camel(prefix)}OpResolver"},
        "tflite_micro": tflm.__version__,
        "companions": [HEADER, OPS_HEADER],
    }


def c_identifier(name: str) -> str:
    """A model name as a lower-case C identifier: "cnn" -> "cnn", "my-model 2" -> "my_model_2"."""
    ident = re.sub(r"\W+", "_", name.strip().lower()).strip("_") or "model"
    return ident if not ident[0].isdigit() else f"m_{ident}"


def _camel(prefix: str) -> str:
    return "".join(part.capitalize() for part in prefix.split("_"))


def _op_names(runtime) -> dict[int, str]:
    return {v: k for k, v in vars(runtime.schema_fb.BuiltinOperator).items() if not k.startswith("_")}


def operators(runtime, model) -> tuple[str, ...]:
    """The builtin operators the model uses, in the order the graph first uses them."""
    names = _op_names(runtime)
    used = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators or ():
            code = runtime.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            used.append(names.get(code, f"BUILTIN_{code}"))
    return tuple(dict.fromkeys(used))


def multiply_adds(runtime, model) -> int:
    """Multiply-adds per image of the convolutions and dense layers (everything else is noise)."""
    names, total = _op_names(runtime), 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators or ():
            name = names.get(runtime.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]))
            output = subgraph.tensors[op.outputs[0]].shape
            weights = subgraph.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else None
            if name == "CONV_2D":  # weights [out, kh, kw, in]
                total += math.prod(output) * math.prod(weights[1:])
            elif name == "DEPTHWISE_CONV_2D":  # weights [1, kh, kw, out]
                total += math.prod(output) * weights[1] * weights[2]
            elif name == "FULLY_CONNECTED":  # weights [out, in]
                total += math.prod(output[:-1]) * math.prod(weights)
    return int(total)


def _io_shapes(model) -> dict[str, tuple[int, ...]]:
    graph = model.subgraphs[0]
    return {
        "input": tuple(int(d) for d in graph.tensors[graph.inputs[0]].shape),
        "output": tuple(int(d) for d in graph.tensors[graph.outputs[0]].shape),
    }


def smallest_arena(flatbuffer: bytes) -> int:
    """The smallest arena (a multiple of ARENA_ALIGN) with which TFLM allocates and runs the model."""
    high = ARENA_START
    while not (probe := probe_arena(flatbuffer, high)).ok:
        high *= 2
        if high > ARENA_LIMIT:
            raise MicroExportError(f"TFLM cannot run the model in {ARENA_LIMIT:,} bytes of arena: {probe.detail}")
    low = 0  # known to fail: nothing fits in no memory
    while high - low > ARENA_ALIGN:
        middle = (low + high) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if probe_arena(flatbuffer, middle).ok:
            high = middle
        else:
            low = middle
    return high


def _banner(what: str) -> str:
    return f"// {what}\n// Generated by mnist-edge {__version__}; do not edit (export the model again instead).\n"


def c_source(flatbuffer: bytes, prefix: str, source_file: str) -> str:
    """The flatbuffer as a 16-byte aligned byte array with its length (xxd -i, done properly)."""
    rows = [
        "  " + ", ".join(f"0x{b:02x}" for b in flatbuffer[i : i + BYTES_PER_LINE]) + ","
        for i in range(0, len(flatbuffer), BYTES_PER_LINE)
    ]
    digest = hashlib.sha256(flatbuffer).hexdigest()
    return (
        _banner(f"{source_file} ({len(flatbuffer):,} bytes, sha256 {digest}) for TensorFlow Lite Micro.")
        + f'\n#include "{HEADER}"\n\n'
        + "// TFLM reads the flatbuffer in place: 16-byte alignment lets it use the weights without copying them.\n"
        + f"alignas(16) const unsigned char g_{prefix}_model_data[] = {{\n"
        + "\n".join(rows)
        + f"\n}};\nconst unsigned int g_{prefix}_model_data_len = {len(flatbuffer)};\n"
    )


def c_header(prefix: str, flash: int, arena: int, measured: int, shapes: dict) -> str:
    guard = f"MNIST_EDGE_{prefix.upper()}_MODEL_MICRO_H_"
    camel = _camel(prefix)
    height, width = shapes["input"][1:3]
    return (
        _banner(f"The {prefix} model for TensorFlow Lite Micro: data, arena and shapes.")
        + f"\n#ifndef {guard}\n#define {guard}\n\n"
        + f"// The int8 flatbuffer ({flash:,} bytes of flash), defined in model_micro.cc.\n"
        + f"extern const unsigned char g_{prefix}_model_data[];\n"
        + f"extern const unsigned int g_{prefix}_model_data_len;\n\n"
        + f"// Measured: TFLM allocates and runs this model in {measured:,} bytes of arena, "
        + f"not {measured - ARENA_ALIGN:,};\n// {ARENA_MARGIN:.0%} margin (optimised kernels such as CMSIS-NN "
        + f"ask for scratch buffers), rounded up to {ARENA_ROUND}.\n"
        + f"constexpr unsigned int k{camel}TensorArenaSize = {arena};\n\n"
        + f"// Input: int8 [1, {height}, {width}] (quantized with the input tensor's scale and zero point);\n"
        + f"// output: int8 [1, {shapes['output'][-1]}] scores, dequantized with the output tensor's.\n"
        + f"constexpr int k{camel}InputHeight = {height};\n"
        + f"constexpr int k{camel}InputWidth = {width};\n"
        + f"constexpr int k{camel}ClassCount = {shapes['output'][-1]};\n\n"
        + f"#endif  // {guard}\n"
    )


def resolver_header(prefix: str, ops: tuple[str, ...]) -> str:
    guard = f"MNIST_EDGE_{prefix.upper()}_MODEL_MICRO_OPS_H_"
    camel = _camel(prefix)
    adds = "\n".join(
        f"  if (resolver.{RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;  // {op}" for op in ops
    )
    return (
        _banner(f"The operators the {prefix} model uses, and nothing else: one Add per operator.")
        + f"\n#ifndef {guard}\n#define {guard}\n\n"
        + '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        + f"constexpr unsigned int k{camel}OperatorCount = {len(ops)};\n"
        + f"using {camel}OpResolver = tflite::MicroMutableOpResolver<k{camel}OperatorCount>;\n\n"
        + f"// Registers the {len(ops)} operators of the model; kTfLiteError if the resolver is full.\n"
        + f"inline TfLiteStatus Register{camel}Operators({camel}OpResolver& resolver) {{\n"
        + adds
        + "\n  return kTfLiteOk;\n}\n\n"
        + f"#endif  // {guard}\n"
    )
