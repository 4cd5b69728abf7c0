"""The apps: a Gradio page served from Python, and (`mnist_edge.demo.web`) a static site where
the model runs in the visitor's browser. Both take every answer from `mnist_edge.runtime` or an
exported model; neither imports TensorFlow.

- `app.find_models(root)`: the exported models under a folder, with their engines and precisions
- `app.DigitDemo`: the models plus a cache of loaded predictors; `predict()` is what the page calls
- `app.build_app(root) -> gr.Blocks`, `app.launch(root, host, port, share, max_file_size)`

From the command line: `mnist-edge demo --model artifacts` (needs the `demo` extra). Gradio is
imported only when an app is built, so `import mnist_edge.demo.app` stays cheap.
"""
