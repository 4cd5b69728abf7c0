"""Read an export's manifest.json: the one contract between `export/` and `runtime/`.

The manifest says what the model expects (input name, shape, dtype, value range, the
preprocessing it assumes), what it returns (class names), and for every artifact its file,
format, precision, size, sha256 and measured accuracy/parity. An artifact is only ever opened
after its bytes have matched the manifest's sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import IntegrityError, ManifestError

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1

# Which artifact formats each backend can run.
BACKEND_FORMATS = {"onnx": ("onnx", "ort"), "litert": ("tflite",)}
DEFAULT_FORMAT = {"onnx": "onnx", "litert": "tflite"}
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Artifact:
    file: str
    format: str  # onnx | ort | tflite
    precision: str  # fp32 | fp16 | int8
    bytes: int
    sha256: str
    test_accuracy: float | None = None
    parity: dict = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return next(b for b, formats in BACKEND_FORMATS.items() if self.format in formats)


@dataclass(frozen=True)
class Manifest:
    root: Path  # the export folder the manifest lives in
    model: dict
    input: dict
    output: dict
    class_names: tuple[str, ...]
    artifacts: tuple[Artifact, ...]
    data: dict  # the whole parsed manifest, for fields the runtime does not model

    @property
    def name(self) -> str:
        return str(self.model.get("name", self.root.parent.name))

    def path_of(self, artifact: Artifact) -> Path:
        return self.root / artifact.file

    def find(self, backend: str = "onnx", precision: str = "fp32", format: str | None = None) -> Artifact:
        """The artifact for this backend and precision, or a ManifestError listing what exists."""
        if backend not in BACKEND_FORMATS:
            raise ManifestError(f"unknown backend {backend!r}; choose from {', '.join(BACKEND_FORMATS)}")
        format = format or DEFAULT_FORMAT[backend]
        if format not in BACKEND_FORMATS[backend]:
            raise ManifestError(f"backend {backend!r} cannot run {format!r} files")
        for artifact in self.artifacts:
            if artifact.format == format and artifact.precision == precision:
                return artifact
        available = ", ".join(f"{a.format}/{a.precision}" for a in self.artifacts) or "none"
        raise ManifestError(
            f"{self.root / MANIFEST_NAME}: no {format} artifact at precision {precision} (available: {available})"
        )


def _require(data: dict, key: str, kind: type, where: str):
    if key not in data:
        raise ManifestError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: field {key!r} should be {kind.__name__}, found {type(value).__name__}")
    return value


def find_exports(root: str | Path) -> list[Path]:
    """The export folders at `root`: an export folder itself, one artifacts/<model> folder, or an
    artifacts folder holding several models (artifacts/*/export)."""
    root = Path(root)
    if (root / MANIFEST_NAME).is_file():
        return [root]
    if (root / "export" / MANIFEST_NAME).is_file():
        return [root / "export"]
    return sorted(path.parent for path in root.glob(f"*/export/{MANIFEST_NAME}"))


def manifest_path(path: str | Path) -> Path:
    """Accept an export folder or the manifest.json inside it."""
    path = Path(path)
    return path if path.suffix == ".json" else path / MANIFEST_NAME


def read_manifest(path: str | Path) -> Manifest:
    """Parse and check a manifest; every structural problem is a ManifestError naming the file."""
    file = manifest_path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{file}: no manifest here; is this an export folder (artifacts/<model>/export)?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{file}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{file}: expected a JSON object")
    where = str(file)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(f"{file}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
    artifacts = []
    for i, entry in enumerate(_require(data, "artifacts", list, where)):
        at = f"{file} artifacts[{i}]"
        if not isinstance(entry, dict):
            raise ManifestError(f"{at}: expected an object")
        artifact = Artifact(
            file=_require(entry, "file", str, at),
            format=_require(entry, "format", str, at),
            precision=_require(entry, "precision", str, at),
            bytes=_require(entry, "bytes", int, at),
            sha256=_require(entry, "sha256", str, at),
            test_accuracy=entry.get("test_accuracy"),
            parity=entry.get("parity") or {},
        )
        if Path(artifact.file).name != artifact.file:
            raise ManifestError(f"{at}: file {artifact.file!r} must be a plain name inside the export folder")
        if not any(artifact.format in formats for formats in BACKEND_FORMATS.values()):
            raise ManifestError(f"{at}: unknown format {artifact.format!r}")
        artifacts.append(artifact)
    class_names = _require(data, "class_names", list, where)
    output = _require(data, "output", dict, where)
    if len(class_names) != output.get("shape", [None, len(class_names)])[-1]:
        raise ManifestError(f"{file}: {len(class_names)} class names but the output has {output['shape'][-1]} values")
    return Manifest(
        root=file.parent,
        model=_require(data, "model", dict, where),
        input=_require(data, "input", dict, where),
        output=output,
        class_names=tuple(str(c) for c in class_names),
        artifacts=tuple(artifacts),
        data=data,
    )


def read_verified(manifest: Manifest, artifact: Artifact) -> bytes:
    """The artifact's bytes, read once and checked against the manifest's size and sha256.

    The same bytes are then handed to the inference engine, so what was checked is what runs.
    """
    path = manifest.path_of(artifact)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"{path}: artifact listed in the manifest is missing") from None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(content) != artifact.bytes:
        raise IntegrityError(
            f"{path}: size {len(content)} bytes differs from the manifest's {artifact.bytes}; "
            "the file was modified or truncated, refusing to load it"
        )
    digest = hashlib.sha256(content).hexdigest()
    if digest != artifact.sha256:
        raise IntegrityError(
            f"{path}: sha256 {digest[:16]}… does not match the manifest's {artifact.sha256[:16]}…; "
            "the file was modified, refusing to load it"
        )
    return content
