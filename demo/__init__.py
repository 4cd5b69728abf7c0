"""The Gradio demo: draw a digit or upload a photo of one, and see what an exported model reads.

User interface only. Every prediction goes through `runtime` (ONNX Runtime, or LiteRT where
installed), so the demo runs from `artifacts/<model>/export` folders with no TensorFlow.
Gradio itself is imported only when an app is built, so `import demo.app` stays cheap.

    from demo.app import DigitDemo, build_app, find_models, launch
    launch("artifacts")                                   # http://127.0.0.1:7860
    DigitDemo.from_root("artifacts").predict(image, "cnn", "fp32", "onnx")   # no browser

- `demo.app.find_models(root)`: the exported models under a folder, with their backends and precisions
- `demo.app.DigitDemo`: the models plus a cache of loaded predictors; `predict()` is what the page calls
- `demo.app.build_app(root) -> gr.Blocks`, `demo.app.launch(root, host, port, share, max_file_size)`

From the command line: `mnist-edge demo --model artifacts` (needs the `demo` extra).
"""
