"""The apps: a Gradio page served from Python, and a static web app where the model runs in the
visitor's browser, offline. Both take every answer from an exported model and its manifest;
neither imports TensorFlow.

- `app.find_models(root)`: the exported models under a folder, with their engines and precisions
- `app.DigitDemo`: the models plus a cache of loaded predictors; `predict()` is what the page calls
- `app.build_app(root) -> gr.Blocks`, `app.launch(root, host, port, share, max_file_size)`

From the command line: `mnist-edge demo --model artifacts` (needs the `demo` extra). Gradio is
imported only when an app is built, so `import mnist_edge.demo.app` stays cheap.

Web app (`mnist-edge web`, docs/web.md): `web/` holds its static sources (plain ES modules),
`web_build` builds the site from the exports and the npm lockfile, `web_proofs` proves it in
Chromium, `web_server` serves it.
"""
