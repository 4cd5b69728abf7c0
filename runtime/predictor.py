"""Load an exported model by its manifest and predict digits from images or ready arrays."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.backends import open_session
from runtime.errors import InvalidImageError
from runtime.manifest import Artifact, Manifest, read_manifest, read_verified
from runtime.preprocess import SIZE, to_mnist, to_mnist_batch


@dataclass(frozen=True)
class Prediction:
    digit: int  # index of the most probable class (the digit itself for MNIST)
    label: str  # its class name
    confidence: float  # its probability
    probabilities: np.ndarray  # float32 [classes]

    def top(self, k: int = 3, class_names: tuple[str, ...] | None = None) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities, best first."""
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        names = class_names or tuple(str(i) for i in range(len(self.probabilities)))
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

    def __init__(self, manifest: Manifest, artifact: Artifact, session):
        self.manifest = manifest
        self.artifact = artifact
        self.session = session
        self.class_names = manifest.class_names

    def __repr__(self) -> str:
        return f"Predictor({self.manifest.name}: {self.artifact.file}, {self.artifact.format}/{self.artifact.precision})"

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        """Probabilities [N, classes] for ready inputs: float32 [N, 28, 28] in [0, 1]."""
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise InvalidImageError(
                f"predict_array expects a float32 numpy array, got {kind}; "
                "use predict() for images, or x.astype(np.float32) / 255 for uint8 pixels"
            )
        if x.ndim != 3 or x.shape[1:] != (SIZE, SIZE) or len(x) == 0:
            raise InvalidImageError(f"predict_array expects shape [N, 28, 28] with N >= 1, got {list(x.shape)}")
        # One pass each for min and max; also rejects NaN (every comparison with NaN is false).
        if not (x.min() >= 0.0 and x.max() <= 1.0):
            raise InvalidImageError("predict_array expects values in [0, 1] (no NaN); divide uint8 pixels by 255")
        return self.session.run(x)

    def to_prediction(self, probabilities: np.ndarray) -> Prediction:
        """A Prediction from one row of predict_array's output."""
        best = int(probabilities.argmax())
        return Prediction(best, self.class_names[best], float(probabilities[best]), probabilities)

    def predict(self, image) -> Prediction:
        """Predict one image: a file path, encoded bytes, a PIL image or a numpy array.

        Raises NoDigitError for an image with no ink, InvalidImageError / ImageTooLargeError for
        bad input."""
        x = to_mnist(image)
        return self.to_prediction(self.predict_array(x[np.newaxis])[0])

    def predict_batch(self, images) -> list[Prediction]:
        """Predict many images in one inference call."""
        batch = to_mnist_batch(images)
        return [self.to_prediction(p) for p in self.predict_array(batch)]


def load(
    path: str | os.PathLike,
    backend: str = "onnx",
    precision: str = "fp32",
    *,
    format: str | None = None,
    threads: int | None = None,
) -> Predictor:
    """Open an exported model: `path` is an export folder or its manifest.json.

    Reads the manifest, picks the artifact for `backend` ("onnx" or "litert") and `precision`,
    checks its sha256 (a modified file is refused), and opens one inference session."""
    manifest = read_manifest(Path(path))
    artifact = manifest.find(backend, precision, format)
    content = read_verified(manifest, artifact)
    session = open_session(backend, content, threads=threads, name=str(manifest.path_of(artifact)), format=artifact.format)
    return Predictor(manifest, artifact, session)
