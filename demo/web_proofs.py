"""Proof, in a real Chromium, that the web app computes what the Python runtime computes.

- Model parity: every artifact of each bundled export, run by each browser engine that takes its
  format (onnxruntime-web, LiteRT.js) on the whole test set, against the Python engine's run of
  the same file on the same inputs. An engine that cannot run a file is recorded with its error.
- Preprocessing parity: digits drawn as strokes on the page's own canvas (traced from MNIST test
  digits, at varied sizes, positions and pen widths); the page's 28x28 against Python `to_mnist`
  on the PNG of the same canvas, and the class the model gives each.
- Page use: digits drawn with the mouse on the page read back as the right class; then a reload
  with the network off, and another drawing read right.

`mnist-edge web` runs them (when Chromium is there) and writes site/parity.md and parity.json;
the tests call the same functions. Nothing here is reported unless it ran.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mnist_edge import formats
from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import Manifest, Proof

CHROMIUM_ENV = "MNIST_EDGE_CHROMIUM"  # a Chromium binary to use instead of the one on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]

# The same file in a browser build of an engine and in its Python build: nothing may change class,
# and float artifacts may differ only by rounding.
MIN_AGREEMENT = 1.0
MAX_ABS_DIFF = 1e-5  # fp32 and fp16 files; int8 files are held to agreement only
MODEL_BATCH = 1000  # images per call for engines taking any batch
# The page's preprocessing against Python's.
DRAWINGS = 320
MAX_MEAN_PIXEL_DIFF = 0.01
MIN_SAME_PREDICTION = 0.995
CANVAS = 280  # the page's canvas (demo/web/js/draw.js CANVAS_SIZE)
PEN_WIDTHS = (6, 10, 14, 20, 28, 36)  # in canvas pixels: thin strokes take the thickening path
PAGE_USE_DIGITS = 3
PAGE_TIMEOUT_MS = 60_000
PROOF_PREFIXES = ("/proof/",)  # the harness page (an inline import map): outside the site's CSP


class BrowserUnavailable(MnistEdgeError):
    """Chromium (or Playwright) is not there, so no browser proof can run."""


class BrowserProofFailed(MnistEdgeError):
    """A browser proof ran and missed its limit."""


# --- Chromium ---------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """$MNIST_EDGE_CHROMIUM, else chromium on PATH (Debian's /usr/bin/chromium)."""
    wanted = os.environ.get(CHROMIUM_ENV)
    if wanted:
        return wanted if Path(wanted).is_file() and os.access(wanted, os.X_OK) else None
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def launch(playwright):
    """A headless Chromium (never Playwright's own download); BrowserUnavailable says what is missing."""
    executable = find_chromium()
    if executable is None:
        where = os.environ.get(CHROMIUM_ENV) or "PATH (" + ", ".join(CHROMIUM_NAMES) + ")"
        raise BrowserUnavailable(f"no Chromium found in {where}; install it (Debian: apt-get install chromium)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def chromium():
    """`launch` inside its own Playwright session, closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable("Playwright for Python is not installed (pip install 'mnist-edge[dev]')") from None
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


# --- the proof server -------------------------------------------------------------------------


def proof_mounts(site: Path, manifests: list[Manifest], node_modules: Path, work: Path) -> dict[str, Path]:
    """The site at /, and under /proof/ the harness page, the npm packages, the exports and the data."""
    harness = work / "harness"
    harness.mkdir(parents=True, exist_ok=True)
    from mnist_edge.demo.web_build import SOURCE

    shutil.copy2(SOURCE / "proof" / "proof.js", harness / "proof.js")
    imports = {}
    for engine in formats.BROWSER_ENGINES.values():
        for file in engine.files[1:]:
            if file.endswith(".js"):
                package = "/".join(file.split("/")[: 2 if file.startswith("@") else 1])
                imports[package] = f"/proof/node_modules/{file}"
    (harness / "index.html").write_text(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mnist-edge proofs</title>\n"
        f"<script type=\"importmap\">{json.dumps({'imports': imports})}</script>\n"
        "<script type=\"module\" src=\"proof.js\"></script></head>\n"
        "<body><p>The proof harness of <code>mnist-edge web</code>; not part of the site.</p></body></html>\n",
        encoding="utf-8",
    )
    mounts = {"/": site, "/proof/": harness, "/proof/node_modules/": node_modules, "/proof/data/": work}
    for manifest in manifests:
        mounts[f"/proof/exports/{manifest.name}/"] = manifest.root
    return mounts


def engine_runtime_urls(engine: str, site: Path) -> dict:
    """Where the harness loads an engine from: the site's own copy when the site ships it."""
    spec = formats.BROWSER_ENGINES[engine]
    if spec.bundled and (site / "vendor" / engine).is_dir():
        base = f"/vendor/{engine}/"
        return {"module": base + Path(spec.files[0]).name}
    runtime = {"module": f"/proof/node_modules/{spec.files[0]}"}
    folders = [f for f in spec.files if f.endswith("/")]
    if folders:
        runtime["wasm"] = f"/proof/node_modules/{folders[0]}"
    return runtime


# --- model parity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineRun:
    """One artifact in one browser engine: its proof, or why it could not run."""

    model: str
    file: str
    precision: str
    engine: str  # a key of formats.BROWSER_ENGINES
    reference: str  # the Python engine it was compared with
    expected: bool  # the registry says this engine runs this kind
    proof: Proof | None = None
    cannot_run: str | None = None
    load_ms: float | None = None
    run_ms: float | None = None

    @property
    def passed(self) -> bool:
        if self.proof is not None:
            return self.proof.passed
        return not self.expected  # an expected incompatibility, recorded with its reason


def browser_limits(precision: str) -> tuple[float, float | None]:
    """(minimum argmax agreement, maximum |delta p| or None) for a file of this precision."""
    return MIN_AGREEMENT, (None if precision == "int8" else MAX_ABS_DIFF)


def write_test_images(images: np.ndarray, folder: Path) -> str:
    """The test inputs as one float32 file the harness fetches; returns its name."""
    name = "test-images.f32"
    (folder / name).write_bytes(np.ascontiguousarray(images, dtype="<f4").tobytes())
    return name


def reference_probabilities(manifest: Manifest, artifact, engine: str, x: np.ndarray) -> np.ndarray:
    """The Python engine's probabilities for the same file on the same inputs."""
    from mnist_edge.runtime.backends import open_session
    from mnist_edge.runtime.integrity import read_verified

    session = open_session(engine, read_verified(manifest, artifact), name=str(manifest.path_of(artifact)), format=artifact.format)
    return np.concatenate([session.run(x[i : i + MODEL_BATCH]) for i in range(0, len(x), MODEL_BATCH)])


def prove_models(page, base_url: str, site: Path, manifests: list[Manifest], x: np.ndarray, labels: np.ndarray, data_file: str) -> list[EngineRun]:
    """Every artifact of `manifests` in every browser engine that takes its format, on all of `x`."""
    from mnist_edge.export.parity import compare

    page.goto(base_url + "proof/")
    page.wait_for_function("() => window.proofReady === true", timeout=PAGE_TIMEOUT_MS)
    runs = []
    for manifest in manifests:
        for artifact in manifest.artifacts:
            for engine in formats.browser_engines_for(artifact.format):
                spec = formats.BROWSER_ENGINES[engine]
                expected = engine in formats.kind(artifact.file).browser_engines
                common = dict(model=manifest.name, file=artifact.file, precision=artifact.precision, engine=engine,
                              reference=spec.reference, expected=expected)
                result = page.evaluate(
                    "args => window.runArtifact(args)",
                    {
                        "entry": {"manifest": f"{base_url}proof/exports/{manifest.name}/manifest.json", "file": artifact.file, "engine": engine},
                        "runtime": {k: base_url + v.lstrip("/") for k, v in engine_runtime_urls(engine, site).items()},
                        "data": f"{base_url}proof/data/{data_file}",
                        "batch": 1 if artifact.batch == 1 else MODEL_BATCH,
                    },
                )
                if not result["ok"]:
                    runs.append(EngineRun(**common, cannot_run=result["error"]))
                    continue
                got = np.frombuffer(base64.b64decode(result["probabilities"]), dtype="<f4").reshape(len(x), -1)
                reference = reference_probabilities(manifest, artifact, spec.reference, x)
                report = compare(reference, got, labels)
                agreement, max_diff = browser_limits(artifact.precision)
                failures = []
                if report.argmax_agreement < agreement:
                    failures.append(
                        f"argmax agreement {report.argmax_agreement:.4%} below {agreement:.4%} "
                        f"({report.changed_predictions} of {report.images} images changed class)"
                    )
                if max_diff is not None and report.max_abs_diff > max_diff:
                    failures.append(f"max |delta p| {report.max_abs_diff:.3g} above {max_diff:g}")
                runs.append(
                    EngineRun(**common, proof=report.proof(engine, spec.reference, failures),
                              load_ms=round(result["loadMs"], 1), run_ms=round(result["runMs"], 1))
                )
    return runs


# --- strokes traced from MNIST digits ----------------------------------------------------------


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the one-pixel skeleton of a binary image."""
    image = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = image
            n, ne, e, se = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:]
            s, sw, w, nw = p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]
            ring = [n, ne, e, se, s, sw, w, nw, n]
            neighbours = sum(v.astype(np.int32) for v in ring[:8])
            transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            if step == 0:
                side = (n * e * s == 0) & (e * s * w == 0)
            else:
                side = (n * e * w == 0) & (n * s * w == 0)
            remove = (p[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                image[1:-1, 1:-1][remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def skeleton_paths(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
    """The skeleton as polylines of (x, y) pixel positions: walks along 8-connected pixels, from
    line ends first, so each stroke is one pen movement."""
    pixels = {(int(x), int(y)) for y, x in zip(*np.nonzero(skeleton))}
    steps = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)]  # straight moves first

    def neighbours(p):
        return [(p[0] + dx, p[1] + dy) for dx, dy in steps if (p[0] + dx, p[1] + dy) in pixels]

    used: set[frozenset] = set()
    paths = []
    starts = sorted(pixels, key=lambda p: (len(neighbours(p)) != 1, p[1], p[0]))
    for start in starts:
        while True:
            path, here = [start], start
            while True:
                nxt = next((q for q in neighbours(here) if frozenset((here, q)) not in used), None)
                if nxt is None:
                    break
                used.add(frozenset((here, nxt)))
                path.append(nxt)
                here = nxt
            if len(path) == 1:
                break
            paths.append(path)
    covered = {p for path in paths for p in path}
    paths += [[p] for p in sorted(pixels - covered)]  # isolated pixels: dots
    return paths


def digit_strokes(digit: np.ndarray, rng: np.random.Generator, canvas: int = CANVAS) -> list[dict]:
    """Strokes tracing an MNIST digit's skeleton, scaled, turned and placed at random on the canvas,
    with a random pen width: [{width, points: [[x, y], ...]}] in canvas pixels."""
    paths = skeleton_paths(thin(digit > 127))
    size = canvas * rng.uniform(0.45, 1.1) / 20  # canvas pixels per MNIST pixel (a digit spans ~20)
    angle = np.radians(rng.uniform(-12, 12))
    width = float(rng.choice(PEN_WIDTHS))
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.array([p for path in paths for p in path], dtype=float) + 0.5
    middle = points.mean(axis=0)

    def place(p):
        x, y = (np.asarray(p, float) + 0.5 - middle) * size
        return [x * cos - y * sin, x * sin + y * cos]

    placed = [[place(p) for p in path] for path in paths]
    flat = np.array([q for path in placed for q in path])
    margin = width / 2 + 2
    low, high = flat.min(axis=0), flat.max(axis=0)
    room = canvas - 2 * margin - (high - low)
    shift = margin - low + np.where(room > 0, rng.uniform(0, 1, 2) * np.maximum(room, 0), room / 2)
    return [{"width": width, "points": [[round(x + shift[0], 2), round(y + shift[1], 2)] for x, y in path]} for path in placed]


def render_strokes(strokes: list[dict], canvas: int = CANVAS) -> bytes:
    """A PNG of the strokes as the page draws them (light, round pen, transparent background);
    close to the browser's canvas, used only to choose digits Python reads right."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [tuple(p) for p in stroke["points"]]
        r = stroke["width"] / 2
        if len(points) > 1:
            pen.line(points, fill=(255, 255, 255, 255), width=round(stroke["width"]), joint="curve")
        for x, y in points:
            pen.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def readable_digits(predictor, images: np.ndarray, labels: np.ndarray, count: int, *, seed: int = 7, pen: float = 20) -> list[tuple[str, list[dict]]]:
    """`count` test digits, as strokes with the page's pen, that Python reads as their label with
    probability >= 0.9 from a rendering: the ones a person's drawing of them should be read as."""
    rng = np.random.default_rng(seed)
    chosen, seen = [], set()
    for i in rng.permutation(len(images)):
        label = predictor.class_names[int(labels[i])]
        if label in seen:
            continue
        strokes = digit_strokes(images[i], rng)
        for stroke in strokes:
            stroke["width"] = pen
        prediction = predictor.predict(render_strokes(strokes))
        if prediction.label == label and prediction.confidence >= 0.9:
            chosen.append((label, strokes))
            seen.add(label)
        if len(chosen) == count:
            return chosen
    raise BrowserProofFailed(f"found only {len(chosen)} test digits the model reads right when redrawn")


# --- preprocessing parity ---------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessingParity:
    drawings: int
    compared: int  # drawings both sides turned into a model input
    no_digit_both: int  # drawings both sides refused as "no digit"
    no_digit_one_side: int  # drawings only one side refused: a disagreement
    mean_abs_diff: float  # over every pixel of every compared drawing
    worst_mean_abs_diff: float  # the largest per-drawing mean
    max_abs_diff: float
    same_prediction: float  # share of compared drawings the model gives the same class
    js_ms_median: float  # the page's preprocessing time per drawing
    model: str

    @property
    def passed(self) -> bool:
        return (
            self.compared > 0
            and self.no_digit_one_side == 0
            and self.mean_abs_diff <= MAX_MEAN_PIXEL_DIFF
            and self.same_prediction >= MIN_SAME_PREDICTION
        )


def open_app(page, url: str) -> None:
    """Open the web app and wait until its first model is loaded. (The site's CSP forbids eval:
    every wait below is a function, which Playwright runs without it.)"""
    page.goto(url)
    page.wait_for_function("() => window.mnistEdge !== undefined", timeout=PAGE_TIMEOUT_MS)
    page.evaluate("window.mnistEdge.ready")


PREPARE_ON_PAGE = """async (drawings) => {
  const { sketch, prepare, state } = window.mnistEdge;
  const toBase64 = (floats) => {
    const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  };
  return drawings.map((strokes) => {
    sketch.setStrokes(strokes);
    const t0 = performance.now();
    let input = null, error = null;
    try { input = toBase64(prepare(sketch.pixels(), state.model.manifest.input)); }
    catch (e) { if (e.name !== 'NoDigitError') throw e; error = e.message; }
    const ms = performance.now() - t0;
    return { input, error, ms, png: sketch.canvas.toDataURL('image/png') };
  });
}"""


def prove_preprocessing(page, predictor, images: np.ndarray, *, count: int = DRAWINGS, seed: int = 0, batch: int = 40) -> PreprocessingParity:
    """`count` digits traced from `images` drawn on the open page's canvas: its 28x28 against
    Python's (`predictor.prepare`) on the PNG of the same canvas."""
    from mnist_edge.runtime.errors import NoDigitError

    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=count, replace=False)
    drawings = [digit_strokes(images[i], rng) for i in picks]
    js, py, times = [], [], []
    refused_both = refused_one = 0
    height, width = predictor.input_shape
    for start in range(0, count, batch):
        for result in page.evaluate(PREPARE_ON_PAGE, drawings[start : start + batch]):
            png = base64.b64decode(result["png"].split(",", 1)[1])
            times.append(result["ms"])
            try:
                mine = predictor.prepare(png)
            except NoDigitError:
                mine = None
            if result["input"] is None or mine is None:
                refused_both += result["input"] is None and mine is None
                refused_one += (result["input"] is None) != (mine is None)
                continue
            js.append(np.frombuffer(base64.b64decode(result["input"]), dtype="<f4").reshape(height, width))
            py.append(mine)
    js_x, py_x = np.stack(js), np.stack(py)
    diff = np.abs(js_x - py_x)
    same = predictor.predict_array(js_x).argmax(axis=1) == predictor.predict_array(py_x).argmax(axis=1)
    return PreprocessingParity(
        drawings=count, compared=len(js), no_digit_both=int(refused_both), no_digit_one_side=int(refused_one),
        mean_abs_diff=float(diff.mean()), worst_mean_abs_diff=float(diff.mean(axis=(1, 2)).max()),
        max_abs_diff=float(diff.max()), same_prediction=float(same.mean()),
        js_ms_median=float(np.median(times)), model=predictor.manifest.name,
    )


# --- the page used as a person would ----------------------------------------------------------


def canvas_box(page) -> dict:
    return page.locator("#pad").bounding_box()


def to_screen(box: dict, point) -> tuple[float, float]:
    return box["x"] + point[0] * box["width"] / CANVAS, box["y"] + point[1] * box["height"] / CANVAS


def draw_with_mouse(page, strokes: list[dict]) -> None:
    box = canvas_box(page)
    for stroke in strokes:
        points = [to_screen(box, p) for p in stroke["points"]]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=2)
        page.mouse.up()


def draw_with_touch(page, strokes: list[dict]) -> None:
    """Finger strokes: Chromium touch events (DevTools protocol), which the page sees as pointer
    events of type "touch", as on a phone."""
    session = page.context.new_cdp_session(page)
    box = canvas_box(page)
    try:
        for stroke in strokes:
            points = [to_screen(box, p) for p in stroke["points"]]
            session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
            for a, b in zip(points, points[1:]):
                for t in (0.5, 1.0):
                    x, y = a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
                    session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        session.detach()


def read_drawing(page, strokes: list[dict], *, via: str = "mouse") -> str:
    """Clear the pad, draw `strokes` by mouse or touch, wait for the page's own prediction and
    return the class it shows first."""
    page.click("#clear") if via == "mouse" else page.tap("#clear")
    before = page.evaluate("window.mnistEdge.state.answered")
    (draw_with_mouse if via == "mouse" else draw_with_touch)(page, strokes)
    # Each stroke's end asks for a prediction (a lone bar may be refused as "no digit").
    page.wait_for_function(f"() => window.mnistEdge.state.answered >= {before + len(strokes)}", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#top li .label') !== null", timeout=PAGE_TIMEOUT_MS)
    return page.locator("#top li .label").first.inner_text()


@dataclass(frozen=True)
class PageUse:
    drawn: list[tuple[str, str]]  # (label, what the page showed), mouse
    offline_drawn: list[tuple[str, str]]  # the same after a reload with the network off
    service_worker: bool
    outside_requests: list[str]  # requests to any host but the site's: must stay empty (no CDN)

    @property
    def passed(self) -> bool:
        return (
            self.service_worker
            and bool(self.offline_drawn)
            and all(a == b for a, b in self.drawn + self.offline_drawn)
            and not self.outside_requests
        )


def only_this_host(context, url: str) -> list[str]:
    """Block every request to another host in `context`; returns the list they are recorded in."""
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc
    outside: list[str] = []

    def route(route):
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return outside


def wait_for_service_worker(page) -> bool:
    try:
        page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.controller !== null", timeout=PAGE_TIMEOUT_MS)
        return True
    except Exception:
        return False


def prove_page_use(browser, url: str, digits: list[tuple[str, list[dict]]], *, screenshots: Path | None = None) -> PageUse:
    """Draw `digits` with the mouse in a fresh browser profile, then reload offline and draw again."""
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    outside = only_this_host(context, url)
    try:
        page = context.new_page()
        open_app(page, url)
        drawn = [(label, read_drawing(page, strokes)) for label, strokes in digits]
        if screenshots:
            page.screenshot(path=str(screenshots / "web-mouse.png"), full_page=True)
        worker = wait_for_service_worker(page)
        offline = []
        if worker:
            context.set_offline(True)
            try:
                open_app(page, url)
                label, strokes = digits[0]
                offline.append((label, read_drawing(page, strokes)))
                if screenshots:
                    page.screenshot(path=str(screenshots / "web-offline.png"), full_page=True)
            finally:
                context.set_offline(False)
        return PageUse(drawn, offline, worker, outside)
    finally:
        context.close()


# --- recording --------------------------------------------------------------------------------


@dataclass
class ProofReport:
    """Everything the build proved (or why it proved nothing)."""

    not_run: str | None = None
    chromium: str | None = None
    versions: dict = field(default_factory=dict)  # npm package -> version
    images: int = 0
    runs: list[EngineRun] = field(default_factory=list)
    preprocessing: PreprocessingParity | None = None
    page_use: PageUse | None = None
    seconds: float = 0.0

    def failures(self) -> list[str]:
        problems = []
        for run in self.runs:
            if run.passed:
                continue
            why = run.proof.failure if run.proof else f"cannot run it: {run.cannot_run}"
            problems.append(f"{run.model}/{run.file} in {formats.BROWSER_ENGINES[run.engine].label}: {why}")
        if self.preprocessing and not self.preprocessing.passed:
            p = self.preprocessing
            problems.append(
                f"preprocessing: mean |delta| {p.mean_abs_diff:.3g} (limit {MAX_MEAN_PIXEL_DIFF}), same class "
                f"{p.same_prediction:.2%} (limit {MIN_SAME_PREDICTION:.1%}), {p.no_digit_one_side} drawings refused by one side only"
            )
        if self.page_use and not self.page_use.passed:
            use = self.page_use
            problems.append(f"page use: drawn {use.drawn}, offline {use.offline_drawn}, service worker "
                            f"{'active' if use.service_worker else 'never took control'}, requests elsewhere {use.outside_requests}")
        return problems

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.not_run is None and not self.failures()
        return data


def record_in_manifests(site: Path, runs: list[EngineRun], versions: dict, chromium: str) -> None:
    """Append each bundled artifact's browser proofs to the site's copy of its manifest."""
    import dataclasses

    from mnist_edge.manifest import read_manifest, write_manifest

    for folder in sorted((site / "models").iterdir()):
        manifest = read_manifest(folder)
        artifacts = []
        for artifact in manifest.artifacts:
            extra = tuple(r.proof for r in runs if r.model == manifest.name and r.file == artifact.file and r.proof)
            artifacts.append(dataclasses.replace(artifact, proofs=artifact.proofs + extra))
        libraries = {**manifest.libraries, **versions, "chromium": chromium}
        write_manifest(folder, dataclasses.replace(manifest, artifacts=tuple(artifacts), libraries=libraries))


def compatibility_table(manifest: Manifest, runs: list[EngineRun]) -> str:
    """Markdown: every artifact of one export x every engine, from the export's proofs (Python
    engines, against Keras) and the browser runs (against the Python engine)."""
    engines = [(name, e.label) for name, e in formats.ENGINES.items()]
    browsers = [(name, f"{e.label} (Chromium)") for name, e in formats.BROWSER_ENGINES.items()]
    lines = [
        "| artifact | " + " | ".join(label for _, label in engines + browsers) + " |",
        "|---|" + "---|" * (len(engines) + len(browsers)),
    ]
    for artifact in manifest.artifacts:
        cells = []
        for name, _ in engines:
            proof = next((p for p in artifact.proofs if p.engine == name), None)
            cells.append(_cell(proof) if proof else "–")
        for name, _ in browsers:
            run = next((r for r in runs if r.model == manifest.name and r.file == artifact.file and r.engine == name), None)
            if run is None:
                cells.append("–")
            elif run.proof is None:
                cells.append(f"cannot run: {run.cannot_run}")
            else:
                cells.append(_cell(run.proof))
        lines.append(f"| `{artifact.file}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(proof: Proof) -> str:
    mark = "✓" if proof.passed else "✗ FAILED"
    return f"{mark} {proof.argmax_agreement:.2%}, max \\|Δp\\| {proof.max_abs_diff:.2g} (vs {proof.reference})"


def parity_markdown(report: ProofReport, manifests: list[Manifest]) -> str:
    lines = ["# What this site was proven to compute", ""]
    if report.not_run:
        lines += [
            f"**No browser proof ran**: {report.not_run}.",
            "",
            "Nothing on this page is measured in a browser. The export proofs below (Python engines against Keras) "
            "come from each model's manifest.",
            "",
        ]
    else:
        versions = ", ".join(f"{name} {version}" for name, version in report.versions.items())
        lines += [f"Measured in headless Chromium {report.chromium} with {versions}, in {report.seconds:.0f} s.", ""]
        lines += _model_parity_lines(report)
        lines += _preprocessing_lines(report.preprocessing)
        lines += _page_use_lines(report.page_use)
    lines += ["## Compatibility: every artifact in every engine it was proven in", ""]
    lines += [
        "Python engines: the export's proof against the Keras model on the test set. Browser engines: the same file "
        "in Chromium against the Python engine's run of it on the same inputs. A percentage is the argmax agreement.",
        "",
    ]
    for manifest in manifests:
        lines += [f"### {manifest.name}", "", compatibility_table(manifest, report.runs), ""]
    return "\n".join(lines)


def _model_parity_lines(report: ProofReport) -> list[str]:
    lines = [
        f"## Model parity: the browser against Python, on the {report.images:,}-image test set",
        "",
        f"Limits: {MIN_AGREEMENT:.0%} argmax agreement; max |Δp| ≤ {MAX_ABS_DIFF:g} for fp32 and fp16 files.",
        "",
        "| model | artifact | engine | compared with | agreement | changed | max \\|Δp\\| | mean \\|Δp\\| | accuracy | load ms | run ms | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report.runs:
        label = formats.BROWSER_ENGINES[run.engine].label
        if run.proof is None:
            verdict = "not supported (expected)" if run.passed else "FAILED"
            lines.append(f"| {run.model} | `{run.file}` | {label} | {run.reference} | – | – | – | – | – | – | – | {verdict}: {run.cannot_run} |")
            continue
        p = run.proof
        lines.append(
            f"| {run.model} | `{run.file}` | {label} | {p.reference} | {p.argmax_agreement:.2%} | {p.changed_predictions} | "
            f"{p.max_abs_diff:.2g} | {p.mean_abs_diff:.2g} | {p.test_accuracy:.2%} | {run.load_ms:.0f} | {run.run_ms:.0f} | "
            f"{'passed' if p.passed else 'FAILED: ' + (p.failure or '')} |"
        )
    return lines + [""]


def _preprocessing_lines(p: PreprocessingParity | None) -> list[str]:
    if p is None:
        return []
    return [
        "## Preprocessing parity: the page's canvas, JavaScript against Python `to_mnist`",
        "",
        f"{p.drawings} MNIST test digits traced as strokes on the page's canvas (pen {min(PEN_WIDTHS)}-{max(PEN_WIDTHS)} px, "
        f"varied size, position and slant); the page's model input against Python's on the PNG of the same canvas, "
        f"and the class the {p.model} model gives each.",
        "",
        "| drawings compared | refused by both | refused by one side | mean \\|Δ\\| per pixel | worst drawing's mean | max \\|Δ\\| | same class | page preprocessing (median) | result |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {p.compared} | {p.no_digit_both} | {p.no_digit_one_side} | {p.mean_abs_diff:.2g} | {p.worst_mean_abs_diff:.2g} | "
        f"{p.max_abs_diff:.2g} | {p.same_prediction:.2%} | {p.js_ms_median:.1f} ms | {'passed' if p.passed else 'FAILED'} |",
        "",
        f"Limits: mean |Δ| ≤ {MAX_MEAN_PIXEL_DIFF}, same class for ≥ {MIN_SAME_PREDICTION:.1%}.",
        "",
    ]


def _page_use_lines(use: PageUse | None) -> list[str]:
    if use is None:
        return []
    drawn = ", ".join(f"{a} read as {b}" for a, b in use.drawn)
    offline = ", ".join(f"{a} read as {b}" for a, b in use.offline_drawn) or "not run (no service worker)"
    return [
        "## The page used as a person would",
        "",
        f"- Mouse strokes on the pad: {drawn}.",
        f"- Reload with the network off (service worker {'in control' if use.service_worker else 'never took control'}): {offline}.",
        f"- Requests to any other host than the site's: {len(use.outside_requests)}.",
        f"- Result: {'passed' if use.passed else 'FAILED'}.",
        "",
    ]


def write_report(site: Path, report: ProofReport, manifests: list[Manifest]) -> None:
    from mnist_edge.files import atomic_write_text

    atomic_write_text(site / "parity.md", parity_markdown(report, manifests))
    atomic_write_text(site / "parity.json", json.dumps(report.to_dict(), indent=2, default=str) + "\n")


# --- everything, for the build ----------------------------------------------------------------


def run_proofs(site: Path, models, node_modules: Path, dataset, *, screenshots: Path | None = None) -> ProofReport:
    """Every proof for a staged site (see module docstring). Raises BrowserUnavailable."""
    from mnist_edge import runtime
    from mnist_edge.data import scale_images
    from mnist_edge.demo.web_build import manifests_of, package_version
    from mnist_edge.demo.web_server import SiteServer

    started = time.monotonic()
    manifests = manifests_of(models)
    x = scale_images(dataset.test.images)
    labels = dataset.test.labels
    predictor = runtime.load(manifests[0].root)
    # Page use draws digits: for a model of drawn digits only (not Fashion-MNIST's "plain" pictures).
    digits = None
    if predictor.manifest.input.preprocessing.kind == "digit":
        digits = readable_digits(predictor, dataset.test.images, labels, PAGE_USE_DIGITS)
    versions = {spec.npm_package: package_version(node_modules, spec.npm_package) for spec in formats.BROWSER_ENGINES.values()}
    with tempfile.TemporaryDirectory(prefix="mnist-edge-proofs-") as tmp, chromium() as browser:
        work = Path(tmp)
        data_file = write_test_images(x, work)
        with SiteServer(proof_mounts(site, manifests, node_modules, work), csp_exempt=PROOF_PREFIXES) as server:
            page = browser.new_page()
            runs = prove_models(page, server.url, site, manifests, x, labels, data_file)
            open_app(page, server.url)
            preprocessing = prove_preprocessing(page, predictor, dataset.test.images)
            page.close()
            page_use = prove_page_use(browser, server.url, digits, screenshots=screenshots) if digits else None
        report = ProofReport(
            chromium=browser.version, versions=versions, images=len(x), runs=runs,
            preprocessing=preprocessing, page_use=page_use, seconds=time.monotonic() - started,
        )
    record_in_manifests(site, runs, versions, report.chromium)
    return report
