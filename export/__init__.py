"""Convert a trained Keras model to ONNX and TFLite, float and quantized, prove every artifact
against the Keras model on the real test set, and publish the passing set with a manifest.

- `export.exporter.export_model(model_dir, ...)`: convert, check, publish (needs the train extra).
- `export.convert`: the converters (tf2onnx, onnxruntime quantization and ORT tool, TFLite).
- `export.parity`: thresholds, `compare` and `check`, one error type per failed check.
- `export.manifest`: manifest.json and parity.md.
- `export.verify.verify_export(export_dir)`: re-check an export with the runtime only.

Importing this package imports nothing heavy.
"""
