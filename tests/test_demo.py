"""The Gradio demo: its prediction function on canvas drawings and bad input, the running app
through gradio_client, a real Chromium drawing on the page, and 200 requests from 20 clients;
the Number tab over HTTP (generated fields, bad input) and numbers written with the mouse.

Everything runs against the small MLP export (`mlp_export`) on 127.0.0.1; nothing is fetched
from the internet. Timings are printed, never asserted.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_edge import runtime
from mnist_edge.demo.app import (
    BRUSH_RADIUS, CANVAS_SIZE, DEMO_CSP, NOTHING_DRAWN, DigitDemo, example_digits, find_models,
)
from mnist_edge.errors import MnistEdgeError

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
CSP_WATCH = """window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"""
# Is the model-input preview shown whole: its label not truncated, its picture inside its box?
PREVIEW_FITS = """() => {
  const block = document.querySelector('#model-input');
  const label = [...block.querySelectorAll('*')].find((e) => [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.includes('What the model sees')));
  const img = block.querySelector('img'), box = block.getBoundingClientRect(), pic = img.getBoundingClientRect();
  const text = label.getBoundingClientRect();
  const covered = [...block.querySelectorAll('button')].filter((b) => b.offsetParent !== null && !b.contains(img) && b !== label.closest('button')).some((b) => {
    const r = b.getBoundingClientRect(); return r.width > 0 && r.left < text.right && r.right > text.left && r.top < text.bottom && r.bottom > text.top; });
  return { label: label.textContent.trim(), labelWhole: !covered && label.scrollWidth <= label.clientWidth + 1 && text.right <= box.right + 1,
           pictureWhole: pic.bottom <= box.bottom + 1 && pic.right <= box.right + 1 && Math.abs(pic.height - pic.width) < 2 && pic.height >= 200 };
}"""
SESSIONS = 40  # the server keeps this many sessions' state (mnist-edge demo --sessions)
REDRAWN_DIGITS = 50
LOAD_REQUESTS = 200
LOAD_CLIENTS = 20
BRUSH_WIDTH = 2 * BRUSH_RADIUS  # Gradio's brush size is a radius


# --- canvas drawings, as the Sketchpad passes them --------------------------------------------


def sketch_value(strokes: np.ndarray, *, as_browser: bool = True) -> dict:
    """The Sketchpad's value (type numpy, RGBA) for a transparent layer of black `strokes`.

    `as_browser`: the composite is the layer flattened on the canvas's opaque white, which is what
    Chromium sends (measured). Otherwise the composite is the transparent layer itself."""
    if not as_browser:
        return {"background": None, "layers": [strokes], "composite": strokes}
    white = np.full_like(strokes, 255)
    composite = Image.alpha_composite(Image.fromarray(white, "RGBA"), Image.fromarray(strokes, "RGBA"))
    return {"background": white, "layers": [strokes], "composite": np.asarray(composite)}


def redraw(digit: np.ndarray, size: int = CANVAS_SIZE) -> np.ndarray:
    """An MNIST digit (light on dark, 28x28) as a canvas layer: solid black brush strokes on a
    transparent background, the digit's 28x28 field scaled to the canvas (strokes ~30 px wide)."""
    up = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR))
    layer = np.zeros((size, size, 4), np.uint8)
    layer[..., 3] = np.where(up > 127, 255, 0)
    return layer


def draw_lines(points: list[tuple[int, int]], size: int = CANVAS_SIZE) -> np.ndarray:
    """One brush stroke through `points` on a transparent canvas layer."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    pen.line(points, fill=(0, 0, 0, 255), width=BRUSH_WIDTH, joint="curve")
    for x, y in (points[0], points[-1]):  # the brush is round: so are the stroke's ends
        r = BRUSH_RADIUS
        pen.ellipse((x - r, y - r, x + r, y + r), fill=(0, 0, 0, 255))
    return np.asarray(image)


ONE = [(200, 50), (200, 350)]
SEVEN = [(110, 70), (290, 70), (170, 350)]


def top_label(labels: dict | None) -> str | None:
    return max(labels, key=labels.get) if labels else None


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_root(mlp_export) -> Path:
    """An artifacts root folder (artifacts/mlp/export inside), as `--model` takes it."""
    return mlp_export.parent.parent


@pytest.fixture(scope="module")
def digit_demo(model_root) -> DigitDemo:
    return DigitDemo.from_root(model_root)


@pytest.fixture(scope="module")
def digit_files(mnist, mlp_export, tmp_path_factory) -> list[tuple[Path, str]]:
    """20 real test digits saved as user-like PNG files (dark ink on white, enlarged), each with the
    label the runtime gives it when called directly: what the app must answer."""
    folder = tmp_path_factory.mktemp("digits")
    predictor = runtime.load(mlp_export)
    files = []
    for i in range(20):
        path = folder / f"test-{i}-label-{mnist.test.labels[i]}.png"
        Image.fromarray(255 - mnist.test.images[i]).resize((140, 140), Image.Resampling.BILINEAR).save(path)
        files.append((path, predictor.predict(path).label))
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_command() -> list[str]:
    script = Path(sys.executable).with_name("mnist-edge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mnist_edge"]


SERVER_PROCESS: dict[str, subprocess.Popen] = {}  # the running demo of `server`, for memory and exit checks


@pytest.fixture(scope="module")
def server(model_root, tmp_path_factory):
    """`mnist-edge demo` serving the MLP on 127.0.0.1 for this module; stopped with SIGTERM at the
    end, which must close it cleanly (exit code 0, no traceback)."""
    work = tmp_path_factory.mktemp("demo-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(work / "gradio")}
    log_path = work / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*_demo_command(), "demo", "--model", str(model_root), "--port", str(port), "--collect", str(work / "mine"),
             "--sessions", str(SESSIONS)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work, env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"mnist-edge demo exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mnist-edge demo did not answer on {url} within 60 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        SERVER_PROCESS["demo"] = process
        SERVER_PROCESS["collect"] = work / "mine"
        SERVER_PROCESS["log"] = log_path
        yield url
    finally:
        process.terminate()  # SIGTERM: the demo closes its server, as on Ctrl+C
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log = log_path.read_text()
        print(f"\ndemo server log:\n{log}")
    assert process.returncode == 0, f"the demo did not stop cleanly on SIGTERM ({process.returncode}):\n{log}"
    assert "Traceback" not in log, log


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, analytics_enabled=False)


# --- finding the models -----------------------------------------------------------------------


def test_find_models_accepts_root_model_and_export_folders(model_root, mlp_export, tmp_path):
    for folder in (model_root, mlp_export.parent, mlp_export):
        models = find_models(folder)
        assert list(models) == ["mlp"]
        assert models["mlp"].export_dir == mlp_export
    onnx = models["mlp"].precisions["onnxruntime"]
    assert onnx == ("fp32", "int8")  # fp16 exists only as TFLite
    assert models["mlp"].precisions.get("litert") == ("fp32", "fp16", "int8")
    with pytest.raises(MnistEdgeError, match=r"no exported model under .*run mnist-edge pipeline"):
        find_models(tmp_path)


# --- the prediction function, without a browser -----------------------------------------------


def test_redrawn_test_digits_are_read_correctly(digit_demo, mnist):
    predictor = runtime.load(digit_demo.models["mlp"].export_dir)
    every = np.arange(0, len(mnist.test), len(mnist.test) // REDRAWN_DIGITS)[:REDRAWN_DIGITS]  # spread over the set
    images, labels = mnist.test.images[every], mnist.test.labels[every]
    direct = predictor.predict_array(images.astype(np.float32) / 255).argmax(axis=1)
    model_accuracy = float(np.mean(direct == labels))
    for as_browser in (True, False):
        correct = 0
        for image, label in zip(images, labels):
            labels_out, model_input, status = digit_demo.predict(
                sketch_value(redraw(image), as_browser=as_browser), "mlp", "fp32", "onnxruntime"
            )
            assert labels_out is not None, status
            assert model_input.shape == (224, 224) and model_input.dtype == np.uint8
            assert " ms " in status and "model.onnx" in status
            correct += top_label(labels_out) == str(label)
        accuracy = correct / len(labels)
        kind = "white canvas (as Chromium sends it)" if as_browser else "transparent canvas"
        print(
            f"\nre-drawn test digits, {kind}: {accuracy:.0%} correct of {len(labels)} "
            f"(the model on the same 28x28 digits: {model_accuracy:.0%})"
        )
        assert accuracy >= 0.8 and accuracy >= model_accuracy - 0.06


@pytest.mark.parametrize("backend, precision", [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp16"), ("litert", "int8")])
def test_a_drawn_one_and_seven(digit_demo, backend, precision):
    for strokes, digit in ((ONE, "1"), (SEVEN, "7")):
        labels, _, status = digit_demo.predict(sketch_value(draw_lines(strokes)), "mlp", precision, backend)
        assert top_label(labels) == digit, status
        assert len(labels) == 10 and abs(sum(labels.values()) - 1) < 0.02  # int8 outputs step by 1/256


def test_bad_input_gives_a_message_not_an_exception(digit_demo, digit_files, tmp_path):
    digit_png = digit_files[0][0]

    def check(image, expected: str, *, precision="fp32", backend="onnxruntime"):
        labels, model_input, status = digit_demo.predict(image, "mlp", precision, backend)
        assert labels is None and model_input is None
        assert expected in status, status
        return status

    check(None, "Draw a digit first")
    check({"background": None, "layers": [], "composite": None}, "Draw a digit first")  # Predict on a fresh canvas
    blank = np.zeros((CANVAS_SIZE, CANVAS_SIZE, 4), np.uint8)
    check(sketch_value(blank, as_browser=False), "no digit found")
    check(sketch_value(blank), "no digit found")

    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    check(str(text), "not a readable image")
    # An upload passed through unprocessed: the message names the user's file, not the server's copy.
    status = check({"path": str(text), "orig_name": "holiday.png"}, "holiday.png: not a readable image")
    assert str(tmp_path) not in status

    limited = DigitDemo.from_root(digit_demo.catalog.root, max_drawing_pixels=100_000, max_upload_pixels=10_000)
    labels, model_input, status = limited.predict(sketch_value(draw_lines(ONE)), "mlp", "fp32", "onnxruntime")
    assert "over the 100,000-pixel limit" in status, status  # drawings get the canvas's limit
    labels, model_input, status = limited.predict(str(digit_png), "mlp", "fp32", "onnxruntime")
    assert "over the 10,000-pixel limit" in status, status  # uploads their own

    check(sketch_value(draw_lines(ONE)), "no onnxruntime fp16 artifact", precision="fp16")
    labels, _, _ = digit_demo.predict(sketch_value(draw_lines(ONE)), "mlp", "fp32", "onnxruntime")
    assert top_label(labels) == "1"  # and it still works


def test_predictors_are_loaded_once_and_shared_between_threads(digit_demo):
    canvases = [(sketch_value(draw_lines(ONE)), "1"), (sketch_value(draw_lines(SEVEN)), "7")] * 12
    choices = [("onnxruntime", "fp32"), ("litert", "int8")]

    def read(item):
        (canvas, digit), (backend, precision) = item
        labels, _, status = digit_demo.predict(canvas, "mlp", precision, backend)
        return top_label(labels) == digit, status

    work = [(c, choices[i % 2]) for i, c in enumerate(canvases)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, work))
    assert all(ok for ok, _ in results), [s for ok, s in results if not ok]
    for backend, precision in choices:
        first, _ = digit_demo.predictor("mlp", backend, precision)
        assert digit_demo.predictor("mlp", backend, precision)[0] is first


# --- imports ------------------------------------------------------------------------------------


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **env}, stdin=subprocess.DEVNULL,
    )


def test_help_and_the_prediction_path_do_not_import_gradio():
    result = _python(
        """
        import contextlib, io, sys
        from mnist_edge.cli import build_parser
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
            build_parser().parse_args(["demo", "--help"])
        assert "[extra: demo]" in build_parser().format_help(), build_parser().format_help()
        assert "--share" in out.getvalue()
        import mnist_edge.demo.app
        assert "gradio" not in sys.modules, "importing mnist_edge.demo.app imported gradio"
        print("ok")
        """,
        COLUMNS="200",  # one help line per command
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_demo_never_imports_tensorflow(model_root, tmp_path):
    canvas = tmp_path / "seven.png"
    Image.fromarray(draw_lines(SEVEN)).save(canvas)
    result = _python(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # any import of them, even indirect, now fails
        sys.modules["keras"] = None
        import numpy as np
        from PIL import Image
        from mnist_edge.demo.app import DigitDemo, build_app

        app = build_app({str(model_root)!r})
        image = np.asarray(Image.open({str(canvas)!r}))
        for backend, precision in (("onnxruntime", "fp32"), ("litert", "int8")):
            labels, _, status = app.digit_demo.predict({{"background": None, "layers": [image], "composite": image}},
                                                       "mlp", precision, backend)
            print(max(labels, key=labels.get), status)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras") and sys.modules[m])
        assert not loaded, loaded
        """,
        GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["7", "7"], result.stdout


# --- the running app --------------------------------------------------------------------------


def test_api_reads_an_uploaded_digit_and_a_drawing(server, digit_files, tmp_path):
    from gradio_client import handle_file

    client = _client(server)
    try:
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert {"/predict_upload", "/predict_drawing"} <= set(endpoints)
        for path, expected in digit_files[:3]:
            labels, model_input, status = client.predict(
                handle_file(str(path)), "mlp", "fp32", "onnxruntime", api_name="/predict_upload"
            )
            assert labels["label"] == expected, status
            assert model_input is not None and " ms " in status

        drawing = tmp_path / "drawing.png"
        Image.fromarray(sketch_value(draw_lines(SEVEN))["composite"]).save(drawing)
        value = {"background": None, "layers": [], "composite": handle_file(str(drawing)), "id": None}
        labels, _, status = client.predict(value, "mlp", "int8", "litert", api_name="/predict_drawing")
        assert labels["label"] == "7", status
    finally:
        client.close()


def test_api_answers_bad_uploads_with_a_message_and_keeps_serving(server, digit_files, tmp_path):
    import httpx
    from gradio_client import handle_file

    client = _client(server)
    try:
        not_an_image = tmp_path / "scan.png"
        not_an_image.write_bytes(b"%PDF-1.4 this is not a picture")
        labels, model_input, status = client.predict(
            handle_file(str(not_an_image)), "mlp", "fp32", "onnxruntime", api_name="/predict_upload"
        )
        assert labels is None or labels.get("label") is None
        assert "scan.png: not a readable image" in status, status

        too_big = tmp_path / "huge.png"  # over the server's 5 MB upload limit: refused before any decoding
        too_big.write_bytes(os.urandom(6 * 1024 * 1024))
        with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks first
            client.predict(handle_file(str(too_big)), "mlp", "fp32", "onnxruntime", api_name="/predict_upload")
        with too_big.open("rb") as file:  # and the server refuses it on its own
            response = httpx.post(f"{server}gradio_api/upload", files={"files": ("huge.png", file, "image/png")})
        assert response.status_code == 413, response.text

        path, expected = digit_files[0]
        labels, _, status = client.predict(handle_file(str(path)), "mlp", "fp32", "onnxruntime", api_name="/predict_upload")
        assert labels["label"] == expected, status
    finally:
        client.close()


@pytest.mark.browser
def test_browser_draws_digits_and_reads_an_example(server, mlp_export, test_artifacts_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium`")
    from playwright.sync_api import expect, sync_playwright

    # What the page must say for the fourth example upload (a real "3" from the test set).
    example_expected = runtime.load(mlp_export).predict(example_digits()[3]).label

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.add_init_script(CSP_WATCH)
            response = page.goto(server, wait_until="load")
            assert response.headers["content-security-policy"] == DEMO_CSP
            page.wait_for_selector("#sketch canvas", timeout=30_000)
            prediction = page.locator("#prediction [data-testid='label-output-value']")
            status = page.locator("#status textarea")
            brush = page.locator("#sketch button[aria-label='Brush']")
            expect(brush).to_be_visible(timeout=30_000)
            page.wait_for_timeout(500)  # the canvas finishes setting up after the toolbar shows

            box = page.locator("#sketch canvas").first.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

            def stroke(points):
                page.mouse.move(x + points[0][0], y + points[0][1])
                page.mouse.down()
                for px, py in points[1:]:
                    page.mouse.move(x + px, y + py, steps=20)
                page.mouse.up()

            # The canvas shows at about 72% here: 220 screen pixels are about 300 canvas pixels.
            # The first stroke draws without choosing a tool: the page selects the brush itself.
            stroke([(0, -110), (0, 110)])
            expect(prediction).to_have_text("1", timeout=20_000)
            expect(status).to_have_value(re.compile(r"^1 \(\d+%\) in [\d.]+ ms"))
            # "What the model sees (28x28)": its whole label and picture show in a 1280-px window.
            expect(page.locator("#model-input img")).to_be_visible(timeout=20_000)
            fits = page.evaluate(PREVIEW_FITS)
            assert fits["label"] == "What the model sees (28x28)" and fits["labelWhole"] and fits["pictureWhole"], fits

            page.locator("#sketch button[aria-label='Clear canvas']").click()
            expect(status).to_have_value(re.compile("Draw a digit first"), timeout=20_000)
            brush.click()
            stroke([(-80, -100), (80, -100), (-10, 110)])
            expect(prediction).to_have_text("7", timeout=20_000)
            print(f"\nbrowser: drew 1 and 7; page says: {status.input_value()}")
            page.screenshot(path=str(test_artifacts_dir / "demo.png"), full_page=True)

            # "This is a 7": the page offers the prediction; Save keeps the drawing in the collect folder.
            collect = SERVER_PROCESS["collect"]
            before = len(list((collect / "7").glob("*.png")))
            expect(page.locator("#true-label input")).to_have_value("7", timeout=20_000)
            page.locator("#save-sample").click()
            expect(page.locator("#collect-counter")).to_contain_text(f"7: {before + 1}", timeout=20_000)
            saved = sorted((collect / "7").glob("*.png"))
            assert len(saved) == before + 1
            assert runtime.load(mlp_export).predict(saved[-1]).label == "7"  # the drawing itself was kept

            # The Upload tab: an example digit, then the same on LiteRT (whose fp16 shows up).
            page.get_by_role("tab", name="Upload").click()
            expect(status).to_have_value(re.compile("Draw a digit first"), timeout=20_000)
            page.locator("button.gallery-item").nth(3).click()
            expect(prediction).to_have_text(example_expected, timeout=20_000)
            page.get_by_role("radio", name="LiteRT").check()
            expect(status).to_have_value(re.compile(r"on LiteRT, fp32$"), timeout=20_000)
            expect(prediction).to_have_text(example_expected)
            expect(page.get_by_role("radio", name="fp16")).to_be_visible()
            page.screenshot(path=str(test_artifacts_dir / "demo-upload.png"), full_page=True)
            assert page.evaluate("window.cspViolations") == []  # everything above ran under DEMO_CSP
        finally:
            browser.close()


def _call_over_http(http, server: str, endpoint: str, path: Path, *, drawing: bool = False) -> list:
    """One call of `endpoint` through Gradio's plain HTTP API: upload the file, start the call,
    read the result from its event stream. Lighter than gradio_client, so the load test measures
    the server rather than twenty Python clients sharing two cores with it. A drawing is sent as
    the Sketchpad sends it: the composite image inside an editor value."""
    api = f"{server}gradio_api"
    with path.open("rb") as file:
        response = http.post(f"{api}/upload", files={"files": (path.name, file, "image/png")})
    response.raise_for_status()
    image = {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    if drawing:
        image = {"background": None, "layers": [], "composite": image, "id": None}
    return _call_api(http, server, endpoint, [image, "mlp", "fp32", "onnxruntime"])


def _call_api(http, server: str, endpoint: str, data: list) -> list:
    """One call of `endpoint` with `data` as sent (no upload): its result from the event stream."""
    event, payload = _api_event(http, server, endpoint, data)
    assert event == "complete", f"{endpoint}: {event} {payload}"
    return payload


def _api_event(http, server: str, endpoint: str, data: list) -> tuple[str, object]:
    """The last event of one call of `endpoint` ("complete" or "error") and its data."""
    api = f"{server}gradio_api"
    response = http.post(f"{api}/call/{endpoint}", json={"data": data})
    response.raise_for_status()
    response = http.get(f"{api}/call/{endpoint}/{response.json()['event_id']}")
    event = None
    for line in response.text.splitlines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            return event, json.loads(line.removeprefix("data:"))
    raise AssertionError(f"no result in the event stream: {response.text[:500]}")


def test_load_200_requests_from_20_clients(server, digit_files):
    import httpx

    jobs = [digit_files[i % len(digit_files)] for i in range(LOAD_REQUESTS)]
    latencies, wrong, lock = [], [], threading.Lock()

    def client_run(k: int):
        with httpx.Client(timeout=60) as http:
            for path, expected in jobs[k::LOAD_CLIENTS]:
                start = time.perf_counter()
                labels, _, status = _call_over_http(http, server, "predict_upload", path)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if labels is None or labels["label"] != expected:
                        wrong.append((path.name, expected, status))

    start = time.perf_counter()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        list(pool.map(client_run, range(LOAD_CLIENTS)))
    wall = time.perf_counter() - start
    # Every request is answered or the pool re-raises its error; each answer must be the right label.
    assert not wrong, wrong[:5]
    p50, p95 = np.percentile(np.array(latencies) * 1000, [50, 95])
    print(
        f"\nload: {LOAD_REQUESTS} requests from {LOAD_CLIENTS} concurrent clients, all correct; "
        f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms (upload + queue + prediction + result); "
        f"{LOAD_REQUESTS / wall:.0f} requests/s over {wall:.1f} s"
    )


# --- hostile input and the server's own limits ------------------------------------------------


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def test_huge_drawings_get_a_message_without_decoding(server, tmp_path):
    """Four 9000x9000 PNG drawings (81 megapixels each, ~100 KB on the wire) sent at once to the
    drawing endpoint: each is refused from its header, and the server's memory stays small."""
    import httpx

    bomb = tmp_path / "huge-drawing.png"
    Image.new("L", (9000, 9000), 255).save(bomb, optimize=True)
    assert bomb.stat().st_size < 200_000
    pid = SERVER_PROCESS["demo"].pid
    before = _memory_kib(pid, "VmRSS")
    peak, done = [before], threading.Event()

    def watch():
        while not done.is_set():
            peak.append(_memory_kib(pid, "VmRSS"))
            time.sleep(0.01)

    def send(_):
        with httpx.Client(timeout=120) as http:
            return _call_over_http(http, server, "predict_drawing", bomb, drawing=True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, range(4)))
    finally:
        done.set()
        watcher.join()
    for labels, model_input, status in answers:
        assert not (labels or {}).get("label") and model_input is None  # no prediction shown
        assert "9000x9000 is 81,000,000 pixels, over the 4,000,000-pixel limit" in status, status
        assert str(tmp_path) not in status and "/gradio" not in status  # no server paths in messages
    print(f"\nfour 9000x9000 drawings at once: server memory {before / 1024:.0f} MB before, peak {max(peak) / 1024:.0f} MB")
    assert max(peak) < 500 * 1024
    assert max(peak) - before < 100 * 1024


def test_a_port_in_use_is_one_line(model_root, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [*_demo_command(), "demo", "--model", str(model_root), "--port", str(port)],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")},
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mnist-edge: error: cannot serve on 127.0.0.1:{port}"), result.stderr


# --- collecting samples ------------------------------------------------------------------------


def test_save_keeps_readable_samples_only(model_root, mnist, tmp_path):
    demo = DigitDemo.from_root(model_root, collect=tmp_path / "mine")
    drawing = sketch_value(draw_lines(SEVEN))
    message, counter = demo.save(drawing, "7", "mlp")
    (saved,) = (tmp_path / "mine" / "7").glob("*.png")
    assert message == f"Saved as 7/{saved.name} (7)." and "7: 1" in counter and "1: 0" in counter
    assert str(tmp_path) not in message + counter
    np.testing.assert_array_equal(np.asarray(Image.open(saved)), drawing["composite"])  # the drawing as it was
    message, _ = demo.save(drawing, "7", "mlp")
    assert len(list((tmp_path / "mine" / "7").glob("*.png"))) == 2  # a second file, never an overwrite
    blank = sketch_value(np.zeros((CANVAS_SIZE, CANVAS_SIZE, 4), np.uint8))
    message, counter = demo.save(blank, "3", "mlp")
    assert message.startswith("Not saved: no digit found") and "3: 0" in counter
    assert demo.save(drawing, "eleven", "mlp")[0].startswith("Choose what this is first")
    assert demo.save(None, "7", "mlp")[0] == NOTHING_DRAWN
    assert not (tmp_path / "mine" / "3").exists()


def test_api_saves_an_upload_into_the_collect_folder(server, digit_files):
    import httpx

    collect = SERVER_PROCESS["collect"]
    path, _ = digit_files[3]
    with httpx.Client(timeout=60) as http:
        api = f"{server}gradio_api"
        with path.open("rb") as file:
            uploaded = http.post(f"{api}/upload", files={"files": (path.name, file, "image/png")}).json()[0]
        image = {"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
        before = len(list((collect / "0").glob("*.png")))
        response = http.post(f"{api}/call/collect", json={"data": ["upload", None, image, "0", "mlp"]})
        stream = http.get(f"{api}/call/collect/{response.json()['event_id']}").text
    message, counter = json.loads(next(line[5:] for line in stream.splitlines() if line.startswith("data:")))
    files = sorted((collect / "0").glob("*.png"))
    assert len(files) == before + 1 and message == f"Saved as 0/{files[-1].name} (0)."  # no server path
    assert f"0: {before + 1}" in counter and str(collect) not in counter
    assert files[-1].read_bytes() == path.read_bytes()  # the upload as it was sent


# --- server files are never read through the API ------------------------------------------------


def test_api_reads_only_what_was_uploaded_and_names_no_server_path(server, digit_files):
    """Gradio file data without `meta` (or a bare path) is not checked by Gradio: the demo reads
    only files inside Gradio's upload folder. A digit PNG on the server, a secret, a folder and a
    missing file all get the same words, so the reply says nothing about the server's files."""
    import httpx

    collect = SERVER_PROCESS["collect"]
    before = sorted(p for p in collect.rglob("*"))
    on_server = str(digit_files[0][0])  # a readable digit image on the server that nobody uploaded
    paths = [on_server, "/etc/passwd", "/etc", "/no/such/file.png", "/proc/self/environ", "../../etc/hostname"]
    refused = "Cannot read this image: only images uploaded to or drawn on this page are read."
    with httpx.Client(timeout=60) as http:
        for path in paths:
            for value in ({"path": path}, {"path": path, "orig_name": "digit.png"}, path):
                # Gradio's own checks refuse some shapes (a bare path; file data without `meta`
                # inside a drawing) with an empty error; the rest reach the demo, which refuses them.
                # Either way nothing is read and the answer is the same whatever the path names.
                gradio_refused = ("error", {"error": None})
                drawing = {"background": None, "layers": [], "composite": value, "id": None}
                for endpoint, image in (("predict_upload", value), ("predict_drawing", drawing)):
                    event, answer = _api_event(http, server, endpoint, [image, "mlp", "fp32", "onnxruntime"])
                    if endpoint == "predict_upload" and isinstance(value, dict):
                        assert event == "complete"  # this one reaches the demo's own check
                    if (event, answer) != gradio_refused:
                        labels, model_input, status = answer
                        assert not (labels or {}).get("label") and model_input is None, (path, status)
                        assert status == refused, (path, status)
                for endpoint, image in (("explain_upload", value), ("explain_drawing", drawing)):
                    event, answer = _api_event(http, server, endpoint, [image, "mlp", "fp32", "onnxruntime"])
                    assert (event, answer) == gradio_refused or answer == [None, ""], (path, answer)
                event, answer = _api_event(http, server, "collect", ["upload", None, value, "0", "mlp"])
                if (event, answer) != gradio_refused:
                    message, counter = answer
                    assert message == "Not saved: only images uploaded to or drawn on this page are read.", message
                    assert str(collect) not in counter, counter
    assert sorted(p for p in collect.rglob("*")) == before  # nothing was copied in


def test_a_client_hanging_up_mid_upload_is_one_line_in_the_log(server):
    """Half an upload, then the connection closes: the demo logs one line (no traceback, which the
    server fixture also checks at the end) and keeps serving."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server)
    boundary = "mnistedgeboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="digit.png"\r\nContent-Type: image/png\r\n\r\n'
    for _ in range(3):
        with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
            connection.sendall(
                f"POST /gradio_api/upload HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 1000000\r\n\r\n".encode()
                + head.encode() + b"\x89PNG" + b"\0" * 200_000
            )
            time.sleep(0.3)  # the server is reading the body when the client goes
    deadline = time.monotonic() + 20
    while "a client hung up" not in SERVER_PROCESS["log"].read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = SERVER_PROCESS["log"].read_text()
    assert "mnist-edge demo: a client hung up mid-request" in log and "Traceback" not in log, log
    with urllib.request.urlopen(server, timeout=10) as response:  # still serving
        assert response.status == 200


# --- the first page a new user sees --------------------------------------------------------------


def _relabelled_export(mlp_export: Path, root: Path, name: str, accuracy: float) -> None:
    copy = root / name / "export"
    shutil.copytree(mlp_export, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["model"]["name"], data["model"]["test_accuracy"] = name, accuracy
    (copy / "manifest.json").write_text(json.dumps(data))


def test_a_fresh_page_selects_the_most_accurate_model_and_the_notice_has_no_emoji(mlp_export, tmp_path):
    from mnist_edge.demo.app import build_app
    from mnist_edge.demo.models import STATUS_FILE

    root = tmp_path / "artifacts"
    _relabelled_export(mlp_export, root, "cnn", 0.9816)
    _relabelled_export(mlp_export, root, "mlp", 0.9916)
    (root / STATUS_FILE).write_text(json.dumps({"pid": os.getpid(), "pending": ["big"], "current": "big", "stage": "training"}))
    os.environ.setdefault("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = build_app(root, examples=False)
    menu = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "model")
    assert list(app.digit_demo.models) == ["cnn", "mlp"]  # the menu's order is unchanged
    assert menu.value == "mlp"  # but the best model is the one selected
    notice = app.digit_demo.pending_notice()
    assert "Still being made (now training big): **big**" in notice
    assert notice.isascii(), notice  # no emoji that a browser without an emoji font shows as a box


def test_the_pipeline_says_others_are_being_made_only_when_some_are():
    from mnist_edge.pipeline import demo_started_line

    url = "http://127.0.0.1:7860/"
    assert demo_started_line(url, "mlp", ["cnn"]) == f"mnist-edge: the demo is serving the first model (mlp) at {url} while cnn is made"
    assert demo_started_line(url, "mlp", []) == f"mnist-edge: the demo is serving at {url}"  # a second run: nothing to make
    assert "while" not in demo_started_line(url, "cnn", ())


# --- memory: bounded decoding, no growth with requests -------------------------------------------


def test_large_uploads_decode_a_few_at_a_time_and_give_the_memory_back(server, tmp_path):
    """Eight requests at once with a 15.9-megapixel WEBP of a few KB (just under the upload limit):
    at most DECODE_SLOTS decode at a time, so the peak stays within the bound the README states,
    and the memory goes back afterwards. A 40-megapixel upload is refused from its header."""
    import httpx
    from PIL import ImageDraw

    from mnist_edge.demo.service import DECODE_SLOTS, MAX_UPLOAD_PIXELS

    side = 3990  # 15.9 megapixels
    photo = tmp_path / "one.webp"
    image = Image.new("RGB", (side, side), (255, 255, 255))
    ImageDraw.Draw(image).line([(side // 2, side // 5), (side // 2, side * 4 // 5)], fill=(0, 0, 0), width=side // 15)
    image.save(photo, quality=50)
    huge = tmp_path / "huge.webp"
    Image.new("RGB", (6400, 6400), (255, 255, 255)).save(huge, quality=50)
    pid = SERVER_PROCESS["demo"].pid
    before = _memory_kib(pid, "VmRSS")
    peak, done = [before], threading.Event()

    def watch():
        while not done.is_set():
            peak.append(_memory_kib(pid, "VmRSS"))
            time.sleep(0.01)

    def send(path):
        with httpx.Client(timeout=300) as http:
            return _call_over_http(http, server, "predict_upload", path)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, [photo] * 8 + [huge]))
    finally:
        done.set()
        watcher.join()
    time.sleep(0.5)
    after = _memory_kib(pid, "VmRSS")
    for labels, _, status in answers[:8]:
        assert labels and labels["label"] == "1", status
    assert f"over the {MAX_UPLOAD_PIXELS:,}-pixel limit" in answers[8][2], answers[8][2]
    rise, kept = (max(peak) - before) / 1024, (after - before) / 1024
    print(f"\n8 uploads of {side}x{side} at once: {before / 1024:.0f} MB before, peak +{rise:.0f} MB, after +{kept:.0f} MB")
    assert rise < DECODE_SLOTS * 300  # 2 decodes of <= 16 MP at ~15 bytes a pixel (README)
    assert kept < 150


def test_the_demo_keeps_the_state_of_the_last_sessions_only(model_root, digit_files):
    """Gradio keeps each session's state (every API call without a session is a new one) until
    10,000 are held, about 80 KB each: the demo grew by some 80 KB a request (issue 17, item 14).
    Served as `mnist-edge demo --sessions 5` serves it, twelve calls from twelve sessions through
    the HTTP API leave the state of five: the count of states the server holds rises to the cap
    and stays there, every call answered."""
    import httpx

    from mnist_edge.demo.app import serve

    cap, calls = 5, 12
    app = serve(model_root, port=_free_port(), sessions=cap)
    held = []
    try:
        url = f"http://127.0.0.1:{app.server_port}/"
        with httpx.Client(timeout=60) as http:
            for i in range(calls):
                path, expected = digit_files[i % len(digit_files)]
                labels, _, status = _call_over_http(http, url, "predict_upload", path)
                assert labels["label"] == expected, status
                held.append(len(app.state_holder.session_data))
    finally:
        app.close()
    print(f"\nsession states held after each of {calls} calls (cap {cap}): {held}")
    assert held == [min(n, cap) for n in range(1, calls + 1)]


def test_the_demo_modules_have_one_job_each_and_no_upward_import():
    """app joins models, service and page without importing the pipeline (even inside a function);
    the web proofs never import the build (it takes them as an argument); no function in demo/ is
    over 60 lines."""
    import ast

    import mnist_edge.demo as package

    folder = Path(package.__file__).parent
    forbidden = {"pipeline": ("app", "models", "service", "page"), "web_build": tuple(
        f.stem for f in folder.glob("web_*.py") if f.stem not in ("web_build", "web_server", "web_signing"))}
    found, long = [], []
    for file in folder.glob("*.py"):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                names += [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
                for target, importers in forbidden.items():
                    if file.stem in importers and any(n.split(".")[-1] == target for n in names):
                        found.append(f"{file.name} imports {target}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{file.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not found, found
    assert not long, long


# --- the Number tab ----------------------------------------------------------------------------

DRAWN_NUMBERS = ("2026", "314", "90817")
READ_SEED = 19  # the generated fields the API test reads


def _field_files(mnist, predictor, folder: Path, count: int) -> list[tuple[Path, str]]:
    """Generated fields (mnist_edge/fields.py: real MNIST test digits, wide gaps and close ones,
    plain and ruled) that the runtime itself reads right: what the app must answer for them."""
    from mnist_edge.fields import make_fields

    chosen = []
    for spacing, form in (("wide", "plain"), ("close", "ruled")):
        for n, generated in enumerate(make_fields(mnist.test.images, mnist.test.labels, 20, READ_SEED, spacing=spacing, form=form)):
            path = folder / f"field-{spacing}-{form}-{n}.{'jpg' if generated.jpeg else 'png'}"
            path.write_bytes(generated.image)
            if predictor.read(path).text == generated.text and len(generated.text) >= 3:
                chosen.append((path, generated.text))
                break
    assert len(chosen) == count, f"the runtime read only {len(chosen)} of the fields right"
    return chosen


def _read_number_over_http(http, server: str, path: Path, min_confidence=0.8, *, drawing: bool = False, model="mlp") -> list:
    """The Number tab's reading of a file through Gradio's HTTP API: (text, status, boxed input, digits)."""
    api = f"{server}gradio_api"
    with path.open("rb") as file:
        response = http.post(f"{api}/upload", files={"files": (path.name, file, "image/png")})
    response.raise_for_status()
    image = {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
    endpoint = "read_number_upload"
    if drawing:
        image, endpoint = {"background": None, "layers": [], "composite": image, "id": None}, "read_number_drawing"
    return _call_api(http, server, endpoint, [image, model, "fp32", "onnxruntime", min_confidence])


def test_api_reads_generated_fields_as_the_runtime_does(server, mnist, mlp_export, tmp_path):
    import httpx

    predictor = runtime.load(mlp_export)
    with httpx.Client(timeout=60) as http:
        for path, truth in _field_files(mnist, predictor, tmp_path, 2):
            reading = predictor.read(path)
            text, status, boxed, digits = _read_number_over_http(http, server, path)
            assert text == truth and status.startswith(f"{len(truth)} digits · confidence {reading.confidence:.1%}"), status
            assert "mlp/model.onnx on ONNX Runtime, fp32" in status
            # Each digit as the model saw it, with its label and confidence.
            assert [d["caption"] for d in digits] == [f"{d.label} · {d.confidence:.1%}" for d in reading.digits]
            tiles = [Image.open(io.BytesIO(http.get(d["image"]["url"]).content)) for d in digits]
            assert {tile.size for tile in tiles} == {(112, 112)}
            np.testing.assert_array_equal(np.asarray(tiles[0].convert("L"))[::4, ::4], np.round(reading.digits[0].input * 255))
            # The input with each box drawn on it: red and blue frames where the runtime's boxes are.
            picture = np.asarray(Image.open(io.BytesIO(http.get(boxed["url"]).content)).convert("RGB")).astype(int)
            scale = picture.shape[1] / Image.open(path).width
            for n, digit in enumerate(reading.digits):
                x0, y0, x1, y1 = (round(v * scale) for v in digit.box)
                edge = picture[y0 + 2 : y1 - 2, x0]  # the left side of the frame
                colour = (edge[:, 0] - edge[:, 2]) if n % 2 == 0 else (edge[:, 2] - edge[:, 0])
                assert (colour > 100).mean() > 0.9, (path.name, n, digit.box)
            # A stricter minimum rejects the same reading, for a person to check.
            text, status, _, _ = _read_number_over_http(http, server, path, min_confidence=1.0)
            assert text == truth and status.startswith(f"Rejected — please check: '{truth}' read with confidence"), status


def _letters(word: str, path: Path) -> Path:
    from PIL import ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 60)
    image = Image.new("L", (320, 110), 240)
    ImageDraw.Draw(image).text((20, 15), word, fill=20, font=font)
    image.save(path)
    return path


def _forty_digits(mnist, path: Path) -> Path:
    """40 real test digits in a row, 30 px tall with 12 px gaps, dark on light."""
    digits = [np.asarray(Image.fromarray(mnist.test.images[i]).resize((30, 30))) for i in range(40)]
    row = np.concatenate([np.pad(d, ((10, 10), (6, 6))) for d in digits], axis=1)
    Image.fromarray(255 - row).save(path)
    return path


def test_api_answers_bad_numbers_with_a_message_and_keeps_serving(server, mnist, mlp_export, tmp_path):
    import httpx

    blank = tmp_path / "blank.png"
    Image.new("RGBA", (1000, 280), (255, 255, 255, 255)).save(blank)
    not_an_image = tmp_path / "amount.png"
    not_an_image.write_bytes(b"%PDF-1.4 this is not a picture")
    many_pixels = tmp_path / "poster.png"  # 20 megapixels, 60 KB on the wire: refused from its header
    Image.new("L", (5000, 4000), 255).save(many_pixels, optimize=True)
    expected = [
        (blank, True, "Write a number first: no digit found: the image is blank"),
        (blank, False, "blank.png: no digit found: the image is blank"),
        (not_an_image, False, "Cannot read this number: amount.png: not a readable image"),
        (many_pixels, False, "Cannot read this number: poster.png: 5000x4000 is 20,000,000 pixels, over the 16,000,000-pixel limit"),
        (_forty_digits(mnist, tmp_path / "forty.png"), False, "Cannot read this number: too many digits"),
    ]
    with httpx.Client(timeout=60) as http:
        for path, drawing, message in expected:
            text, status, boxed, digits = _read_number_over_http(http, server, path, drawing=drawing)
            assert (text, boxed, digits) == ("", None, []) and status.startswith(message), (path.name, status)
            assert str(tmp_path) not in status and "/gradio" not in status  # no server paths in messages
        for word in ("ABC", "xyz"):  # letters: the most digit-like reading, rejected
            text, status, _, _ = _read_number_over_http(http, server, _letters(word, tmp_path / f"{word}.png"))
            assert status.startswith(f"Rejected — please check: '{text}' read with confidence"), (word, status)
        response = http.post(f"{server}gradio_api/upload", files={"files": ("huge.png", os.urandom(6 * 1024 * 1024), "image/png")})
        assert response.status_code == 413, response.text  # over the 5 MB upload limit
        refused = _call_api(http, server, "read_number_upload", [{"path": "/etc/passwd"}, "mlp", "fp32", "onnxruntime", 0.8])
        assert refused == ["", "Cannot read this image: only images uploaded to or drawn on this page are read.", None, []]
        path, truth = _field_files(mnist, runtime.load(mlp_export), tmp_path, 2)[0]
        assert _read_number_over_http(http, server, path)[0] == truth  # and it keeps serving


# Numbers written with the mouse: MNIST test digits traced as pen strokes, each with few points
# (a mouse event costs a frame of the canvas's software WebGL here), each read right alone.

WRITE_SCALE = 7.0  # canvas pixels per MNIST pixel: digits about 140 px tall on the 280 px canvas
CANDIDATES = 300  # test digits of a class looked at
POINT_LIMITS = (12, 16, 20)  # mouse positions of one digit, all its strokes together: few first


def _simplified(path: list, tolerance: float) -> list:
    """Ramer-Douglas-Peucker: the fewest points of `path` within `tolerance` of it."""
    if len(path) < 3:
        return path
    start, end = np.array(path[0], float), np.array(path[-1], float)
    direction = end - start
    length = float(np.hypot(*direction))
    middle = np.array(path[1:-1], float) - start
    distances = np.abs(direction[0] * middle[:, 1] - direction[1] * middle[:, 0]) / length if length else np.hypot(*middle.T)
    worst = int(np.argmax(distances)) + 1
    if distances[worst - 1] <= tolerance:
        return [path[0], path[-1]]
    return _simplified(path[: worst + 1], tolerance)[:-1] + _simplified(path[worst:], tolerance)


def _pen_paths(image: np.ndarray) -> list[np.ndarray]:
    """An MNIST digit's skeleton as a few simplified polylines (MNIST pixels), stubs left out."""
    from mnist_edge.demo.web_strokes import skeleton_paths, thin

    paths = [p for p in skeleton_paths(thin(image > 127)) if len(p) >= 4]
    return [np.array(_simplified(p, 0.7), float) for p in paths]


def _written(strokes: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Strokes in canvas pixels as the Sketchpad draws them: black, round, on white."""
    from mnist_edge.demo.page_number import NUMBER_BRUSH_RADIUS

    image = Image.new("L", size, 255)
    pen = ImageDraw.Draw(image)
    r = NUMBER_BRUSH_RADIUS
    for stroke in strokes:
        pen.line([tuple(p) for p in stroke], fill=0, width=2 * r, joint="curve")
        for x, y in stroke:
            pen.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return np.asarray(image)


def _few_points_read_right(predictor, images: np.ndarray, labels: np.ndarray, character: str) -> list[np.ndarray]:
    """The first test digit of this class (seeded order) with at most POINT_LIMITS[0] pen points
    (or the next limit, if none) that the model reads right (>= 0.9) written alone: its pen paths."""
    order = np.random.default_rng(READ_SEED).permutation(len(images))
    of_class = [i for i in order if str(labels[i]) == character][:CANDIDATES]
    traced: dict[int, list[np.ndarray]] = {}
    for limit in POINT_LIMITS:
        for i in of_class:
            if i not in traced:
                traced[i] = _pen_paths(images[i])
            paths = traced[i]
            if not paths or sum(len(p) for p in paths) > limit:
                continue
            low = np.min(np.concatenate(paths), axis=0)
            alone = [(p - low) * WRITE_SCALE + 70 for p in paths]
            prediction = predictor.predict(_written(alone, (280, 280)))
            if prediction.label == character and prediction.confidence >= 0.9:
                return [p - low for p in paths]
    raise AssertionError(f"none of {len(of_class)} test digits {character!r} is read right when written")


def number_plan(predictor, images: np.ndarray, labels: np.ndarray, text: str) -> list[np.ndarray]:
    """`text` as mouse strokes in canvas pixels: for each character a test digit with few points
    that the model reads right when written alone, laid out left to right, centred on the Number
    canvas. The whole plan must read back as `text` in Python."""
    from mnist_edge.demo.page_number import NUMBER_CANVAS

    width, height = NUMBER_CANVAS
    digits = [_few_points_read_right(predictor, images, labels, character) for character in text]
    spans = [np.max(np.concatenate(paths), axis=0) for paths in digits]
    gap = 5.0
    x = (width / WRITE_SCALE - sum(s[0] for s in spans) - gap * (len(spans) - 1)) / 2
    strokes = []
    for paths, span in zip(digits, spans):
        y = (height / WRITE_SCALE - span[1]) / 2
        strokes += [(p + [x, y]) * WRITE_SCALE for p in paths]
        x += span[0] + gap
    assert predictor.read(_written(strokes, NUMBER_CANVAS)).text == text
    return strokes


def write_with_mouse(page, strokes: list[np.ndarray]) -> None:
    """Move the mouse along `strokes` (canvas pixels) on the Number tab's canvas, shown at the
    zoom its toolbar says, centred in its element."""
    from mnist_edge.demo.page_number import NUMBER_CANVAS

    zoom = float(page.locator("#number-sketch").get_by_text(re.compile(r"^\d+%$")).inner_text().rstrip("%")) / 100
    box = page.locator("#number-sketch canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for stroke in strokes:
        points = [(cx + (x - NUMBER_CANVAS[0] / 2) * zoom, cy + (y - NUMBER_CANVAS[1] / 2) * zoom) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point)
        page.mouse.up()


@pytest.mark.browser
def test_browser_reads_numbers_written_with_the_mouse(server, mlp_export, mnist, test_artifacts_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium`")
    from playwright.sync_api import expect, sync_playwright

    predictor = runtime.load(mlp_export)
    plans = {text: number_plan(predictor, mnist.test.images, mnist.test.labels, text) for text in DRAWN_NUMBERS}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # A narrow window at half resolution draws a smaller canvas: each mouse event costs far
            # less software rendering (measured, 25 moves: 75 s in a 1280-px window, 9.4 s at 700
            # px, 4.9 s at 700 px and half resolution).
            page = browser.new_page(viewport={"width": 700, "height": 1000}, device_scale_factor=0.5)
            page.add_init_script(CSP_WATCH)
            page.goto(server, wait_until="load")
            page.get_by_role("tab", name="Number").click()
            brush = page.locator("#number-sketch button[aria-label='Brush']")
            expect(brush).to_be_visible(timeout=30_000)
            page.wait_for_timeout(500)  # the canvas finishes setting up after the toolbar shows
            read, status = page.locator("#number-text textarea"), page.locator("#number-status textarea")
            for n, text in enumerate(DRAWN_NUMBERS):
                if n:  # the canvas cleared: the next reading holds only the next number's digits
                    page.locator("#number-sketch button[aria-label='Clear canvas']").click()
                    brush.click()
                write_with_mouse(page, plans[text])
                expect(read).to_have_value(text, timeout=60_000)
                expect(page.locator("#number-digits img")).to_have_count(len(text), timeout=20_000)
                page.wait_for_timeout(1000)  # no later answer (of the last stroke) changes it
                assert read.input_value() == text, status.input_value()
                print(f"\nbrowser number: wrote {text}; page says {status.input_value()}")
            page.screenshot(path=str(test_artifacts_dir / "demo-number.png"), full_page=True)
            assert page.evaluate("window.cspViolations") == []
        finally:
            browser.close()
