"""Load an exported model by its manifest and predict from images or ready arrays.

Everything about the model's input comes from the manifest: its name, shape, dtype, value range
and the preprocessing it was trained for. `load` checks the artifact's bytes against the
manifest, opens one engine session, and checks that session against the manifest too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_edge import formats
from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import Artifact, Manifest, read_manifest
from mnist_edge.runtime.backends import open_session
from mnist_edge.runtime.errors import InvalidImageError, ModelLoadError, ModelOutputError
from mnist_edge.runtime.integrity import read_verified
from mnist_edge.runtime.preprocess import preparer
from mnist_edge.signature import SignedExport, configured_public_key, unchecked_status, verify_signature

DEFAULT_ENGINE = formats.DEFAULT_ENGINE
DEFAULT_PRECISION = formats.DEFAULT_PRECISION


@dataclass(frozen=True)
class Prediction:
    digit: int  # index of the most probable class: the digit itself for MNIST
    label: str  # its class name
    confidence: float  # its probability
    probabilities: np.ndarray  # float32 [classes]
    class_names: tuple[str, ...] = ()

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities, best first."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        names = self.class_names or tuple(str(i) for i in range(len(self.probabilities)))
        return [(names[i], float(self.probabilities[i])) for i in order]

    def as_dict(self) -> dict:
        return {
            "digit": self.digit,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": [round(float(p), 6) for p in self.probabilities],
        }


class Predictor:
    """One verified artifact and one inference session, created once and reused."""

    def __init__(
        self, manifest: Manifest, artifact: Artifact, session, signature: str = "", signed: SignedExport | None = None,
        threads: int | None = None,
    ):
        self.manifest = manifest
        self._signed, self._threads, self._reader = signed, threads, None
        self.signature = signature  # "verified: signed by key ...", or why it was not checked
        self.artifact = artifact
        self.session = session
        self.class_names = manifest.class_names
        self.input_shape = (manifest.input.height, manifest.input.width)
        self._prepare = preparer(manifest.input)
        self._low, self._high = manifest.input.range

    def __repr__(self) -> str:
        return f"Predictor({self.manifest.name}: {self.artifact.file}, {self.artifact.engine} {self.artifact.precision})"

    def prepare(self, image, *, max_pixels: int | None = None) -> np.ndarray:
        """One image as the model's input, float32 [height, width], by the manifest's preprocessing
        (a lower `max_pixels` than the runtime's may be set). Raises NoDigitError,
        InvalidImageError, ImageTooLargeError (all PreprocessError)."""
        return self._prepare(image, max_pixels=max_pixels)

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for ready inputs: float32 [N, height, width] in the input range."""
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise InvalidImageError(
                f"predict_array expects a float32 numpy array, got {kind}; "
                "use predict() for images, or x.astype(np.float32) / 255 for uint8 pixels"
            )
        if x.ndim != 3 or x.shape[1:] != self.input_shape or len(x) == 0:
            height, width = self.input_shape
            raise InvalidImageError(f"predict_array expects shape [N, {height}, {width}] with N >= 1, got {list(x.shape)}")
        # One pass each for min and max; also rejects NaN (every comparison with NaN is false).
        if not (x.min() >= self._low and x.max() <= self._high):
            raise InvalidImageError(
                f"predict_array expects values in [{self._low:g}, {self._high:g}] (no NaN); divide uint8 pixels by 255"
            )
        return self._checked_output(self._run(x), len(x))

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The engine's output; an engine that fails at run time (a graph asking for too much
        memory, an operator that cannot run) is one ModelOutputError."""
        try:
            return np.asarray(self.session.run(x))
        except MnistEdgeError:
            raise
        except Exception as exc:  # onnxruntime and LiteRT raise their own types
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ModelOutputError(f"{self.artifact.file}: {self.artifact.engine} failed running the model ({detail})") from exc

    def _checked_output(self, output: np.ndarray, rows: int) -> np.ndarray:
        """Probabilities [rows, classes] from the engine's output: the shape the manifest promises,
        finite, and probabilities (softmax applied first when the manifest says the model returns logits)."""
        where = self.artifact.file
        expected = (rows, len(self.class_names))
        if output.shape != expected:
            raise ModelOutputError(
                f"{where}: the model returned shape {list(output.shape)} for {rows} inputs, expected {list(expected)}"
            )
        if not np.isfinite(output).all():
            bad = int((~np.isfinite(output)).any(axis=1).sum())
            raise ModelOutputError(
                f"{where}: the model returned NaN or infinite probabilities for {bad} of {rows} inputs; the model file is broken"
            )
        if self.manifest.output.values == "logits":
            return softmax(output)
        sums = output.sum(axis=1)
        if output.min() < -PROBABILITY_TOLERANCE or np.abs(sums - 1).max() > PROBABILITY_TOLERANCE:
            raise ModelOutputError(
                f"{where}: the model's outputs are not probabilities (smallest {output.min():.4g}, row sums "
                f"{sums.min():.4g} to {sums.max():.4g}); if it returns logits, its manifest must say output values \"logits\""
            )
        return output.astype(np.float32, copy=False)

    def to_prediction(self, probabilities: np.ndarray) -> Prediction:
        """A Prediction from one row of predict_array's output."""
        best = int(probabilities.argmax())
        return Prediction(best, self.class_names[best], float(probabilities[best]), probabilities, self.class_names)

    def predict(self, image) -> Prediction:
        """Predict one image: a file path, encoded bytes, a PIL image or a numpy array.

        Raises NoDigitError for an image with no ink, InvalidImageError / ImageTooLargeError for
        bad input."""
        x = self.prepare(image)
        return self.to_prediction(self.predict_array(x[np.newaxis])[0])

    def read(self, image, *, min_confidence: float | None = None, max_pixels: int | None = None, reader: str = "auto"):
        """Read a whole number: a row of 1 to 12 digits (docs/reading.md). Returns a
        number.Reading (text, confidence, rejected, which reader made it, and per digit its class,
        confidence, top 3 and box in input pixels). `reader`: "auto" (the export's sequence reader
        combined with the digit-by-digit one, where the export has it), "digits" or "sequence".
        Raises NoDigitError for a blank field, TooManyDigitsError, and the decoding errors of
        predict; ModelLoadError if the sequence reader is asked for and cannot be loaded."""
        from mnist_edge.runtime.reading import read

        model = self.sequence_reader() if self.uses_reader(reader) else None
        return read(self, image, reader=reader, sequence_model=model, min_confidence=min_confidence, max_pixels=max_pixels)

    @property
    def has_reader(self) -> bool:
        """Whether the export holds a number reader (a sequence model) with a passed proof."""
        return self.manifest.reader is not None and self.manifest.reader.proof.passed

    def uses_reader(self, reader: str = "auto") -> bool:
        """Whether `read(..., reader=reader)` reads with the export's number reader."""
        return reader == "sequence" or (reader == "auto" and self.has_reader)

    def sequence_reader(self, content: bytes | None = None):
        """The export's number reader, opened once (its bytes checked as every artifact's are;
        `content`: its bytes when they come from elsewhere than the export folder, as a Ray actor's)."""
        if self._reader is None:
            from mnist_edge.runtime.sequence import open_reader

            self._reader = open_reader(self.manifest, self._signed, self._threads, content)
        return self._reader

    def predict_batch(self, images) -> list[Prediction]:
        """Predict many images in one inference call. The first bad image raises."""
        prepared = [self.prepare(image) for image in images]
        if not prepared:
            return []
        return [self.to_prediction(p) for p in self.predict_array(np.stack(prepared))]


# How far an output row may be from a probability distribution (int8 outputs are rounded to 1/256,
# up to 0.02 off in 10 classes; logits are off by far more).
PROBABILITY_TOLERANCE = 0.05


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def check_session(session, manifest: Manifest, artifact: Artifact) -> None:
    """Raise one ModelLoadError listing every way the loaded model disagrees with its manifest."""
    spec_in, spec_out = manifest.input, manifest.output
    expected_in = (artifact.batch, *spec_in.shape[1:])
    expected_out = (artifact.batch, *spec_out.shape[1:])
    integer = formats.INTEGER_IO_DTYPE if artifact.integer_io else None
    problems = []
    for what, got, shape, dtype, name in (
        ("input", session.input, expected_in, integer or spec_in.dtype, spec_in.name),
        ("output", session.output, expected_out, integer or spec_out.dtype, spec_out.name),
    ):
        if session.named_io and got.name != name:
            problems.append(f"{what} is named {got.name!r}, the manifest says {name!r}")
        if got.shape != shape:
            problems.append(f"{what} shape is {_shape(got.shape)}, the manifest says {_shape(shape)}")
        if got.dtype != dtype:
            problems.append(f"{what} dtype is {got.dtype}, the manifest says {dtype}")
    if problems:
        raise ModelLoadError(f"{manifest.path_of(artifact)} does not match its manifest: " + "; ".join(problems))


def _shape(shape) -> str:
    return "[" + ", ".join("batch" if d is None else str(d) for d in shape) + "]"


def load(
    path: str | os.PathLike,
    engine: str = DEFAULT_ENGINE,
    precision: str | None = None,
    *,
    format: str | None = None,
    file: str | None = None,
    threads: int | None = None,
    public_key: str | os.PathLike | None = None,
) -> Predictor:
    """Open an exported model: `path` is an export folder or its manifest.json.

    With a public key (`public_key`, else $MNIST_EDGE_PUBLIC_KEY) the export's signature is
    checked first, over every file: an unsigned export, another key's signature or a changed,
    added or removed file raises SignatureError before any model bytes reach an engine. Then it
    picks the artifact `engine` runs at `precision` (default: fp32, or the engine's only precision)
    or exactly `file`, checks its bytes against the manifest (a modified file is refused), opens
    one session and checks it against the manifest's input and output."""
    manifest, signed, status = _read_manifest(path, configured_public_key(public_key))
    if precision is None:
        precision = formats.default_precision(engine) if engine in formats.ENGINES else DEFAULT_PRECISION
    artifact = manifest.artifact(file) if file else manifest.find(engine, precision, format)
    failed = [proof for proof in artifact.proofs if not proof.passed]
    if failed:
        raise ModelLoadError(
            f"{manifest.path_of(artifact)}: its manifest records a failed proof ({failed[0].engine} against "
            f"{failed[0].reference}: {failed[0].failure or 'failed'}); refusing to load it"
        )
    content = read_verified(manifest, artifact)
    if signed is not None:
        signed.check(artifact.file, content)  # the very bytes the engine gets are the signed ones
    session = open_session(
        artifact.engine, content, threads=threads, name=str(manifest.path_of(artifact)), format=artifact.format,
        settings=artifact.details,
    )
    check_session(session, manifest, artifact)
    return Predictor(manifest, artifact, session, signature=status, signed=signed, threads=threads)


def _read_manifest(path, public_key: Path | None) -> tuple[Manifest, SignedExport | None, str]:
    """The manifest, with the signature check when a key is configured, and what was checked."""
    if public_key is None:
        return read_manifest(Path(path)), None, unchecked_status(path)
    signed = verify_signature(path, public_key=public_key)
    return signed.read_manifest(), signed, f"verified: signed by {signed.signer}"
