"""Convert a trained Keras model to every artifact kind of `mnist_edge.formats`, prove each one
against the Keras model on the real test set, and publish the passing set with a manifest.

- `exporter.export_model(model_dir, ...)`: convert all, prove each, publish or reject (train extra).
- `convert`: one converter per artifact kind (tf2onnx, onnxruntime quantization and ORT tool, TFLite).
- `micro`: the microcontroller kind's converter (C++ files, op resolver, measured tensor arena).
- `parity`: thresholds, `compare` and `check`, one error type per kind of failed check.
- `publish`: the manifest, parity.md, the staging folder and the atomic publish.
- `verify.verify_export(export_dir)`: re-check an export with the runtime only.

Importing this package imports nothing heavy.
"""
