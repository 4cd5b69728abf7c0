"""The light runtime: load an exported model by its manifest and predict, with no TensorFlow.

Depends on numpy, onnxruntime and pillow; LiteRT (`ai-edge-litert`, the `litert` extra) and
TensorFlow Lite Micro (`tflite-micro`, the `micro` extra; `runtime.micro`) are optional engines.

    from mnist_edge import runtime
    predictor = runtime.load("artifacts/cnn/export")                 # onnxruntime, fp32
    predictor = runtime.load("artifacts/cnn/export", engine="litert", precision="int8")
    predictor.predict("my_digit.jpg")                                 # Prediction(digit=7, ...)
    predictor.predict_array(x)                                        # float32 [N, 28, 28] -> [N, 10]
    predictor.prepare("my_digit.jpg")                                 # what the model sees

- `runtime.load(path, engine, precision, format=, file=, threads=, public_key=) -> Predictor`
  (with a public key, or $MNIST_EDGE_PUBLIC_KEY, only an export signed by its owner loads; docs/security.md)
- `runtime.preprocess.to_mnist(image)`: any digit image in MNIST form (docs/preprocessing.md)
- `runtime.explain.occlusion_map(predictor, x)`: what the model looked at, [28, 28] (docs/explain.md)
- `runtime.errors`: what the runtime refuses, and why
- The manifest it reads is `mnist_edge.manifest`; the engines it can use, `mnist_edge.formats`.
"""

from mnist_edge.runtime import explain, preprocess
from mnist_edge.runtime.errors import (
    ImageTooLargeError,
    IntegrityError,
    InvalidImageError,
    ManifestError,
    MnistRuntimeError,
    ModelLoadError,
    ModelOutputError,
    NoDigitError,
    PreprocessError,
    SignatureError,
)
from mnist_edge.runtime.predictor import Prediction, Predictor, load

__all__ = [
    "load",
    "Predictor",
    "Prediction",
    "preprocess",
    "explain",
    "MnistRuntimeError",
    "ManifestError",
    "IntegrityError",
    "SignatureError",
    "ModelLoadError",
    "ModelOutputError",
    "PreprocessError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoDigitError",
]
