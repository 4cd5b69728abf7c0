"""A Gradio page to draw or upload a digit and see what an exported model predicts.

Every prediction goes through `runtime`: the page never imports TensorFlow or Keras. Gradio is
imported inside `build_app` and `launch`, so the prediction path (`DigitDemo.predict`) can be
used, and tested, without it.

    models = find_models(Path("artifacts"))          # {"cnn": ModelChoice, "mlp": ModelChoice}
    demo = DigitDemo(models)
    demo.predict(image, "cnn", "fp32", "onnxruntime")  # (label dict, 224x224 model input, status)
    demo.explain(image, "cnn", "fp32", "onnxruntime")  # (224x224 occlusion overlay, caption)
    launch(Path("artifacts"))                         # serves on http://127.0.0.1:7860
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist_edge import formats, runtime
from mnist_edge.errors import MnistEdgeError
from mnist_edge.imagefolder import count_samples, save_sample
from mnist_edge.manifest import find_exports, read_manifest

DEFAULT_MODEL_ORDER = ("cnn", "mlp")  # the first one found is selected when the page opens

# The drawing canvas. Gradio's brush size is a radius: 14 draws strokes 28 px wide, which on a
# 400 px canvas, for a digit drawn across most of it, shrink to MNIST's 2 px in the 20x20 box.
CANVAS_SIZE = 400
BRUSH_RADIUS = 14
PREVIEW_SIZE = 224  # the 28x28 model input, enlarged 8x with nearest neighbour so pixels show
EXAMPLES = 10  # example uploads: the first test digit of each class
EXAMPLE_SIZE = 140  # example digits are enlarged 5x and drawn dark on white, like a scan
CONCURRENCY = 4  # predictions running at once; sessions are small and single-threaded
# A drawing from the canvas is 400x400; anything much larger sent to the drawing endpoint is not
# from this page. Checked from the PNG header, before any pixel is decoded.
MAX_DRAWING_PIXELS = 4_000_000

# The Gradio page's Content-Security-Policy: nothing from another origin (no fonts, scripts or
# telemetry fetched from the internet; nothing sent elsewhere), no plugins, no framing. Gradio's
# front end writes inline scripts and styles, and its drawing canvas (pixi.js) compiles shaders
# with eval, so 'unsafe-inline' and 'unsafe-eval' stay (measured: without them the Sketchpad never
# appears); the static web app
# (demo/web_server.py SITE_CSP) has no inline code and a stricter policy.
DEMO_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

NOTHING_DRAWN = "Draw a digit first (or upload an image)."
# What the served page says for any file it did not receive itself: the same words whether the
# path exists, is a folder or is unreadable, so the API reveals nothing about the server's files.
NOT_AN_UPLOAD = "only images uploaded to or drawn on this page are read"
REFRESH_SECONDS = 5  # how often an open page looks for newly published models


# --- the models on offer -----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """One exported model: where it is and which engine/precision pairs this install can run."""

    name: str
    export_dir: Path
    precisions: dict[str, tuple[str, ...]]  # engine -> precisions, in formats.PRECISIONS order
    test_accuracy: float | None = None
    created: str = ""  # when the export was made: a re-published model is a new choice

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(self.precisions)


def engine_available(engine: str) -> bool:
    """True when `engine`'s Python module (LiteRT is the optional `ai-edge-litert`) can be imported."""
    try:
        importlib.import_module(formats.ENGINES[engine].module)
    except (ImportError, OSError):  # not installed, or its native library does not load here
        return False
    return True


def find_models(root: Path) -> dict[str, ModelChoice]:
    """The exported models under `root` (artifacts/, artifacts/<model> or its export folder),
    each with the precisions available per engine. Engines are offered only where installed."""
    root = Path(root)
    engines = [e for e in formats.ENGINES if engine_available(e)]
    models: dict[str, ModelChoice] = {}
    for export_dir in find_exports(root):
        manifest = read_manifest(export_dir)
        precisions = {}
        for engine in engines:
            found = {a.precision for a in manifest.artifacts if a.engine == engine}
            if found:
                precisions[engine] = tuple(p for p in formats.PRECISIONS if p in found)
        if not precisions:
            continue
        name = manifest.name if manifest.name not in models else str(export_dir.parent)
        models[name] = ModelChoice(name, export_dir, precisions, manifest.model.test_accuracy, manifest.created)
    if not models:
        raise MnistEdgeError(f"no exported model under {root}; run mnist-edge pipeline")
    order = {name: i for i, name in enumerate(DEFAULT_MODEL_ORDER)}
    return dict(sorted(models.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


# --- predictions ------------------------------------------------------------------------------


@dataclass
class DigitDemo:
    """The models on offer and their predictors: each (model, engine, precision) is loaded on
    first use, once, and reused by every request. onnxruntime sessions may run concurrently;
    a LiteRT interpreter may not, so each LiteRT predictor runs under its own lock."""

    models: dict[str, ModelChoice]
    collect: Path | None = None  # where "this is a N" saves samples (mnist-edge demo --collect)
    root: Path | None = None  # the folder the models were found in, looked at again by refresh()
    # Served: only files inside this folder (Gradio's upload folder) are ever read; None: any
    # image a Python caller passes.
    uploads: Path | None = None
    _predictors: dict[tuple[str, str, str], tuple[runtime.Predictor, contextlib.AbstractContextManager]] = field(
        default_factory=dict, repr=False
    )
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_root(cls, root: Path, collect: Path | None = None, uploads: Path | None = None) -> "DigitDemo":
        return cls(
            find_models(Path(root)), collect=Path(collect) if collect else None, root=Path(root),
            uploads=Path(os.path.realpath(uploads)) if uploads else None,
        )

    def refresh(self) -> bool:
        """Pick up models published, re-published or removed since the page started (a pipeline
        still at work publishes them one by one). True when the menu changed."""
        if self.root is None:
            return False
        try:
            found = find_models(self.root)
        except MnistEdgeError:  # e.g. an export folder half-way through being replaced
            return False
        if found == self.models:
            return False
        with self._loading:
            stale = {name for name, choice in self.models.items() if found.get(name) != choice}
            self._predictors = {key: value for key, value in self._predictors.items() if key[0] not in stale}
            self.models = found
        return True

    def pending_notice(self) -> str:
        """What the page says while a pipeline is still making models, or nothing."""
        import json

        from mnist_edge.pipeline import STATUS_FILE

        try:
            status = json.loads((self.root / STATUS_FILE).read_text())
            os.kill(int(status["pid"]), 0)  # a pipeline that was killed leaves a stale file behind
        except (OSError, ValueError, KeyError, TypeError):
            return ""
        pending = [name for name in status.get("pending", []) if name not in self.models]
        if not pending:
            return ""
        doing = f" (now {status['stage']} {status['current']})" if status.get("current") else ""
        return (
            f"⏳ Still being made{doing}: **{', '.join(pending)}**. It will appear in the Model menu by itself "
            "when it has been exported and verified."
        )

    def class_names(self, model: str) -> tuple[str, ...]:
        choice = self.models.get(model) or next(iter(self.models.values()))
        return read_manifest(choice.export_dir).class_names

    def counter(self, model: str) -> str:
        """How many samples of each class the collect folder holds, as one line for the page."""
        if self.collect is None:
            return ""
        counts = count_samples(self.collect, self.class_names(model))
        return f"Saved in {self.collect.name}/: " + " · ".join(f"{name}: {n}" for name, n in counts.items())

    def save(self, image, label: str, model: str) -> tuple[str, str]:
        """Save the drawing or upload in front into the collect folder as an example of `label`:
        (a message, the updated counter). Only an image the model could read is saved; the
        original file is kept as it is (format and size), written atomically under a new name."""
        if self.collect is None:
            return "Start the demo with --collect FOLDER to save samples.", ""
        names = self.class_names(model)
        if label not in names:
            return f"Choose what this is first (one of {', '.join(names)}).", self.counter(model)
        source, shown_name, drawn = _image_source(image)
        if source is None:
            return NOTHING_DRAWN, self.counter(model)
        source = _readable_source(source, self.uploads)
        if source is None:
            return f"Not saved: {NOT_AN_UPLOAD}.", self.counter(model)
        try:
            predictor, _ = self.predictor(model, *self._first_choice(model))
            predictor.prepare(source, max_pixels=MAX_DRAWING_PIXELS if drawn else None)
            content, suffix = _encoded(source)
        except runtime.PreprocessError as exc:
            message = str(exc)
            if isinstance(source, str):
                message = message.replace(source, shown_name or "the drawing")
            return f"Not saved: {message}", self.counter(model)
        except MnistEdgeError as exc:
            return f"Not saved: {exc}", self.counter(model)
        path = save_sample(self.collect, label, content, suffix)
        return f"Saved as {path.relative_to(self.collect).as_posix()} ({label}).", self.counter(model)

    def _first_choice(self, model: str) -> tuple[str, str]:
        choice = self.models[model]
        engine = choice.engines[0]
        return engine, _default_precision(choice.precisions[engine])

    def predictor(self, model: str, engine: str, precision: str):
        """The cached (Predictor, run guard) for this choice, loading it the first time."""
        key = (model, engine, precision)
        with self._loading:
            if key not in self._predictors:
                choice = self.models.get(model)
                if choice is None:
                    raise MnistEdgeError(f"unknown model {model!r}; choose from {', '.join(self.models)}")
                if precision not in choice.precisions.get(engine, ()):
                    offered = ", ".join(f"{e}: {'/'.join(p)}" for e, p in choice.precisions.items())
                    raise MnistEdgeError(f"{model} has no {engine} {precision} artifact here ({offered})")
                predictor = runtime.load(choice.export_dir, engine=engine, precision=precision)
                guard = threading.Lock() if engine == "litert" else contextlib.nullcontext()
                self._predictors[key] = (predictor, guard)
            return self._predictors[key]

    def predict(self, image, model: str, precision: str, engine: str):
        """What the page shows for one image: ({class name: probability} or None, the model
        input enlarged to PREVIEW_SIZE as uint8 or None, a status line).

        `image` is what Gradio passes: a Sketchpad/ImageEditor value ({"background", "layers",
        "composite"}, each a file or an array), an upload (a file path, or the raw {"path": ...}
        file data of an event with preprocess=False), a numpy array or PIL image, or None. Files
        reach the runtime undecoded, so its size limits apply before any pixel is decoded. Bad
        input is reported in the status line, never raised."""
        if model not in self.models and not (self.refresh() and model in self.models):  # published since?
            return None, None, f"Cannot run the model: unknown model {model!r}; choose from {', '.join(self.models)}"
        source, shown_name, drawn = _image_source(image)
        if source is None:
            return None, None, NOTHING_DRAWN
        source = _readable_source(source, self.uploads)
        if source is None:
            return None, None, f"Cannot read this image: {NOT_AN_UPLOAD}."
        try:
            predictor, guard = self.predictor(model, engine, precision)
            start = time.perf_counter()
            x = predictor.prepare(source, max_pixels=MAX_DRAWING_PIXELS if drawn else None)
            preprocessed = time.perf_counter()
            with guard:
                probabilities = predictor.predict_array(x[np.newaxis])[0]
            done = time.perf_counter()
        except runtime.NoDigitError as exc:
            if shown_name:  # an upload
                return None, None, f"{shown_name}: {exc}."
            return None, None, f"Draw a digit first: {exc}."
        except runtime.PreprocessError as exc:
            message = str(exc)
            if isinstance(source, str):  # the name the user knows, not a server temp path
                message = message.replace(source, shown_name or "the drawing")
            return None, None, f"Cannot read this image: {message}"
        except MnistEdgeError as exc:  # the model: a missing or modified artifact, a bad choice
            return None, None, f"Cannot run the model: {exc}"
        result = predictor.to_prediction(probabilities)
        labels = {name: float(p) for name, p in zip(predictor.class_names, probabilities)}
        status = (
            f"{result.label} ({result.confidence:.0%}) in {(done - start) * 1000:.1f} ms "
            f"(preprocess {(preprocessed - start) * 1000:.1f} + inference {(done - preprocessed) * 1000:.1f}) "
            f"· {model}/{predictor.artifact.file} on {formats.ENGINES[engine].label}, {precision}"
        )
        return labels, enlarge(x), status


    def explain(self, image, model: str, precision: str, engine: str):
        """What the model looked at: (the model input with its occlusion map laid over it, uint8
        RGB [PREVIEW_SIZE, PREVIEW_SIZE, 3], or None; a caption). Computed through the runtime
        (runtime.explain.occlusion_map: one batched call of the same artifact). Input the
        prediction could not read gives (None, ""): predict's status line already says why."""
        from mnist_edge.runtime.explain import OCCLUSION_PATCH, occlusion_map

        source, _, drawn = _image_source(image)
        source = _readable_source(source, self.uploads) if source is not None else None
        if source is None or (model not in self.models and not (self.refresh() and model in self.models)):
            return None, ""
        try:
            predictor, guard = self.predictor(model, engine, precision)
            x = predictor.prepare(source, max_pixels=MAX_DRAWING_PIXELS if drawn else None)
            start = time.perf_counter()
            with guard:
                target = int(predictor.predict_array(x[np.newaxis])[0].argmax())
                heat = occlusion_map(predictor, x, target)
            elapsed = time.perf_counter() - start
        except MnistEdgeError:
            return None, ""
        name = predictor.class_names[target]
        if not np.any(heat):
            said = (
                f"Covering any {OCCLUSION_PATCH}x{OCCLUSION_PATCH} square left the probability of **{name}** where it was"
                + (" (this int8 model's output moves in steps of 1/256)" if predictor.artifact.integer_io else "")
            )
        else:
            said = (
                f"**Red**: covering these pixels ({OCCLUSION_PATCH}x{OCCLUSION_PATCH} squares of background) lowers the "
                f"probability of **{name}**: the model relied on them. **Blue**: covering them raises it"
            )
        how = "one batched call" + (", run one image at a time by LiteRT," if getattr(predictor.session, "static_batch", False) else "")
        return occlusion_overlay(x, heat), f"{said}. Computed in {elapsed * 1000:.0f} ms, {how} of {predictor.artifact.file}."


def occlusion_overlay(x: np.ndarray, heat: np.ndarray, size: int = PREVIEW_SIZE) -> np.ndarray:
    """The model input in grey with `heat` laid over it, red where positive and blue where
    negative (strongest at the largest |heat|), enlarged to uint8 RGB [size, size, 3]."""
    scale = float(np.abs(heat).max()) or 1.0
    towards = np.clip(heat / scale, 0, 1)[..., None]
    away = np.clip(-heat / scale, 0, 1)[..., None]
    grey = (0.15 + 0.55 * np.clip(x, 0, 1))[..., None] * np.ones(3)
    rgb = grey * (1 - towards - away) + towards * np.array([0.95, 0.1, 0.1]) + away * np.array([0.15, 0.35, 1.0])
    return _blow_up(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), size)


def _encoded(source) -> tuple[bytes, str]:
    """The bytes to save for an image source, and their file suffix: a file as it is, anything
    else (an array from the API) as PNG."""
    if isinstance(source, str):
        path = Path(source)
        return path.read_bytes(), (path.suffix.lower() or ".png")
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    image = source if isinstance(source, Image.Image) else Image.fromarray(np.asarray(source))
    image.save(buffer, "PNG")
    return buffer.getvalue(), ".png"


def _file_path(value) -> str | None:
    """The server-side path of Gradio file data ({"path": ...}), if `value` is one."""
    if isinstance(value, dict) and value.get("path"):
        return str(value["path"])
    return None


def _readable_source(source, uploads: Path | None):
    """`source` if it may be read, else None. Served (`uploads` set), only a file inside the upload
    folder is read, by its real path (a symlink out of it is refused); anything else an API caller
    sends (a server path, a list of numbers) is refused without looking at what it names."""
    if uploads is None:
        return source
    if not isinstance(source, str) or "\0" in source:
        return None
    real = Path(os.path.realpath(source))
    return str(real) if real.is_relative_to(uploads) and real != uploads else None


def _image_source(image) -> tuple[object | None, str | None, bool]:
    """The image inside Gradio's value, the name the user knows it by (for messages), and
    whether it is a drawing (which gets the canvas's tighter size limit)."""
    if isinstance(image, dict):
        if "composite" in image or "layers" in image or "background" in image:
            # An editor value: the composite is background and layers flattened, as shown.
            composite = image.get("composite")
            value = composite if composite is not None else image.get("background")
            return (_file_path(value) or value), None, True
        if _file_path(image):  # an upload passed through unprocessed (preprocess=False)
            path = _file_path(image)
            return path, image.get("orig_name") or Path(path).name, False
        return None, None, False
    if isinstance(image, Path):
        return str(image), image.name, False
    return image, None, False


def enlarge(x: np.ndarray, size: int = PREVIEW_SIZE) -> np.ndarray:
    """A float [28, 28] model input as uint8 [size, size], nearest neighbour: each pixel a square."""
    return _blow_up(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), size)


def _blow_up(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 [h, w] or [h, w, channels] enlarged about to `size` by whole pixels (squares)."""
    factor = max(1, size // pixels.shape[0])
    return np.kron(pixels, np.ones((factor, factor) + (1,) * (pixels.ndim - 2), np.uint8))


# --- example uploads --------------------------------------------------------------------------


def example_digits(count: int = EXAMPLES) -> list[np.ndarray]:
    """Real MNIST test digits made to look like user images (dark ink on white, enlarged): the
    first of each class. Empty when no MNIST data is at hand: the page then shows no examples."""
    from PIL import Image

    from mnist_edge.data import load_dataset

    try:
        test = load_dataset(download=False).test
    except MnistEdgeError as exc:
        print(f"mnist-edge demo: no example digits ({exc})", file=sys.stderr)
        return []
    examples = []
    for digit in range(count):
        index = int(np.flatnonzero(test.labels == digit % 10)[digit // 10])
        scan = Image.fromarray(255 - test.images[index]).resize((EXAMPLE_SIZE, EXAMPLE_SIZE), Image.Resampling.BILINEAR)
        examples.append(np.asarray(scan.convert("RGB")))
    return examples


# --- the page ---------------------------------------------------------------------------------


def _quiet_gradio() -> None:
    """No telemetry, and nothing fetched from the internet while serving."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def build_app(
    model_root: Path, *, examples: bool = True, concurrency: int = CONCURRENCY, collect: Path | None = None
):
    """The Gradio Blocks of the demo for the models under `model_root` (not launched). With
    `collect`, the page can save a drawing or upload as an example of a class into that folder."""
    _quiet_gradio()
    from mnist_edge.errors import require

    gr = require("gradio")
    from gradio.utils import get_upload_folder

    demo = DigitDemo.from_root(Path(model_root), collect=collect, uploads=Path(get_upload_folder()))
    model_names = list(demo.models)
    first = demo.models[model_names[0]]
    first_engine = first.engines[0]
    first_precision = _default_precision(first.precisions[first_engine])
    labels = {name: engine.label for name, engine in formats.ENGINES.items()}

    def model_label(choice: ModelChoice) -> str:
        accuracy = f" (test accuracy {choice.test_accuracy:.2%})" if choice.test_accuracy is not None else ""
        return f"{choice.name}{accuracy}"

    # delete_cache: uploads and model-input images older than an hour are removed every hour.
    with gr.Blocks(title="mnist-edge: digit reader", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "## mnist-edge: read a handwritten digit\n"
            "Draw a digit on the canvas, or upload a photo or scan of one. The prediction runs on an "
            f"exported model ({' or '.join(labels.values())}), with no TensorFlow."
        )
        # The tab in front: what the Predict and Save buttons and choice changes read. A hidden
        # textbox rather than a State, so that the collect endpoint takes it from API callers too.
        source = gr.Textbox("draw", visible=False)
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab("Draw", id="draw") as draw_tab:
                        sketch = gr.Sketchpad(
                            label="Draw a digit",
                            type="filepath",
                            image_mode="RGBA",
                            canvas_size=(CANVAS_SIZE, CANVAS_SIZE),
                            fixed_canvas=True,
                            brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
                            layers=False,
                            transforms=(),
                            elem_id="sketch",
                        )
                    with gr.Tab("Upload", id="upload") as upload_tab:
                        upload = gr.Image(
                            label="Photo or scan of one digit",
                            type="filepath",
                            sources=["upload", "clipboard"],
                            format="png",
                            elem_id="upload",
                        )
                        digits = example_digits() if examples else []
                        if digits:
                            gr.Examples([[d] for d in digits], inputs=[upload], label="MNIST test digits")
                predict_button = gr.Button("Predict", variant="primary", elem_id="predict")
            with gr.Column(scale=2):
                label = gr.Label(num_top_classes=3, label="Prediction", elem_id="prediction")
                with gr.Row():
                    model_input = gr.Image(
                        label="What the model sees (28x28)", type="numpy", interactive=False, format="png",
                        elem_id="model-input",
                    )
                    looked_at = gr.Image(
                        label="What the model looked at", type="numpy", interactive=False, format="png",
                        elem_id="looked-at",
                    )
                looked_caption = gr.Markdown(elem_id="looked-at-caption")
                status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="status")
                pending = gr.Markdown(demo.pending_notice(), elem_id="pending")
                model = gr.Dropdown(
                    [(model_label(demo.models[n]), n) for n in model_names], value=first.name, label="Model"
                )
                # Every engine and precision of any model: the API accepts them all (an artifact a
                # model lacks is a message). The page narrows them to the model's when it loads.
                engine = gr.Radio(
                    [(labels[e], e) for e in labels if any(e in m.precisions for m in demo.models.values())],
                    value=first_engine, label="Engine",
                )
                all_precisions = {p for m in demo.models.values() for ps in m.precisions.values() for p in ps}
                precision = gr.Radio(
                    [p for p in formats.PRECISIONS if p in all_precisions], value=first_precision, label="Precision"
                )
                with gr.Group(visible=demo.collect is not None):
                    true_label = gr.Dropdown(
                        list(demo.class_names(first.name)), value=None, label="This is a", elem_id="true-label"
                    )
                    save_button = gr.Button("Save as an example", elem_id="save-sample")
                    collected = gr.Markdown(demo.counter(first.name), elem_id="collect-counter")

        outputs = [label, model_input, status]
        explained = [looked_at, looked_caption]
        choices = [model, precision, engine]
        shared = {"concurrency_id": "predict", "concurrency_limit": concurrency}
        # Drawings and uploads reach the runtime undecoded (preprocess=False): its header-first
        # size limits and error messages apply before any pixel is decoded, and a file that is not
        # an image becomes a message rather than a failed request. The occlusion overlay follows
        # each prediction as its own step, so the answer shows without waiting for it.
        sketch.change(
            demo.predict, [sketch, *choices], outputs, api_name="predict_drawing", preprocess=False,
            trigger_mode="always_last", show_progress="hidden", **shared,
        ).then(
            demo.explain, [sketch, *choices], explained, api_name="explain_drawing", preprocess=False,
            show_progress="hidden", **shared,
        )
        upload.change(
            demo.predict, [upload, *choices], outputs, api_name="predict_upload", preprocess=False, **shared
        ).then(
            demo.explain, [upload, *choices], explained, api_name="explain_upload", preprocess=False,
            show_progress="hidden", **shared,
        )

        def if_in_front(tab: str, answer):
            def run(current, image, model_name, precision_name, engine_name):
                if current != tab:
                    return gr.skip()
                return answer(image, model_name, precision_name, engine_name)

            return run

        def refresh(listen):
            """Predict again, on whichever input is in front, when `listen` fires; then explain."""
            for tab, image in (("draw", sketch), ("upload", upload)):
                inputs = [source, image, *choices]
                listen(
                    if_in_front(tab, demo.predict), inputs, outputs, preprocess=False, api_visibility="private", **shared
                ).then(
                    if_in_front(tab, demo.explain), inputs, explained, preprocess=False, api_visibility="private",
                    show_progress="hidden", **shared,
                )

        def on_model(model_name: str, engine_name: str, precision_name: str):
            choice = demo.models[model_name]
            engine_name = engine_name if engine_name in choice.precisions else choice.engines[0]
            return (
                gr.Radio(choices=[(labels[e], e) for e in choice.engines], value=engine_name),
                _precision_radio(gr, choice, engine_name, precision_name),
            )

        def on_engine(model_name: str, engine_name: str, precision_name: str):
            return _precision_radio(gr, demo.models[model_name], engine_name, precision_name)

        def save_in_front(current, drawing, uploaded, label_name, model_name):
            return demo.save(drawing if current == "draw" else uploaded, label_name, model_name)

        # "This is a N": the page offers the prediction, the person corrects it, Save keeps the image.
        save_button.click(
            save_in_front, [source, sketch, upload, true_label, model], [status, collected], preprocess=False,
            api_name="collect", **shared,
        )
        label.change(  # the Label arrives as {class name: probability}
            lambda shown: gr.Dropdown(value=max(shown, key=shown.get) if shown else None),
            label, true_label, api_visibility="private", queue=False,
        )
        model.input(
            lambda name: (gr.Dropdown(choices=list(demo.class_names(name)), value=None), demo.counter(name)),
            model, [true_label, collected], api_visibility="private", queue=False,
        )
        def menu_version() -> tuple:
            return tuple((name, choice.created) for name, choice in demo.models.items())

        shown = gr.State(menu_version())  # what this page's menu lists

        def on_tick(shown_version):
            """New models appear in the menu; the notice says what is still to come."""
            demo.refresh()
            current = menu_version()
            menu = (
                gr.Dropdown(choices=[(model_label(demo.models[n]), n) for n in demo.models])
                if current != tuple(map(tuple, shown_version)) else gr.skip()
            )
            return menu, current, demo.pending_notice()

        gr.Timer(REFRESH_SECONDS).tick(
            on_tick, shown, [model, shown, pending], api_visibility="private", queue=False
        )
        app.load(on_model, [model, engine, precision], [engine, precision], api_visibility="private")
        refresh(draw_tab.select(lambda: "draw", None, source, queue=False, api_visibility="private").then)
        refresh(upload_tab.select(lambda: "upload", None, source, queue=False, api_visibility="private").then)
        refresh(model.input(on_model, [model, engine, precision], [engine, precision], api_visibility="private").then)
        refresh(engine.input(on_engine, [model, engine, precision], precision, api_visibility="private").then)
        refresh(precision.input)
        refresh(predict_button.click)
    app.digit_demo = demo  # the predictor cache behind the page, for callers that want it
    return app


def _default_precision(available: tuple[str, ...]) -> str:
    return "fp32" if "fp32" in available else available[0]


def _precision_radio(gr, choice: ModelChoice, engine: str, current: str):
    available = choice.precisions[engine]
    return gr.Radio(choices=list(available), value=current if current in available else _default_precision(available))


def launch(
    model_root: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    max_file_size: str | int = "5mb",
    collect: Path | None = None,
) -> None:
    """Serve the demo until interrupted. Local only by default; `share` asks Gradio for a public link."""
    app = build_app(Path(model_root), collect=collect)
    names = ", ".join(app.digit_demo.models)
    one_line_errors()
    try:
        app.queue(default_concurrency_limit=CONCURRENCY).launch(
            server_name=host, server_port=port, share=share, max_file_size=max_file_size,
            prevent_thread_lock=True, quiet=True, app_kwargs=security_headers(),
        )
    except OSError as exc:
        raise MnistEdgeError(f"cannot serve on {host}:{port}: {exc}") from None
    print(f"mnist-edge demo: serving {names} at http://{host}:{app.server_port}", flush=True)
    if share and app.share_url:
        print(f"mnist-edge demo: public link {app.share_url}", flush=True)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, `docker stop`) closes the server like Ctrl+C does.
        signal.signal(signal.SIGTERM, _interrupt)
    app.block_thread()  # until interrupted, then closes the server


def security_headers() -> dict:
    """FastAPI arguments that add DEMO_CSP (and nosniff) to every response of the demo."""
    from starlette.middleware import Middleware

    class SecurityHeaders:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"]
                    headers += [(b"content-security-policy", DEMO_CSP.encode()), (b"x-content-type-options", b"nosniff")]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_headers)

    return {"middleware": [Middleware(SecurityHeaders)]}


def one_line_errors() -> None:
    """A client hanging up mid-upload, or a request Gradio refuses (data that fails its checks), is
    one line in the demo's log, not a traceback: both are normal on a public page."""
    import logging
    import types

    import gradio.queueing
    import gradio.route_utils
    import gradio.routes

    def say(error: BaseException | None) -> str:
        if type(error).__name__ == "ClientDisconnect":
            return "mnist-edge demo: a client hung up mid-request"
        return f"mnist-edge demo: a request failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"

    class OneLine(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info:
                record.msg, record.args = say(record.exc_info[1]), ()
                record.exc_info = record.exc_text = None
            return True

    logging.getLogger("uvicorn.error").addFilter(OneLine())
    shim = types.SimpleNamespace(print_exc=lambda *args, **kwargs: print(say(sys.exc_info()[1]), file=sys.stderr, flush=True))
    for module in (gradio.queueing, gradio.route_utils, gradio.routes):
        module.traceback = shim


def _interrupt(signum, frame):
    raise KeyboardInterrupt
