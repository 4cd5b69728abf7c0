"""Every artifact kind, precision and engine, declared once.

The exporter's plan, the converters it calls, the runtime's choice of engine, `verify`, the
command line's `--formats/--precisions/--engine` choices and the apps' menus are all derived
from the tables below. Adding an artifact kind is one entry in `KINDS` plus its converter
function; adding an engine is one entry in `ENGINES` plus its session class (and, for the web
app, one entry in `BROWSER_ENGINES` plus its page module in demo/web/js/engines/). Nothing else
names a kind, format, precision or engine: code asks these tables, it never branches on a name.

Converters and sessions are named by dotted path ("module:function") and imported only when
used, so reading this module costs nothing and pulls in neither TensorFlow nor onnxruntime.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_PRECISION = "fp32"  # what runtime.load, the CLI and the apps pick unless asked otherwise
SOURCE_PRECISION = "fp32"  # the trained Keras model's, the reference every artifact is converted from
# Computed in integers: two engines may round one file differently (requantization), so their runs
# agree in argmax only, never to a float tolerance (the browser proofs hold them to agreement).
INTEGER_PRECISIONS = ("int8",)
INTEGER_IO_DTYPE = "int8"  # the tensors in and out of an `integer_io` kind (numpy's name)
# What the web site ships unless `mnist-edge web --precision` says otherwise: the smallest download
# that keeps the test accuracy.
SITE_PRECISIONS = ("int8",)

# How an artifact of each precision is proven against the Keras model on the test set: the
# checks of mnist_edge.export.parity it must pass, each with the Thresholds field that limits it.
# A kind takes its precision's rules unless it declares its own (ArtifactKind.rules).
PROOF_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "fp32": (("argmax_agreement", "fp32_min_agreement"), ("max_abs_diff", "fp32_max_abs_diff")),
    "fp16": (("argmax_agreement", "fp16_min_agreement"),),
    "int8": (
        ("accuracy_drop", "int8_max_accuracy_drop"),
        ("argmax_agreement", "int8_min_agreement"),
        ("size_ratio", "int8_max_size_ratio"),
    ),
}

# How a kind with a `same_file_reference` is proven against that engine's run of its source file
# (two engines, one file: TFLite Micro and LiteRT on the same int8 flatbuffer).
SAME_FILE_RULES: tuple[tuple[str, str], ...] = (("argmax_agreement", "same_file_min_agreement"),)

# What the exporter itself needs besides the converters and the proving engines (it loads the
# Keras model and computes the reference probabilities), and the extra that installs the converters.
EXPORT_MODULES = ("tensorflow", "keras")
CONVERTER_EXTRA = "train"
# The packages that make the files, whose versions a manifest records (the engines' own are added
# from ENGINES' `distribution`); PyPI names, which are not always the modules' ("tensorflow-cpu").
CONVERTER_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "numpy")


@dataclass(frozen=True)
class Engine:
    """An inference engine that runs artifacts in Python (and proves them at export)."""

    name: str  # the one spelling used everywhere: CLI, manifest, API
    label: str  # how people call it, for tables and menus
    module: str  # what must be importable for it to run
    session: str  # "module:Class" of the runtime session that wraps it
    extra: str  # the pip extra that installs it ("" for the base install)
    distribution: str  # its package on PyPI, whose version a manifest records
    thread_safe: bool = False  # True: one session may serve several threads at once (else behind a lock)
    browser: tuple[str, ...] = ()  # its counterparts in a web page (keys of BROWSER_ENGINES)

    @property
    def modules(self) -> tuple[str, ...]:
        """The modules that must be importable for it to run."""
        return (self.module,)


@dataclass(frozen=True)
class BrowserEngine:
    """An engine that runs artifacts in a web page; proven in Chromium by `mnist-edge web`."""

    name: str
    label: str
    npm_package: str
    reference: str  # the Python engine (a key of ENGINES) whose run of the same file it is compared with
    formats: tuple[str, ...]  # the file formats its proof tries (kinds list it in browser_engines where it runs)
    files: tuple[str, ...]  # what a page loads, relative to node_modules: the entry module first
    bundled: bool  # shipped in the site; False: loaded only by the build's proofs
    page_module: str  # its session module in the page, relative to demo/web/js: exports `open(...)`


ENGINES = {
    "onnxruntime": Engine(
        "onnxruntime", "ONNX Runtime", "onnxruntime", "mnist_edge.runtime.backends:OnnxSession", "", "onnxruntime",
        thread_safe=True, browser=("onnxruntime-web",),
    ),
    "litert": Engine(
        "litert", "LiteRT", "ai_edge_litert.interpreter", "mnist_edge.runtime.backends:LiteRTSession", "litert",
        "ai-edge-litert", thread_safe=False, browser=("litert-js",),
    ),
    "tflite-micro": Engine(
        "tflite-micro", "TFLite Micro", "tflite_micro", "mnist_edge.runtime.micro:MicroSession", "micro",
        "tflite-micro",
    ),
}

DEFAULT_ENGINE = "onnxruntime"  # in the base install: runs everywhere mnist-edge does

BROWSER_ENGINES = {
    # The wasm-only build: the default ort.min.mjs would pull a 28 MB WebGPU build instead.
    "onnxruntime-web": BrowserEngine(
        "onnxruntime-web", "onnxruntime-web", "onnxruntime-web", "onnxruntime", ("onnx", "ort"),
        (
            "onnxruntime-web/dist/ort.wasm.min.mjs",
            "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
            "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
        ),
        bundled=True, page_module="engines/onnxruntime-web.js",
    ),
    # About 9 MB of wasm per build variant: proven, not shipped (the site runs the ONNX artifacts).
    "litert-js": BrowserEngine(
        "litert-js", "LiteRT.js", "@litertjs/core", "litert", ("tflite",),
        ("@litertjs/core/dist/index.js", "@litertjs/core/wasm/", "@litertjs/wasm-utils/dist/index.js"),
        bundled=False, page_module="engines/litert-js.js",
    ),
}


@dataclass(frozen=True)
class ArtifactKind:
    """One file an export can hold: what it is, what makes it, what proves and runs it."""

    file: str  # its name inside the export folder
    format: str  # the file format: onnx | ort | tflite
    family: str  # what `--formats` calls it (onnx covers .onnx and .ort)
    precision: str  # fp32 | fp16 | int8
    engine: str  # the Python engine that proves it at export and runs it (a key of ENGINES)
    converter: str  # "module:function(job, path)" that writes it
    batch: int | None = None  # None: any batch size; 1: a static batch of one (mobile delegates, LiteRT.js)
    integer_io: bool = False  # int8 tensors in and out, with the scale and zero point in the file
    size_reference: str | None = None  # quantized kinds: the fp32 file whose size they are compared with
    browser_engines: tuple[str, ...] = ()  # engines of BROWSER_ENGINES that can run it in a page
    source: str | None = None  # the artifact its converter starts from (made first, in scratch if unpublished)
    needs: tuple[str, ...] = ()  # modules its converter imports, from the CONVERTER_EXTRA
    load_options: tuple[tuple[str, str], ...] = ()  # settings its engine's session needs to read this format
    proof_rules: tuple[tuple[str, str], ...] | None = None  # None: the rules of its precision (PROOF_RULES)

    @property
    def rules(self) -> tuple[tuple[str, str], ...]:
        """The checks its proof must pass: (check name, Thresholds field)."""
        return PROOF_RULES[self.precision] if self.proof_rules is None else self.proof_rules
    same_file_reference: str | None = None  # also proven against this engine's run of `source` (SAME_FILE_RULES)


KINDS: tuple[ArtifactKind, ...] = (
    ArtifactKind(
        "model.onnx", "onnx", "onnx", "fp32", "onnxruntime", "mnist_edge.export.convert:to_onnx",
        browser_engines=("onnxruntime-web",), needs=("tensorflow", "tf2onnx", "onnx"),
    ),
    ArtifactKind(
        "model.int8.onnx", "onnx", "onnx", "int8", "onnxruntime", "mnist_edge.export.convert:quantize_onnx",
        size_reference="model.onnx", browser_engines=("onnxruntime-web",), source="model.onnx", needs=("onnx",),
    ),
    ArtifactKind(
        "model.ort", "ort", "onnx", "fp32", "onnxruntime", "mnist_edge.export.convert:to_ort",
        browser_engines=("onnxruntime-web",), source="model.onnx",
        # From bytes onnxruntime cannot see the file extension: say it is the ORT mobile format.
        load_options=(("session.load_model_format", "ORT"),),
    ),
    ArtifactKind(
        "model.tflite", "tflite", "tflite", "fp32", "litert", "mnist_edge.export.convert:to_tflite",
        batch=1, browser_engines=("litert-js",), needs=("tensorflow",),
    ),
    ArtifactKind(
        "model.fp16.tflite", "tflite", "tflite", "fp16", "litert", "mnist_edge.export.convert:to_tflite",
        batch=1, size_reference="model.tflite", browser_engines=("litert-js",), needs=("tensorflow",),
    ),
    ArtifactKind(
        "model.int8.tflite", "tflite", "tflite", "int8", "litert", "mnist_edge.export.convert:to_tflite",
        batch=1, integer_io=True, size_reference="model.tflite", needs=("tensorflow",),
    ),
    # For microcontrollers: the int8 flatbuffer as C++ (with its op resolver and measured arena),
    # run in TFLM's own interpreter and proven against LiteRT's run of the same flatbuffer.
    ArtifactKind(
        "model_micro.cc", "tflm", "micro", "int8", "tflite-micro", "mnist_edge.export.micro:to_micro",
        batch=1, integer_io=True, source="model.int8.tflite", same_file_reference="litert",
    ),
)


class UnknownKindError(KeyError):
    """No artifact kind of that name (or format and precision) is registered."""


def kind(file: str) -> ArtifactKind:
    """The registered kind whose file is `file`."""
    for k in KINDS:
        if k.file == file:
            return k
    raise UnknownKindError(file)


def find_kind(format: str, precision: str) -> ArtifactKind | None:
    """The registered kind of this format and precision, or None."""
    return next((k for k in KINDS if k.format == format and k.precision == precision), None)


# The number reader (export/reader.py, runtime/sequence.py) is an ONNX file run by onnxruntime, in
# the base install; its proof and `verify` read digit by digit with the digit model's file of this
# kind (the default engine's portable fp32 file), so `export --reader` needs that kind.
READER_ENGINE = DEFAULT_ENGINE


def reader_partner() -> ArtifactKind:
    """The digit model's kind the number reader is proven beside: the default engine's first fp32 kind."""
    return next(k for k in KINDS if k.engine == DEFAULT_ENGINE and k.precision == DEFAULT_PRECISION)


def families() -> tuple[str, ...]:
    """What `--formats` accepts, in registry order."""
    return _unique(k.family for k in KINDS)


def formats() -> tuple[str, ...]:
    """Every file format, in registry order."""
    return _unique(k.format for k in KINDS)


def engine_formats(engine: str) -> tuple[str, ...]:
    """The formats `engine` runs, its default (most portable) first."""
    return _unique(k.format for k in KINDS if k.engine == engine)


def engine_of_format(format: str) -> str:
    """The engine that runs files of this format."""
    for k in KINDS:
        if k.format == format:
            return k.engine
    raise UnknownKindError(format)


def plan(families_wanted: tuple[str, ...], precisions_wanted: tuple[str, ...]) -> tuple[ArtifactKind, ...]:
    """The kinds an export makes for these `--formats` and `--precisions`, in registry order."""
    return tuple(k for k in KINDS if k.family in families_wanted and k.precision in precisions_wanted)


def default_precision(engine: str) -> str:
    """The precision an engine runs when none is asked for: DEFAULT_PRECISION if it runs it, else its first."""
    offered = _unique(k.precision for k in KINDS if k.engine == engine)
    return DEFAULT_PRECISION if DEFAULT_PRECISION in offered else offered[0]


def browser_engines_for(format: str) -> tuple[str, ...]:
    """The browser engines whose proofs try files of this format."""
    return tuple(name for name, engine in BROWSER_ENGINES.items() if format in engine.formats)


def load_options(format: str) -> tuple[tuple[str, str], ...]:
    """The settings an engine's session needs to read files of this format from bytes."""
    return next((k.load_options for k in KINDS if k.format == format), ())


def export_modules(kinds: tuple[ArtifactKind, ...] | None = None) -> tuple[str, ...]:
    """Every module an export of `kinds` (default: all) needs: the exporter's own, the converters',
    their sources' and the proving engines'."""
    kinds = KINDS if kinds is None else kinds
    modules = list(EXPORT_MODULES)
    for k in kinds:
        modules += [*k.needs, *(kind(k.source).needs if k.source else ()), *ENGINES[k.engine].modules]
        modules += ENGINES[k.same_file_reference].modules if k.same_file_reference else ()
    return _unique(m.split(".")[0] for m in modules)


def extra_for_module() -> dict[str, str]:
    """The pip extra that installs each module the converters and engines need (top-level names)."""
    extras = {m.split(".")[0]: CONVERTER_EXTRA for k in KINDS for m in k.needs}
    for engine in ENGINES.values():
        if engine.extra:
            extras.update({m.split(".")[0]: engine.extra for m in engine.modules})
    return extras


def browser_table() -> dict:
    """The browser engines as the web page reads them: demo/web/js/engines/engines.json, written
    from this table by `python -m mnist_edge.contract` (see browser_table_schema)."""
    from dataclasses import asdict

    return {"engines": {name: asdict(e) for name, e in BROWSER_ENGINES.items()}}


def browser_table_schema() -> dict:
    """The JSON Schema of browser_table(), from the BrowserEngine dataclass."""
    from mnist_edge.schema import DRAFT, object_schema

    return {
        "$schema": DRAFT,
        "title": "mnist-edge browser engines (engines.json)",
        "type": "object",
        "properties": {"engines": {"type": "object", "additionalProperties": object_schema(BrowserEngine)}},
        "required": ["engines"],
    }


def resolve(dotted: str):
    """Import "package.module:name" and return the named object."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
