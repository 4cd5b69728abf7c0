"""Errors of the runtime. All are MnistEdgeError, so the CLI prints them as one line."""

from __future__ import annotations

from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import ManifestError  # noqa: F401  (the runtime refuses bad manifests too)
from mnist_edge.signature import SignatureError  # noqa: F401  (and, with a public key, unsigned exports)


class MnistRuntimeError(MnistEdgeError):
    """Base class of everything the runtime refuses."""


# --- models --------------------------------------------------------------------------------


class IntegrityError(MnistRuntimeError):
    """An artifact's bytes do not match the manifest's size or sha256: it was modified."""


class ModelLoadError(MnistRuntimeError):
    """The inference engine cannot load the artifact, or the loaded model disagrees with its manifest."""


class ModelOutputError(MnistRuntimeError):
    """The model returned something that is not a probability for every class (NaN, infinity)."""


# --- images --------------------------------------------------------------------------------


class PreprocessError(MnistRuntimeError):
    """An input cannot be turned into a 28x28 digit."""


class InvalidImageError(PreprocessError):
    """Not an image, a truncated file, or an array of the wrong shape or dtype."""


class ImageTooLargeError(PreprocessError):
    """Over the size limit (a decompression bomb, or simply too big to be a digit)."""


class NoDigitError(PreprocessError):
    """The image holds no ink: nothing to recognise."""
