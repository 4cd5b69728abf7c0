"""manifest.json, the one contract between an export and every runtime (Python or JavaScript).

The dataclasses below are the schema: `mnist_edge.export` builds them and writes them with
`write_manifest`, every reader gets them back from `read_manifest`, checked field by field
against the same type hints. A runtime learns everything it needs here: the input's name,
shape, dtype, value range and the preprocessing the model was trained for; the class names;
and for each artifact its kind, size, sha256 and the proofs it passed.

Versioning: `schema_version` is "MAJOR.MINOR". A reader accepts any minor version of its major
(fields it does not know are ignored, artifacts of kinds it does not know are skipped with a
note) and refuses another major version.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from mnist_edge import formats
from mnist_edge.errors import MnistEdgeError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = "2.2"  # 2.1: artifacts may list companion files and details; 2.2: an optional number reader
SCHEMA_FILE = "manifest.schema.json"  # the JSON Schema of this module's dataclasses, next to it
EXPORT_DIR = "export"  # artifacts/<model>/export holds a model's published export


class ManifestError(MnistEdgeError):
    """The manifest is missing, unreadable, or does not describe what was asked for."""


# --- the schema ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """How an arbitrary image becomes the model's input; the runtimes implement each kind.

    "digit": the MNIST recipe (ink cropped, fit in a `box` x `box` square keeping the aspect
    ratio, centre of mass at the centre, light ink on dark); see docs/preprocessing.md.
    "plain": the whole image resized to the input size, grey, scaled to [0, 1], as it is (no
    crop, no inversion): for data sets whose images are not centred ink (Fashion-MNIST)."""

    kind: str
    description: str = ""
    box: int | None = None


PREPROCESSING_TEXT = {
    "digit": (
        "Light digit on a dark background (MNIST convention), values in [0, 1]; the digit fits a {box}x{box} box "
        "(aspect ratio kept) and its centre of mass is at the image centre. docs/preprocessing.md gives the "
        "recipe every runtime follows to turn a photo or a drawing into this form."
    ),
    "plain": (
        "The whole image, grey, values in [0, 1], scaled to fit the input (aspect ratio kept, centred, padded "
        "with 0); no crop and no inversion: light objects on a dark background, as in the training data."
    ),
}
MNIST_BOX_SHARE = 20 / 28  # MNIST fits each digit in a 20x20 box inside its 28x28 images


def digit_box(size: int) -> int:
    """The side of the box a digit is fitted in, for a size x size input (20 for MNIST's 28)."""
    return round(size * MNIST_BOX_SHARE)


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int | None, ...]  # [batch, height, width]; batch None means any
    dtype: str
    range: tuple[float, float]
    preprocessing: Preprocessing

    @classmethod
    def for_images(cls, name: str, height: int, width: int, preprocessing: str) -> "InputSpec":
        """The input of a model taking [batch, height, width] float32 in [0, 1], prepared by `preprocessing`."""
        box = digit_box(min(height, width)) if preprocessing == "digit" else None
        text = PREPROCESSING_TEXT[preprocessing].format(box=box)
        return cls(name, (None, height, width), "float32", (0.0, 1.0), Preprocessing(preprocessing, text, box))

    @property
    def height(self) -> int:
        return int(self.shape[1])

    @property
    def width(self) -> int:
        return int(self.shape[2])


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: tuple[int | None, ...]  # [batch, classes]
    dtype: str
    values: str = "probabilities"  # or "logits": the runtime applies softmax (see OUTPUT_VALUES)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: str
    sha256: str
    params: int
    test_accuracy: float  # this trained model's (one seed's) accuracy on the test set
    accuracy_is: str | None = None  # says so, in words
    recipe_mean: dict | None = None  # its recipe's mean +- sd over seeds, from a recorded benchmark run


@dataclass(frozen=True)
class DataInfo:
    """The data a figure was measured on; `sha256` fingerprints the images and labels."""

    source: str
    images: int
    sha256: str


@dataclass(frozen=True)
class Proof:
    """One artifact run by one engine on the test set, compared with a reference's probabilities."""

    engine: str
    reference: str  # what it was compared with: "keras", or another engine's run of the same file
    images: int
    test_accuracy: float
    accuracy_delta: float
    argmax_agreement: float
    changed_predictions: int
    max_abs_diff: float
    mean_abs_diff: float
    passed: bool
    failure: str | None = None


@dataclass(frozen=True)
class Companion:
    """A file published with an artifact and part of it (a C header next to its source)."""

    file: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Artifact:
    file: str
    format: str
    precision: str
    engine: str
    bytes: int
    sha256: str
    batch: int | None  # None: any batch size; 1: a static batch of one
    integer_io: bool
    test_accuracy: float
    size_ratio: float | None  # bytes / bytes of the fp32 file it was quantized from
    export_seconds: float
    proofs: tuple[Proof, ...]
    companions: tuple[Companion, ...] = ()
    # What the kind's converter recorded (the microcontroller kind: flash and arena bytes, operators,
    # TFLite Micro's version); the engine's session reads its settings from here.
    details: dict | None = None

    @property
    def parity(self) -> Proof:
        """The export's proof: this file in its own engine against the Keras model."""
        return self.proofs[0]

    @property
    def passed(self) -> bool:
        return all(p.passed for p in self.proofs)


@dataclass(frozen=True)
class SkippedArtifact:
    """An artifact a manifest lists that this reader left out: a kind it does not know."""

    file: str
    format: str
    precision: str
    reason: str = "is not a kind this version of mnist-edge knows"

    def __str__(self) -> str:
        return f"{self.file}: {self.format}/{self.precision} {self.reason}; skipped"


@dataclass(frozen=True)
class ReaderProof:
    """The number reader run by the runtime (`engine`) on generated fields of MNIST test digits
    (mnist_edge.fields, `seed`): its text against Keras's on every field, and the share of fields
    read whole, by group ("all", "separated", "touching or overlapping"), by the digit-by-digit
    reader, the sequence model alone, and the two combined (what `read` does)."""

    engine: str
    fields: int
    seed: int
    source: str
    keras_agreement: float  # share of fields where the engine and Keras read the same text
    digits: dict[str, float]
    sequence: dict[str, float]
    combined: dict[str, float]
    passed: bool
    failure: str | None = None


@dataclass(frozen=True)
class Reader:
    """A sequence model that reads a whole row of digits (runtime/sequence.py), published with the
    export: its file, the Keras model it was converted from, the geometry of its input (a line
    image `height` rows tall, `pad` empty columns either side, at most `max_width` columns, padded
    to a multiple of `stride`) and its output (per `stride` columns, 11 probabilities; `blank` is
    CTC's blank class)."""

    file: str
    bytes: int
    sha256: str
    params: int
    keras_sha256: str
    input_name: str
    height: int
    pad: int
    max_width: int
    stride: int
    blank: int
    trained_on: str
    proof: ReaderProof


@dataclass(frozen=True)
class Manifest:
    schema_version: str
    created: str
    toolkit: dict
    libraries: dict
    platform: dict
    model: ModelInfo
    input: InputSpec
    output: OutputSpec
    class_names: tuple[str, ...]
    test_set: DataInfo
    calibration: dict
    thresholds: dict
    onnx_opset: int | None
    artifacts: tuple[Artifact, ...]
    reader: Reader | None = None  # 2.2: reads whole numbers where digits touch (docs/reading.md)
    # Not part of the file: where it was read from, and what this reader left out.
    root: Path | None = field(default=None, compare=False)
    skipped: tuple[SkippedArtifact, ...] = field(default=(), compare=False)

    @property
    def name(self) -> str:
        return self.model.name

    def path_of(self, artifact: Artifact) -> Path:
        if self.root is None:
            raise ManifestError("this manifest was not read from a folder; it has no files")
        return self.root / artifact.file

    def artifact(self, file: str) -> Artifact:
        for a in self.artifacts:
            if a.file == file:
                return a
        raise ManifestError(f"{self.where}: no artifact {file!r} (available: {self.available()})")

    def find(
        self, engine: str = formats.DEFAULT_ENGINE, precision: str = formats.DEFAULT_PRECISION, format: str | None = None
    ) -> Artifact:
        """The artifact `engine` runs at `precision` (its most portable format unless `format`),
        or a ManifestError listing what exists."""
        if engine not in formats.ENGINES:
            raise ManifestError(f"unknown engine {engine!r}; choose from {', '.join(formats.ENGINES)}")
        runnable = formats.engine_formats(engine)
        if format is not None and format not in runnable:
            raise ManifestError(f"{engine} cannot run {format!r} files (it runs {', '.join(runnable)})")
        for fmt in (format,) if format else runnable:
            for a in self.artifacts:
                if a.format == fmt and a.precision == precision:
                    return a
        wanted = format or "/".join(runnable)
        raise ManifestError(
            f"{self.where}: no {wanted} artifact at precision {precision} for {engine} (available: {self.available()})"
        )

    def available(self) -> str:
        return ", ".join(f"{a.file} ({a.engine} {a.precision})" for a in self.artifacts) or "none"

    @property
    def where(self) -> str:
        return str(self.root / MANIFEST_NAME) if self.root else MANIFEST_NAME

    def to_dict(self) -> dict:
        data = _to_plain(self)
        del data["root"], data["skipped"]
        return data


def json_schema() -> dict:
    """The JSON Schema of manifest.json, generated from the dataclasses above (checked in as
    mnist_edge/manifest.schema.json; the web app validates manifests with its copy). A reader
    accepts any minor version of its major: the pattern pins the major."""
    from mnist_edge.schema import json_schema as schema_of

    major = SCHEMA_VERSION.split(".")[0]
    return schema_of(
        Manifest,
        title=f"mnist-edge manifest.json, schema version {major}.x",
        skip=("root", "skipped"),
        extra={"schema_version": {"pattern": rf"^{major}\.[0-9]+$"}},
    )


# --- reading and writing -----------------------------------------------------------------------


def manifest_path(path: str | os.PathLike) -> Path:
    """Accept an export folder or the manifest.json inside it."""
    path = Path(path)
    return path if path.suffix == ".json" else path / MANIFEST_NAME


def write_manifest(folder: str | os.PathLike, manifest: Manifest) -> Path:
    """Write manifest.json atomically; a value a reader would refuse (NaN, infinity) is refused here too."""
    from mnist_edge.files import atomic_write_text

    path = Path(folder) / MANIFEST_NAME
    _check_consistency(manifest, str(path))
    try:
        text = json.dumps(manifest.to_dict(), indent=2, allow_nan=False)
    except ValueError as exc:
        raise ManifestError(f"{path}: not written, it would hold a value that is not a finite number ({exc})") from exc
    atomic_write_text(path, text + "\n")
    return path


# What a reader accepts: a manifest is a few kilobytes of shallow JSON.
MAX_MANIFEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 32


def read_manifest_json(path: str | os.PathLike) -> tuple[Path, object]:
    """The parsed JSON of a manifest file, read like an artifact: a regular file (never a FIFO or a
    device, even behind a symlink), at most MAX_MANIFEST_BYTES, nested at most MAX_JSON_DEPTH
    deep, finite numbers only. Returns (its path, the data)."""
    file = manifest_path(path)
    return file, parse_manifest_json(read_manifest_bytes(file), file)


def read_manifest_bytes(file: Path) -> bytes:
    """The bytes of the manifest file `file`, read as `read_manifest_json` reads them (regular file,
    size-capped); every problem is one ManifestError naming the file."""
    try:
        return read_regular_file(file, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ManifestError(f"{file}: no manifest here; is this an export folder (artifacts/<model>/export)?") from None
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read ({exc.strerror or exc})") from exc


def parse_manifest_json(content: bytes, file: Path) -> object:
    """Manifest bytes (read from `file`) as JSON data: UTF-8, nested at most MAX_JSON_DEPTH deep,
    finite numbers only; every problem is one ManifestError naming the file."""
    try:
        text = content.decode("utf-8")
        _check_depth(text, str(file))
        return json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{file}: {exc}") from exc


def read_regular_file(file: Path, limit: int, what: str = "a manifest") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; a FIFO, device, folder or bigger file
    is a ManifestError (`what` the file is, for the message). OSError if it cannot be opened."""
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(f"{file}: not a regular file; refusing to read it")
        if info.st_size > limit:
            raise ManifestError(f"{file}: {info.st_size:,} bytes, more than {what}'s limit of {limit:,}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            content = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(content) > limit:
        raise ManifestError(f"{file}: more than {what}'s limit of {limit:,} bytes")
    return content


def _check_depth(text: str, where: str) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH before parsing it (a parser recursing
    200,000 levels deep raises RecursionError or worse)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep; not a manifest")
        elif char in "]}":
            depth -= 1


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a valid manifest value (numbers must be finite)")


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Parse and check a manifest; every problem is one ManifestError naming the file."""
    file, data = read_manifest_json(path)
    return manifest_from_dict(data, root=file.parent)


def manifest_from_dict(data, *, root: Path | None = None) -> Manifest:
    where = str(root / MANIFEST_NAME) if root else MANIFEST_NAME
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    _check_version(data.get("schema_version"), where)
    entries = data.get("artifacts")
    if not isinstance(entries, list):
        raise ManifestError(f"{where}: field 'artifacts' should be a list")
    known, skipped = [], []
    for i, entry in enumerate(entries):
        at = f"{where} artifacts[{i}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{at}: expected an object")
        kind = formats.find_kind(str(entry.get("format")), str(entry.get("precision")))
        if kind is None:
            skipped.append(
                SkippedArtifact(str(entry.get("file", f"artifacts[{i}]")), str(entry.get("format")), str(entry.get("precision")))
            )
            continue
        known.append(entry)
    manifest = _from_plain(Manifest, {**data, "artifacts": known}, where)
    manifest = dataclasses.replace(manifest, root=root, skipped=tuple(skipped))
    _check_consistency(manifest, where)
    return manifest


def _check_version(version, where: str) -> None:
    major = SCHEMA_VERSION.split(".")[0]
    if not isinstance(version, str) or version.split(".")[0] != major:
        raise ManifestError(
            f"{where}: schema_version {version!r} is not supported by this mnist-edge (it reads {major}.x); "
            "export the model again with this version"
        )


# Bounds on what a manifest may ask a runtime to allocate: inputs up to this many pixels a side,
# up to this many classes.
MAX_INPUT_SIDE = 1024
MAX_CLASSES = 10_000
OUTPUT_VALUES = ("probabilities", "logits")  # what the model's output holds (logits: the runtime applies softmax)


def _check_consistency(manifest: Manifest, where: str) -> None:
    problems = _shape_problems(manifest)
    if manifest.input.preprocessing.kind not in PREPROCESSING_KINDS:
        problems.append(
            f"preprocessing kind {manifest.input.preprocessing.kind!r} is unknown (known: {', '.join(PREPROCESSING_KINDS)})"
        )
    if manifest.output.values not in OUTPUT_VALUES:
        problems.append(f"output values {manifest.output.values!r} should be one of {', '.join(OUTPUT_VALUES)}")
    low, high = manifest.input.range
    if not low < high:
        problems.append(f"input range {[low, high]} is empty")
    for a in manifest.artifacts:
        if "\x00" in a.file or Path(a.file).name != a.file or a.file in ("", ".", ".."):
            problems.append(f"artifact file {a.file!r} must be a plain name inside the export folder")
        if a.bytes < 0:
            problems.append(f"{a.file}: size {a.bytes} is negative")
        if not a.proofs:
            problems.append(f"{a.file} lists no proof")
        for c in a.companions:
            if "\x00" in c.file or Path(c.file).name != c.file or c.file in ("", ".", ".."):
                problems.append(f"{a.file}: companion file {c.file!r} must be a plain name inside the export folder")
    problems += _reader_problems(manifest.reader)
    accuracies = [("model", manifest.model.test_accuracy)] + [(a.file, a.test_accuracy) for a in manifest.artifacts]
    problems += [f"{what}: test accuracy {value} is not between 0 and 1" for what, value in accuracies if not 0 <= value <= 1]
    if problems:
        raise ManifestError(f"{where}: " + "; ".join(problems))


# Bounds on the reader's line image: rows, columns and column stride a runtime may be asked for.
MAX_READER_HEIGHT = 128
MAX_READER_WIDTH = 4096


def _reader_problems(reader: Reader | None) -> list[str]:
    """The number reader's file a plain name, its geometry within bounds, its blank a class."""
    if reader is None:
        return []
    problems = []
    if "\x00" in reader.file or Path(reader.file).name != reader.file or reader.file in ("", ".", ".."):
        problems.append(f"reader file {reader.file!r} must be a plain name inside the export folder")
    if reader.bytes < 0:
        problems.append(f"reader: size {reader.bytes} is negative")
    if not 1 <= reader.height <= MAX_READER_HEIGHT:
        problems.append(f"reader: height {reader.height} should be 1 to {MAX_READER_HEIGHT}")
    if not 1 <= reader.stride <= 64:
        problems.append(f"reader: stride {reader.stride} should be 1 to 64")
    if not (0 <= reader.pad and 2 * reader.pad < reader.max_width <= MAX_READER_WIDTH):
        problems.append(f"reader: max_width {reader.max_width} should exceed twice pad ({reader.pad}) and be at most {MAX_READER_WIDTH}")
    if reader.blank != 10:
        problems.append(f"reader: blank class {reader.blank} should be 10 (after the digits 0-9)")
    return problems


def _shape_problems(manifest: Manifest) -> list[str]:
    """The input and output shapes, and the digit box, within what a runtime may allocate."""
    problems = []
    shape_in, shape_out = manifest.input.shape, manifest.output.shape
    if len(shape_in) != 3:
        problems.append(f"input shape {list(shape_in)} should be [batch, height, width]")
    elif not all(d is not None and 1 <= d <= MAX_INPUT_SIDE for d in shape_in[1:]):
        problems.append(f"input shape {list(shape_in)}: height and width should be 1 to {MAX_INPUT_SIDE}")
    else:
        box = manifest.input.preprocessing.box
        if box is not None and not 1 <= box <= min(shape_in[1:]):
            problems.append(f"preprocessing box {box} should be 1 to {min(shape_in[1:])} (the input's smaller side)")
    if len(shape_out) != 2:
        problems.append(f"output shape {list(shape_out)} should be [batch, classes]")
    elif shape_out[-1] is None or not 1 <= shape_out[-1] <= MAX_CLASSES:
        problems.append(f"output shape {list(shape_out)}: classes should be 1 to {MAX_CLASSES}")
    elif shape_out[-1] != len(manifest.class_names):
        problems.append(f"{len(manifest.class_names)} class names but the output has {shape_out[-1]} values")
    for what, shape in (("input", shape_in), ("output", shape_out)):
        if shape and shape[0] is not None and shape[0] < 1:
            problems.append(f"{what} batch {shape[0]} should be at least 1 (or null: any)")
    return problems


PREPROCESSING_KINDS = tuple(PREPROCESSING_TEXT)


def find_exports(root: str | os.PathLike) -> list[Path]:
    """The export folders at `root`: an export folder itself, one model folder (artifacts/<model>),
    or a folder of model folders (artifacts/*/export)."""
    root = Path(root)
    if (root / MANIFEST_NAME).is_file():
        return [root]
    if (root / EXPORT_DIR / MANIFEST_NAME).is_file():
        return [root / EXPORT_DIR]
    return sorted(path.parent for path in root.glob(f"*/{EXPORT_DIR}/{MANIFEST_NAME}"))


MAX_EXACT_INTEGER = 2**53  # JSON numbers beyond this are not exact in JavaScript, nor sensible here

# --- dataclasses <-> JSON, checked against the type hints ---------------------------------------


def _to_plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _from_plain(cls, data, where: str):
    """Build dataclass `cls` from parsed JSON, checking every field's type; unknown keys are ignored."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in ("root", "skipped"):
            continue
        if f.name not in data:
            if f.default is not dataclasses.MISSING:
                continue
            raise ManifestError(f"{where}: missing field {f.name!r}")
        values[f.name] = _convert(hints[f.name], data[f.name], f"{where} {f.name}")
    return cls(**values)


def _convert(hint, value, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # only "X | None" is used
        (option,) = (a for a in args if a is not type(None))
        return None if value is None else _convert(option, value, where)
    if dataclasses.is_dataclass(hint):
        return _from_plain(hint, value, where)
    if origin is dict:  # dict[str, X]: an object whose values are all X
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object, found {type(value).__name__}")
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ManifestError(f"{where}: expected a list, found {type(value).__name__}")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ManifestError(f"{where}: expected {len(args)} values, found {len(value)}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ManifestError(f"{where}: expected a number, found {type(value).__name__}")
        if isinstance(value, int) and abs(value) > MAX_EXACT_INTEGER or isinstance(value, float) and not math.isfinite(value):
            raise ManifestError(f"{where}: {value} is not a finite number a manifest may hold")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ManifestError(f"{where}: expected an integer, found {type(value).__name__}")
        if abs(value) > MAX_EXACT_INTEGER:
            raise ManifestError(f"{where}: {value} is out of range")
        return value
    if hint in (str, bool, dict):
        if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
            raise ManifestError(f"{where}: expected {hint.__name__}, found {type(value).__name__}")
        return value
    raise TypeError(f"manifest schema: unsupported type {hint!r} at {where}")
