"""Number-mode proofs in Chromium: the page's reading (js/number.js, and js/sequence.js where the
export has a number reader) against the Python runtime's (`predictor.read`) on generated fields,
fed to the page's test hook in one go; and numbers drawn with the mouse on the page's wide pad,
from the strokes of real MNIST test digits, read back."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np

from .web_chromium import PAGE_TIMEOUT_MS, BrowserProofFailed
from .web_strokes import render_strokes, skeleton_paths, thin

NUMBER_FIELDS = 300
NUMBER_SEED = 2026
MAX_BOX_DIFF = 1  # pixels
NUMBER_PAD = (840, 280)  # the wide pad's bitmap (demo/web/index.html #numpad)
NUMBER_PEN = 20  # draw.js PEN_WIDTH


@dataclass(frozen=True)
class NumberParity:
    fields: int
    read_both: int  # fields both sides read
    refused_both: int  # fields both sides refused
    same_text: int  # of read_both
    boxes_within: int  # of read_both: same number of boxes, each side within MAX_BOX_DIFF
    mismatches: list[dict] = field(default_factory=list)  # what differed, for the report
    js_ms_median: float = 0.0
    python_correct: int = 0  # of read_both: the text equals the field's truth (not a parity figure)
    by_sequence: int = 0  # of read_both: read by the export's number reader on both sides (reader "sequence")
    max_box_diff: int = 0  # of the fields whose boxes were compared: the largest difference of a box side, px

    @property
    def passed(self) -> bool:
        return self.fields > 0 and not self.mismatches and self.same_text == self.boxes_within == self.read_both


READ_FIELDS_ON_PAGE = """async ({ fields, reader }) => {
  const { number } = window.mnistEdge;
  const out = [];
  for (const { grey, width, height } of fields) {
    const values = Uint8Array.from(atob(grey), (c) => c.charCodeAt(0));
    const data = new Uint8ClampedArray(width * height * 4);
    for (let i = 0; i < values.length; i++) { data[4 * i] = data[4 * i + 1] = data[4 * i + 2] = values[i]; data[4 * i + 3] = 255; }
    const t0 = performance.now();
    const r = await number.readPixels({ data, width, height }, { reader });
    const ms = performance.now() - t0;
    out.push(r.error ? { error: r.error, ms }
      : { text: r.text, confidence: r.confidence, reader: r.reader, files: r.files, boxes: r.digits.map((d) => d.box), ms });
  }
  return out;
}"""


# The timed page reading: the model chosen and the pixels made once, warm-up readings (the engine's
# first run and the JIT's optimised code), then the timed readings in a second call, so that the
# page's main-thread CPU time (Chromium's ThreadTime; onnxruntime-web runs there, one thread) can be
# read around them.
WARM_UP_READINGS = 5
READING_SETUP_ON_PAGE = """async ({ grey, width, height, id, warmUp, timeout }) => {
  const { number, state } = window.mnistEdge;
  const deadline = performance.now() + timeout;
  const select = document.getElementById('model');
  if (state.entry.id !== id) {
    select.value = id;
    select.dispatchEvent(new Event('change'));
  }
  while (!(state.model && state.entry.id === id)) {
    if (performance.now() > deadline) throw new Error(`the page did not load the model ${id}`);
    await new Promise((done) => setTimeout(done, 20));
  }
  const values = Uint8Array.from(atob(grey), (c) => c.charCodeAt(0));
  const data = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < values.length; i++) { data[4 * i] = data[4 * i + 1] = data[4 * i + 2] = values[i]; data[4 * i + 3] = 255; }
  window.timedPixels = { data, width, height };
  let first;
  for (let n = 0; n < warmUp; n++) first = await number.readPixels(window.timedPixels);
  return { text: first.error ? null : first.text, error: first.error || null, model: state.entry.id };
}"""
TIMED_READINGS_ON_PAGE = """async (runs) => {
  const ms = [];
  const steps = { segment: [], inference: [], choose: [] };
  for (let n = 0; n < runs; n++) {
    const t0 = performance.now();
    const reading = await window.mnistEdge.number.readPixels(window.timedPixels);
    ms.push(performance.now() - t0);
    if (reading.timing) for (const step in steps) steps[step].push(reading.timing[step]);
  }
  return { ms, steps };
}"""


@dataclass(frozen=True)
class PageTiming:
    model: str  # the page's model entry (models.json id)
    text: str | None  # the page's reading, None when it refused the image
    error: str | None
    ms: list[float]  # each timed reading, wall-clock
    steps: dict[str, list[float]]  # the same readings' own timing: segment, inference, choose (ms)
    cpu_ms: float  # the page's main-thread CPU time over the timed readings, per reading

    @property
    def median_ms(self) -> float:
        return float(np.median(self.ms))

    def step_ms(self, step: str) -> float:
        return float(np.median(self.steps[step])) if self.steps.get(step) else float("nan")


def time_page_reading(page, grey: np.ndarray, model_id: str, runs: int = 30) -> PageTiming:
    """The open page's Number reading (`number.readPixels`, the function the Number mode reads
    with: js/number.js's segmentation, the model on one batch of candidates, the choice) of one
    grey image, with the page's model `model_id`: WARM_UP_READINGS readings, then `runs` timed
    ones. The pixels reach the page decoded (RGBA, grey in r, g and b): no image decoding is timed."""
    payload = {"grey": base64.b64encode(np.ascontiguousarray(grey, np.uint8).tobytes()).decode("ascii"),
               "width": int(grey.shape[1]), "height": int(grey.shape[0]), "id": model_id,
               "warmUp": WARM_UP_READINGS, "timeout": PAGE_TIMEOUT_MS}
    first = page.evaluate(READING_SETUP_ON_PAGE, payload)
    session = page.context.new_cdp_session(page)
    try:
        session.send("Performance.enable", {"timeDomain": "threadTicks"})
        before = _thread_seconds(session)
        timed = page.evaluate(TIMED_READINGS_ON_PAGE, runs)
        cpu_ms = 1000 * (_thread_seconds(session) - before) / runs
    finally:
        session.detach()
    return PageTiming(first["model"], first["text"], first["error"], timed["ms"], timed["steps"], cpu_ms)


def _thread_seconds(session) -> float:
    """The page's main-thread CPU time so far (Chromium's Performance metric ThreadTime), s."""
    metrics = session.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "ThreadTime")


def field_greys(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> list[tuple[np.ndarray, str]]:
    """Generated fields (mnist_edge/fields.py) decoded once to grey pixels, with their truth."""
    from PIL import Image

    from mnist_edge.fields import make_fields

    return [(np.asarray(Image.open(io.BytesIO(f.image)).convert("L")), f.text) for f in make_fields(images, labels, count, seed)]


def _python_reading(predictor, grey: np.ndarray, reader: str = "auto") -> dict:
    from mnist_edge.runtime.errors import PreprocessError

    try:
        reading = predictor.read(grey, reader=reader)
    except PreprocessError as exc:
        return {"error": str(exc)}
    return {"text": reading.text, "confidence": reading.confidence, "reader": reading.reader, "boxes": [list(d.box) for d in reading.digits]}


def _box_diff(mine: dict, page: dict) -> int:
    """The largest difference of a box side between two readings of as many digits."""
    return max((abs(a - b) for box, other in zip(mine["boxes"], page["boxes"]) for a, b in zip(box, other)), default=0)


def _compare(mine: dict, page: dict) -> str | None:
    """What differs between Python's reading and the page's, or None."""
    if "error" in mine or "error" in page:
        return None if mine.get("error") == page.get("error") else f"python {mine} / page {page}"
    if mine["text"] != page["text"]:
        return f"text: python {mine['text']!r} / page {page['text']!r}"
    if mine.get("reader") != page.get("reader"):
        return f"reader: python {mine.get('reader')!r} / page {page.get('reader')!r} (confidence {mine['confidence']:.6f} / {page['confidence']:.6f})"
    if len(mine["boxes"]) != len(page["boxes"]) or _box_diff(mine, page) > MAX_BOX_DIFF:
        return f"boxes: python {mine['boxes']} / page {page['boxes']}"
    return None


def prove_number_parity(page, predictor, images: np.ndarray, labels: np.ndarray, *, count: int = NUMBER_FIELDS,
                        seed: int = NUMBER_SEED, batch: int = 50, reader: str = "auto") -> NumberParity:
    """`count` generated fields read by the open page (its number mode's hook, the page's model and
    its export's number reader) and by `predictor` (the same files in Python), compared field by
    field: the text, which reader read it, the boxes. `reader`: "auto", "digits" or "sequence", on both sides."""
    fields = field_greys(images, labels, count, seed)
    page_readings, times = [], []
    for start in range(0, count, batch):
        chunk = [{"grey": base64.b64encode(g.tobytes()).decode("ascii"), "width": g.shape[1], "height": g.shape[0]} for g, _ in fields[start : start + batch]]
        for result in page.evaluate(READ_FIELDS_ON_PAGE, {"fields": chunk, "reader": reader}):
            times.append(result.pop("ms"))
            page_readings.append(result)
    read_both = refused_both = same_text = boxes_within = correct = by_sequence = max_box_diff = 0
    mismatches = []
    for n, ((grey, truth), theirs) in enumerate(zip(fields, page_readings)):
        mine = _python_reading(predictor, grey, reader)
        difference = _compare(mine, theirs)
        if difference:
            mismatches.append({"field": n, "truth": truth, "difference": difference})
        if "error" in mine and "error" in theirs:
            refused_both += 1
        elif "error" not in mine and "error" not in theirs:
            read_both += 1
            same_text += mine["text"] == theirs["text"]
            boxes_within += difference is None
            correct += mine["text"] == truth
            by_sequence += mine["reader"] == theirs["reader"] == "sequence"
            if len(mine["boxes"]) == len(theirs["boxes"]):
                max_box_diff = max(max_box_diff, _box_diff(mine, theirs))
    return NumberParity(
        count, read_both, refused_both, same_text, boxes_within, mismatches, float(np.median(times)), correct, by_sequence, max_box_diff
    )


# --- numbers drawn with the mouse ---------------------------------------------------------------


def _digit_paths(image: np.ndarray, size: float) -> list[np.ndarray]:
    """The skeleton of an MNIST digit as polylines, scaled by `size`, its box's corner at 0."""
    # Every third skeleton pixel (and the last): a pen moves in straight pieces, and each point is
    # one mouse event to send.
    paths = [np.array(path[::3] + path[-1:] if len(path) > 3 else path, float) * size for path in skeleton_paths(thin(image > 127))]
    low = np.min(np.concatenate(paths), axis=0)
    return [path - low for path in paths]


def _readable(predictor, image: np.ndarray, label: str) -> bool:
    """Does Python read this digit, redrawn alone with the page's pen, as `label` (>= 0.9)?"""
    paths = _digit_paths(image, 9.0)
    span = np.max(np.concatenate(paths), axis=0)
    offset = (280 - span) / 2
    strokes = [{"width": NUMBER_PEN, "points": (path + offset).tolist()} for path in paths]
    prediction = predictor.predict(render_strokes(strokes))
    return prediction.label == label and prediction.confidence >= 0.9


def number_strokes(predictor, images: np.ndarray, labels: np.ndarray, text: str, *, seed: int = 11) -> list[dict]:
    """`text` written on the wide pad with the strokes of real MNIST test digits (each one Python
    reads right when redrawn alone), left to right with a gap between them, scaled to fit."""
    rng = np.random.default_rng(seed)
    names = [predictor.class_names[int(label)] for label in labels]
    order = rng.permutation(len(images))
    digits = []
    for character in text:
        pick = next((i for i in order if names[i] == character and _readable(predictor, images[i], character)), None)
        if pick is None:
            raise BrowserProofFailed(f"no MNIST test digit {character!r} is read right when redrawn")
        digits.append(_digit_paths(images[pick], 1.0))
    width, height = NUMBER_PAD
    gap = 4.0  # MNIST pixels between digits
    spans = [np.max(np.concatenate(paths), axis=0) for paths in digits]
    total = sum(s[0] for s in spans) + gap * (len(digits) - 1)
    size = min(7.0, (width - 2 * NUMBER_PEN - 40) / total)  # ~140 px tall digits, fewer if the row is long
    strokes, x = [], (width - total * size) / 2
    for paths, span in zip(digits, spans):
        y = (height - span[1] * size) / 2
        strokes += [{"width": NUMBER_PEN, "points": [[round(x + px * size, 2), round(y + py * size, 2)] for px, py in path]} for path in paths]
        x += (span[0] + gap) * size
    return strokes


def _screen_strokes(page, strokes: list[dict]) -> list[list[tuple[float, float]]]:
    box = page.locator("#numpad").bounding_box()
    width, height = NUMBER_PAD
    return [[(box["x"] + px * box["width"] / width, box["y"] + py * box["height"] / height) for px, py in s["points"]] for s in strokes]


def draw_number_with_mouse(page, strokes: list[dict]) -> None:
    for points in _screen_strokes(page, strokes):
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()


def draw_number_with_touch(page, strokes: list[dict]) -> None:
    """Finger strokes (Chromium touch events, seen by the page as pointer events of type "touch")."""
    session = page.context.new_cdp_session(page)
    try:
        for points in _screen_strokes(page, strokes):
            for kind, point in [("touchStart", points[0]), *(("touchMove", p) for p in points[1:])]:
                session.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": point[0], "y": point[1]}]})
            session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        session.detach()


def read_drawn_number(page, strokes: list[dict], *, via: str = "mouse") -> str:
    """Clear the wide pad, draw `strokes` with the mouse (or a finger), wait for the page's own
    reading and return the text it shows (or its message)."""
    cleared = page.evaluate("window.mnistEdge.number.state.answered") + 1
    page.click("#num-clear")
    page.wait_for_function(f"() => window.mnistEdge.number.state.answered >= {cleared}", timeout=PAGE_TIMEOUT_MS)
    before = page.evaluate("window.mnistEdge.number.state.answered")
    (draw_number_with_mouse if via == "mouse" else draw_number_with_touch)(page, strokes)
    page.wait_for_function(f"() => window.mnistEdge.number.state.answered >= {before + len(strokes)}", timeout=PAGE_TIMEOUT_MS)
    last = page.evaluate("window.mnistEdge.number.state.last")
    return last["text"] if last else page.locator("#num-message").inner_text()
