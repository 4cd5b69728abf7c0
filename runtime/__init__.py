"""The light runtime: load an exported model and predict digits, with no TensorFlow.

Depends on numpy, onnxruntime and pillow; LiteRT (`ai-edge-litert`) is an optional backend.

    import runtime
    predictor = runtime.load("artifacts/cnn/export")            # ONNX Runtime, fp32
    predictor.predict("my_digit.jpg")                            # Prediction(digit=7, ...)
    predictor.predict_array(x)                                   # float32 [N, 28, 28] -> [N, 10]
    runtime.preprocess.to_mnist("my_digit.jpg")                  # what the model sees

- `runtime.load(path, backend="onnx"|"litert", precision="fp32"|"fp16"|"int8") -> Predictor`
- `runtime.preprocess.to_mnist(image) -> float32 [28, 28]`: any image to MNIST form
- `runtime.manifest`: the manifest.json contract written by `export/`
- `runtime.errors`: what the runtime refuses, and why
"""

from runtime import preprocess
from runtime.errors import (
    ImageTooLargeError,
    IntegrityError,
    InvalidImageError,
    ManifestError,
    MnistRuntimeError,
    ModelLoadError,
    NoDigitError,
    PreprocessError,
)
from runtime.predictor import Prediction, Predictor, load

__all__ = [
    "load",
    "Predictor",
    "Prediction",
    "preprocess",
    "MnistRuntimeError",
    "ManifestError",
    "IntegrityError",
    "ModelLoadError",
    "PreprocessError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoDigitError",
]
