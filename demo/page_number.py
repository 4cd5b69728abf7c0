"""The demo's Number tab: a wide canvas and an upload, read as a whole number (a row of up to 12
digits) through `Predictor.read`. Its layout and events; the reading is reading.read_number.
Gradio is imported by the caller (page.build_page) and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from .page import menu_narrowing, model_menus, select_brush
from .reading import default_min_confidence

# Wide enough for about 8 digits written ~140 px tall. The brush is a radius: 10 draws 20 px
# strokes, about a seventh of such a digit's height, as MNIST's strokes are of its digits.
NUMBER_CANVAS = (1000, 280)
NUMBER_BRUSH_RADIUS = 10
DIGIT_COLUMNS = 12  # a number has at most 12 digits: one row of the gallery
BOXED_HEIGHT = 240  # the input with its boxes, shown this tall (a field is a wide strip)
GALLERY_HEIGHT = 170  # one row of digit tiles (about 100 px each in a 1280-px window) and the label


@dataclass
class NumberParts:
    """The Number tab's components, as the event wiring needs them."""

    source: object  # a hidden textbox: the input tab in front ("write" or "photo")
    sketch: object
    upload: object
    write_tab: object
    photo_tab: object
    read_button: object
    min_confidence: object
    text: object
    status: object
    boxed: object
    digits: object
    model: object
    engine: object
    precision: object

    @property
    def outputs(self) -> list:
        return [self.text, self.status, self.boxed, self.digits]

    @property
    def choices(self) -> list:
        return [self.model, self.precision, self.engine]


def number_tab(gr, demo) -> NumberParts:
    """The tab's layout: inputs on top (the canvas is wide), the reading and the pictures below."""
    gr.Markdown(
        "Write a number (up to 12 digits: an amount, an ID, a score) in one row, or upload a photo or "
        "scan of one. Each digit is read by the same exported model as on the Digit tab."
    )
    source = gr.Textbox("write", visible=False)
    with gr.Tabs():
        with gr.Tab("Write", id="write") as write_tab:
            sketch = gr.Sketchpad(
                label="Write a number", type="filepath", image_mode="RGBA", canvas_size=NUMBER_CANVAS,
                fixed_canvas=True, brush=gr.Brush(default_size=NUMBER_BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
                layers=False, transforms=(), elem_id="number-sketch",
            )
        with gr.Tab("Photo", id="photo") as photo_tab:
            upload = gr.Image(
                label="Photo or scan of a number", type="filepath", sources=["upload", "clipboard"], format="png",
                elem_id="number-upload",
            )
    with gr.Row():
        read_button = gr.Button("Read", variant="primary", elem_id="number-read", scale=1)
        min_confidence = gr.Slider(
            0.0, 1.0, value=default_min_confidence(), step=0.01, label="Minimum confidence (below it: rejected, please check)",
            elem_id="number-min-confidence", scale=3,
        )
    with gr.Row():
        text = gr.Textbox(label="Number read", interactive=False, elem_id="number-text", scale=1)
        status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="number-status", scale=3)
    picture = {"interactive": False, "format": "png", "buttons": []}
    boxed = gr.Image(label="The digits found", type="numpy", height=BOXED_HEIGHT, elem_id="number-boxes", **picture)
    digits = gr.Gallery(  # always DIGIT_COLUMNS columns: a 4-digit number's tiles stay their size
        label="Each digit as the model saw it (28x28)", columns=DIGIT_COLUMNS, fit_columns=False, height=GALLERY_HEIGHT,
        object_fit="contain", allow_preview=False, elem_id="number-digits", **picture,
    )
    with gr.Row():
        model, engine, precision = model_menus(gr, demo, prefix="number-")
    return NumberParts(source, sketch, upload, write_tab, photo_tab, read_button, min_confidence, text, status, boxed,
                       digits, model, engine, precision)


def read_in_front(gr, demo, tab: str):
    """The reading of `tab`'s input, skipped when the other input tab is in front."""

    def run(current, image, model_name, precision_name, engine_name, min_confidence):
        if current != tab:
            return gr.skip()
        return demo.read_number(image, model_name, precision_name, engine_name, min_confidence)

    return run


def wire_number(gr, app, demo, parts: NumberParts, shared: dict, number_tab_item) -> None:
    """Drawings and uploads reach the runtime undecoded (preprocess=False), as on the Digit tab:
    its size limits and messages apply before any pixel is decoded. The menus, the slider, the
    Read button and the input tabs read again whichever input is in front."""
    p = parts
    asked = [*p.choices, p.min_confidence]
    p.sketch.change(
        demo.read_number, [p.sketch, *asked], p.outputs, api_name="read_number_drawing", preprocess=False,
        trigger_mode="always_last", show_progress="hidden", **shared,
    )
    p.upload.change(demo.read_number, [p.upload, *asked], p.outputs, api_name="read_number_upload", preprocess=False, **shared)

    def again(listen) -> None:
        for tab, image in (("write", p.sketch), ("photo", p.upload)):
            listen(
                read_in_front(gr, demo, tab), [p.source, image, *asked], p.outputs, preprocess=False,
                api_visibility="private", **shared,
            )

    on_model, on_engine = menu_narrowing(gr, demo)
    menus = [p.model, p.engine, p.precision]
    app.load(on_model, menus, [p.engine, p.precision], api_visibility="private")
    again(p.write_tab.select(lambda: "write", None, p.source, queue=False, api_visibility="private").then)
    again(p.photo_tab.select(lambda: "photo", None, p.source, queue=False, api_visibility="private").then)
    again(p.model.input(on_model, menus, [p.engine, p.precision], api_visibility="private").then)
    again(p.engine.input(on_engine, menus, p.precision, api_visibility="private").then)
    again(p.precision.input)
    again(p.min_confidence.release)
    again(p.read_button.click)
    # The canvas appears when the tab is first shown; its brush is selected then, as the Digit tab's is.
    number_tab_item.select(None, None, None, js=select_brush("number-sketch"))
    p.write_tab.select(None, None, None, js=select_brush("number-sketch"))
