"""The Gradio page of the demo: its layout, and which event calls which of the service's answers.
Gradio is imported inside the functions, so importing this module stays cheap."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from mnist_edge import formats
from mnist_edge.errors import MnistEdgeError

from .models import ModelChoice, best_model, default_precision

# The drawing canvas. Gradio's brush size is a radius: 14 draws strokes 28 px wide, which on a
# 400 px canvas, for a digit drawn across most of it, shrink to MNIST's 2 px in the 20x20 box.
CANVAS_SIZE = 400
BRUSH_RADIUS = 14
EXAMPLES = 10  # example uploads: the first test digit of each class
EXAMPLE_SIZE = 140  # example digits are enlarged 5x and drawn dark on white, like a scan
CONCURRENCY = 4  # predictions running at once; sessions are small and single-threaded
REFRESH_SECONDS = 5  # how often an open page looks for newly published models
# The two pictures side by side: without Gradio's download/share/fullscreen buttons over them, a
# 28x28 input enlarged 8x (224 px) and its whole label fit in a 1280-pixel-wide window.
PICTURE_BUTTONS: list = []


def select_brush(sketch_id: str) -> str:
    """Gradio's Sketchpad starts with no tool selected ("select the draw tool to start"): this
    page script selects the brush of the Sketchpad `sketch_id` as soon as its button exists, so
    the first stroke draws."""
    return """() => {
  const started = Date.now();
  const tryBrush = () => {
    const brush = document.querySelector("#%s button[aria-label='Brush']");
    if (brush) { brush.click(); return; }
    if (Date.now() - started < 30000) setTimeout(tryBrush, 100);
  };
  tryBrush();
}""" % sketch_id


SELECT_BRUSH = select_brush("sketch")


@dataclass
class Parts:
    """The page's components, as the event wiring needs them."""

    source: object  # a hidden textbox: the tab in front ("draw" or "upload")
    sketch: object
    upload: object
    draw_tab: object
    upload_tab: object
    predict_button: object
    label: object
    model_input: object
    looked_at: object
    looked_caption: object
    status: object
    pending: object
    model: object
    engine: object
    precision: object
    true_label: object
    save_button: object
    collected: object

    @property
    def outputs(self) -> list:
        return [self.label, self.model_input, self.status]

    @property
    def explained(self) -> list:
        return [self.looked_at, self.looked_caption]

    @property
    def choices(self) -> list:
        return [self.model, self.precision, self.engine]


def quiet_gradio() -> None:
    """No telemetry, and nothing fetched from the internet while serving."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def engine_labels() -> dict[str, str]:
    return {name: engine.label for name, engine in formats.ENGINES.items()}


def build_page(demo, *, examples: bool = True, concurrency: int = CONCURRENCY):
    """The Gradio Blocks for `demo` (an app.DigitDemo), not launched."""
    quiet_gradio()
    from mnist_edge.errors import require

    gr = require("gradio")
    labels = engine_labels()
    # delete_cache: uploads and model-input images older than an hour are removed every hour.
    from .page_number import number_tab, wire_number

    with gr.Blocks(title="mnist-edge: digit reader", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "## mnist-edge: read handwritten digits and numbers\n"
            "Draw a digit (or a whole number, on the Number tab), or upload a photo or scan of one. "
            f"Everything runs on an exported model ({' or '.join(labels.values())}), with no TensorFlow."
        )
        # The tab in front: what the Predict and Save buttons and choice changes read. A hidden
        # textbox rather than a State, so that the collect endpoint takes it from API callers too.
        source = gr.Textbox("draw", visible=False)
        with gr.Tabs(elem_id="modes"):
            with gr.Tab("Digit", id="digit"):
                with gr.Row():
                    with gr.Column(scale=3):
                        inputs = input_column(gr, examples)
                    with gr.Column(scale=2):
                        answers = answer_column(gr, demo)
            with gr.Tab("Number", id="number", elem_id="number-tab") as number:
                number_parts = number_tab(gr, demo)
        parts = Parts(source, *inputs, *answers)
        shared = {"concurrency_id": "predict", "concurrency_limit": concurrency}
        wire_predictions(gr, demo, parts, shared)
        wire_collect(gr, demo, parts, shared)
        wire_refresh(gr, demo, parts, number_parts.model)
        wire_choices(gr, app, demo, parts, shared)
        wire_number(gr, app, demo, number_parts, shared, number)
        app.load(None, None, None, js=SELECT_BRUSH)
    return app


def input_column(gr, examples: bool) -> tuple:
    """The Draw and Upload tabs and the Predict button."""
    with gr.Tabs():
        with gr.Tab("Draw", id="draw") as draw_tab:
            sketch = gr.Sketchpad(
                label="Draw a digit", type="filepath", image_mode="RGBA",
                canvas_size=(CANVAS_SIZE, CANVAS_SIZE), fixed_canvas=True,
                brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
                layers=False, transforms=(), elem_id="sketch",
            )
        with gr.Tab("Upload", id="upload") as upload_tab:
            upload = gr.Image(
                label="Photo or scan of one digit", type="filepath", sources=["upload", "clipboard"],
                format="png", elem_id="upload",
            )
            digits = example_digits() if examples else []
            if digits:
                gr.Examples([[d] for d in digits], inputs=[upload], label="MNIST test digits")
    predict_button = gr.Button("Predict", variant="primary", elem_id="predict")
    return sketch, upload, draw_tab, upload_tab, predict_button


def answer_column(gr, demo) -> tuple:
    """The prediction, the two pictures, the status, the model menus and the collect controls."""
    first = demo.models[best_model(demo.models)]
    label = gr.Label(num_top_classes=3, label="Prediction", elem_id="prediction")
    with gr.Row():
        picture = {"type": "numpy", "interactive": False, "format": "png", "buttons": PICTURE_BUTTONS}
        model_input = gr.Image(label="What the model sees (28x28)", elem_id="model-input", **picture)
        looked_at = gr.Image(label="What the model looked at", elem_id="looked-at", **picture)
    looked_caption = gr.Markdown(elem_id="looked-at-caption")
    status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="status")
    pending = gr.Markdown(demo.pending_notice(), elem_id="pending")
    model, engine, precision = model_menus(gr, demo)
    with gr.Group(visible=demo.collect is not None):
        true_label = gr.Dropdown(list(demo.class_names(first.name)), value=None, label="This is a", elem_id="true-label")
        save_button = gr.Button("Save as an example", elem_id="save-sample")
        collected = gr.Markdown(demo.counter(first.name), elem_id="collect-counter")
    return (label, model_input, looked_at, looked_caption, status, pending, model, engine, precision,
            true_label, save_button, collected)


def model_menus(gr, demo, prefix: str = "") -> tuple:
    """The Model, Engine and Precision menus (each tab has its own, with the same choices)."""
    models = demo.models
    first = models[best_model(models)]
    first_engine = first.default_engine()
    model = gr.Dropdown([(c.label, n) for n, c in models.items()], value=first.name, label="Model", elem_id=f"{prefix}model")
    # Every engine and precision of any model: the API accepts them all (an artifact a model
    # lacks is a message). The page narrows them to the model's when it loads.
    labels = engine_labels()
    engine = gr.Radio(
        [(labels[e], e) for e in labels if any(e in m.precisions for m in models.values())],
        value=first_engine, label="Engine",
    )
    every = {p for m in models.values() for ps in m.precisions.values() for p in ps}
    precision = gr.Radio(
        [p for p in formats.PRECISIONS if p in every], value=default_precision(first.precisions[first_engine]),
        label="Precision",
    )
    return model, engine, precision


def menu_narrowing(gr, demo) -> tuple:
    """(on_model, on_engine): the engine and precision menus narrowed to what a model offers."""
    labels = engine_labels()

    def on_model(model_name: str, engine_name: str, precision_name: str):
        choice = demo.models[model_name]
        engine_name = engine_name if engine_name in choice.precisions else choice.default_engine()
        return (
            gr.Radio(choices=[(labels[e], e) for e in choice.engines], value=engine_name),
            precision_radio(gr, choice, engine_name, precision_name),
        )

    def on_engine(model_name: str, engine_name: str, precision_name: str):
        return precision_radio(gr, demo.models[model_name], engine_name, precision_name)

    return on_model, on_engine


def wire_predictions(gr, demo, parts: Parts, shared: dict) -> None:
    """Drawings and uploads reach the runtime undecoded (preprocess=False): its header-first size
    limits and error messages apply before any pixel is decoded, and a file that is not an image
    becomes a message rather than a failed request. The occlusion overlay follows each
    prediction as its own step, so the answer shows without waiting for it."""
    p = parts
    p.sketch.change(
        demo.predict, [p.sketch, *p.choices], p.outputs, api_name="predict_drawing", preprocess=False,
        trigger_mode="always_last", show_progress="hidden", **shared,
    ).then(
        demo.explain, [p.sketch, *p.choices], p.explained, api_name="explain_drawing", preprocess=False,
        show_progress="hidden", **shared,
    )
    p.upload.change(
        demo.predict, [p.upload, *p.choices], p.outputs, api_name="predict_upload", preprocess=False, **shared
    ).then(
        demo.explain, [p.upload, *p.choices], p.explained, api_name="explain_upload", preprocess=False,
        show_progress="hidden", **shared,
    )


def if_in_front(gr, tab: str, answer):
    """`answer` for the input of `tab`, skipped when the other tab is in front."""

    def run(current, image, model_name, precision_name, engine_name):
        if current != tab:
            return gr.skip()
        return answer(image, model_name, precision_name, engine_name)

    return run


def predict_again(gr, demo, parts: Parts, shared: dict, listen) -> None:
    """Predict again, on whichever input is in front, when `listen` fires; then explain."""
    for tab, image in (("draw", parts.sketch), ("upload", parts.upload)):
        inputs = [parts.source, image, *parts.choices]
        listen(
            if_in_front(gr, tab, demo.predict), inputs, parts.outputs, preprocess=False, api_visibility="private", **shared
        ).then(
            if_in_front(gr, tab, demo.explain), inputs, parts.explained, preprocess=False, api_visibility="private",
            show_progress="hidden", **shared,
        )


def wire_choices(gr, app, demo, parts: Parts, shared: dict) -> None:
    """Tabs, model, engine and precision: narrow the menus (also when the page loads), then predict again."""
    p = parts
    on_model, on_engine = menu_narrowing(gr, demo)
    menus = [p.model, p.engine, p.precision]
    p.model.input(
        lambda name: (gr.Dropdown(choices=list(demo.class_names(name)), value=None), demo.counter(name)),
        p.model, [p.true_label, p.collected], api_visibility="private", queue=False,
    )
    app.load(on_model, menus, [p.engine, p.precision], api_visibility="private")
    again = lambda listen: predict_again(gr, demo, parts, shared, listen)  # noqa: E731
    again(p.draw_tab.select(lambda: "draw", None, p.source, queue=False, api_visibility="private").then)
    again(p.upload_tab.select(lambda: "upload", None, p.source, queue=False, api_visibility="private").then)
    again(p.model.input(on_model, menus, [p.engine, p.precision], api_visibility="private").then)
    again(p.engine.input(on_engine, menus, p.precision, api_visibility="private").then)
    again(p.precision.input)
    again(p.predict_button.click)


def wire_collect(gr, demo, parts: Parts, shared: dict) -> None:
    """"This is a N": the page offers the prediction, the person corrects it, Save keeps the image."""
    p = parts

    def save_in_front(current, drawing, uploaded, label_name, model_name):
        return demo.save(drawing if current == "draw" else uploaded, label_name, model_name)

    p.save_button.click(
        save_in_front, [p.source, p.sketch, p.upload, p.true_label, p.model], [p.status, p.collected],
        preprocess=False, api_name="collect", **shared,
    )
    p.label.change(  # the Label arrives as {class name: probability}
        lambda shown: gr.Dropdown(value=max(shown, key=shown.get) if shown else None),
        p.label, p.true_label, api_visibility="private", queue=False,
    )


def wire_refresh(gr, demo, parts: Parts, *more_menus) -> None:
    """New models appear in the menus (the Digit tab's and `more_menus`); the notice says what is still to come."""
    p = parts

    def menu_version() -> tuple:
        return tuple((name, choice.created) for name, choice in demo.models.items())

    shown = gr.State(menu_version())  # what this page's menu lists

    def on_tick(shown_version):
        demo.refresh()
        current = menu_version()
        changed = current != tuple(map(tuple, shown_version))
        choices = [(c.label, n) for n, c in demo.models.items()]
        menus = [gr.Dropdown(choices=choices) if changed else gr.skip() for _ in range(1 + len(more_menus))]
        return *menus, current, demo.pending_notice()

    gr.Timer(REFRESH_SECONDS).tick(
        on_tick, shown, [p.model, *more_menus, shown, p.pending], api_visibility="private", queue=False
    )


def precision_radio(gr, choice: ModelChoice, engine: str, current: str):
    available = choice.precisions[engine]
    return gr.Radio(choices=list(available), value=current if current in available else default_precision(available))


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
