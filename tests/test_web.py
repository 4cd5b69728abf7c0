"""The web app (`mnist-edge web`): the site it builds, the server, and in a real Chromium the
model parity of every artifact in onnxruntime-web and LiteRT.js on the whole test set, the page's
preprocessing against Python's on 320 drawings, the page drawn on with a mouse and a finger,
offline, a tampered model refused, and collected samples downloaded as a zip that
`mnist-edge evaluate` reads.

Everything runs against the small MLP export (`mlp_export`) on 127.0.0.1: one server and one
Chromium for the module. The npm packages come from the lockfile (`npm ci`, once per lockfile,
into the user cache). Timings are printed, never asserted.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge import formats, runtime
from mnist_edge.cli import main
from mnist_edge.data import scale_images
from mnist_edge.demo import web_build, web_number, web_proofs
from mnist_edge.demo.web_server import SiteServer
from mnist_edge.manifest import read_manifest

PRECISIONS = ("int8", "fp32")  # two entries in the model menu


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return web_build.npm_modules()


@pytest.fixture(scope="module")
def site(mlp_export, node_modules, tmp_path_factory) -> Path:
    """The site of the MLP (int8 first, then fp32), built without the browser proofs (the tests
    below run them one by one)."""
    out = tmp_path_factory.mktemp("web") / "site"
    build = web_build.build_site(mlp_export, out, precisions=PRECISIONS, proofs="off", log=lambda line: None)
    assert build.report.not_run == "skipped with --proofs off"
    return out


@pytest.fixture(scope="module")
def tampered_site(site, tmp_path_factory) -> Path:
    """A copy of the site whose int8 model has one byte changed."""
    copy = tmp_path_factory.mktemp("tampered") / "site"
    shutil.copytree(site, copy)
    model = copy / "models" / "mlp" / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    return copy


@pytest.fixture(scope="module")
def test_inputs(mnist) -> np.ndarray:
    return scale_images(mnist.test.images)


@pytest.fixture(scope="module")
def server(site, tampered_site, mlp_export, node_modules, test_inputs, tmp_path_factory):
    """One server: the site at /, the tampered copy at /tampered/, the proof harness at /proof/."""
    work = tmp_path_factory.mktemp("proof-data")
    data_file = web_proofs.write_test_images(test_inputs, work)
    mounts = web_proofs.proof_mounts(site, [read_manifest(mlp_export)], node_modules, work)
    with SiteServer({**mounts, "/tampered/": tampered_site}, csp_exempt=web_proofs.PROOF_PREFIXES) as server:
        server.data_file = data_file
        yield server


@pytest.fixture(scope="module")
def playwright_and_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = web_proofs.launch(playwright)
        yield playwright, browser
        browser.close()


@pytest.fixture(scope="module")
def browser(playwright_and_browser):
    return playwright_and_browser[1]


@pytest.fixture(scope="module")
def predictor(mlp_export):
    return runtime.load(mlp_export)


@pytest.fixture(scope="module")
def digits(predictor, mnist):
    """Three test digits redrawn with the page's pen that Python reads right (0.9+ confident)."""
    return web_proofs.readable_digits(predictor, mnist.test.images, mnist.test.labels, 3)


@pytest.fixture(scope="module")
def model_runs(browser, server, site, mlp_export, test_inputs, mnist):
    page = browser.new_page()
    try:
        return web_proofs.prove_models(
            page, server.url, site, [read_manifest(mlp_export)], test_inputs, mnist.test.labels, server.data_file
        )
    finally:
        page.close()


@pytest.fixture(scope="module")
def preprocessing(browser, server, predictor, mnist):
    page = browser.new_page()
    try:
        web_proofs.open_app(page, server.url)
        return web_proofs.prove_preprocessing(page, predictor, mnist.test.images, count=320)
    finally:
        page.close()


@pytest.fixture(scope="module")
def page_use(browser, server, digits, test_artifacts_dir):
    return web_proofs.prove_page_use(browser, server.url, digits, screenshots=test_artifacts_dir)


def _get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --- the site and the server (no browser) -------------------------------------------------------


def test_site_holds_the_app_the_chosen_models_and_the_pinned_runtime(site, mlp_export, node_modules):
    index = json.loads((site / "models.json").read_text())
    assert [m["id"] for m in index["models"]] == ["mlp-int8", "mlp-fp32"]
    assert [m["file"] for m in index["models"]] == ["model.int8.onnx", "model.onnx"]  # from the registry
    lock = json.loads((web_build.SOURCE / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    assert pinned.startswith("1.30.") and index["engines"]["onnxruntime-web"]["version"] == pinned
    for file in formats.BROWSER_ENGINES["onnxruntime-web"].files:  # copied from npm, byte for byte
        assert (site / "vendor" / "onnxruntime-web" / Path(file).name).read_bytes() == (node_modules / file).read_bytes()
    assert not (site / "vendor" / "litert-js").exists()  # proven, not shipped

    export = read_manifest(mlp_export)
    copy = read_manifest(site / "models" / "mlp")
    assert [a.file for a in copy.artifacts] == ["model.int8.onnx", "model.onnx"]
    for artifact in copy.artifacts:
        assert artifact == export.artifact(artifact.file)
        assert (site / "models" / "mlp" / artifact.file).read_bytes() == (mlp_export / artifact.file).read_bytes()
    assert copy.libraries["onnxruntime-web"] == pinned

    worker = (site / "sw.js").read_text()
    precache = json.loads(worker.split("const PRECACHE = ", 1)[1].split("; //", 1)[0])
    assert precache["files"][0] == "./"
    assert {"index.html", "js/page.js", "js/preprocess.js", "models.json", "models/mlp/model.int8.onnx",
            "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm", "icons/icon-192.png", "app.webmanifest"} <= set(precache["files"])
    assert "models/mlp/model.onnx" not in precache["files"]  # kept when first chosen, not on the first visit
    for file in precache["files"][1:]:
        assert (site / file).is_file(), file

    manifest = json.loads((site / "app.webmanifest").read_text())
    assert manifest["display"] == "standalone" and {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    for icon in manifest["icons"]:
        with Image.open(site / icon["src"]) as image:
            assert f"{image.width}x{image.height}" == icon["sizes"]
    # No CDN: every script, style, link and fetch in the app is relative to the site.
    for path in [site / "index.html", *(site / "js").glob("*.js")]:
        text = path.read_text()
        for marker in ('src="http', 'href="http', "from 'http", 'from "http', "import('http", "fetch('http", "jsdelivr", "unpkg", "cdnjs"):
            assert marker not in text.lower(), f"{path.name}: {marker}"


def test_server_sends_wasm_and_modules_with_their_types_gzipped_and_revalidates(server):
    wasm = server.url + "vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm"
    status, headers, body = _get(wasm, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Type"] == "application/wasm" and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body)[:4] == b"\0asm"
    status, headers, _ = _get(server.url + "vendor/onnxruntime-web/ort.wasm.min.mjs")
    assert headers["Content-Type"].startswith("text/javascript") and "Content-Encoding" not in headers
    assert _get(server.url + "app.webmanifest")[1]["Content-Type"] == "application/manifest+json"
    assert _get(server.url + "icons/icon-192.png", {"Accept-Encoding": "gzip"})[1].get("Content-Encoding") is None
    status, again, body = _get(wasm, {"Accept-Encoding": "gzip", "If-None-Match": headers_etag(server, wasm)})
    assert status == 304 and body == b""
    assert _get(server.url + ".mnist-edge-site")[0] == 404  # dot-files are never served
    assert _get(server.url + "js/../../etc/passwd")[0] == 404
    assert _get(server.url + "nothing-here.js")[0] == 404


def headers_etag(server, url: str) -> str:
    return _get(url, {"Accept-Encoding": "gzip"})[1]["ETag"]


def test_build_refuses_an_out_folder_it_did_not_make_and_keeps_it(mlp_export, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(web_build.WebBuildError, match="is not a site built by `mnist-edge web`"):
        web_build.build_site(mlp_export, out, proofs="off", log=lambda line: None)
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(web_build.WebBuildError, match=r"no fp16 artifact a browser engine runs \(precisions with one: fp32, int8\)"):
        web_build.choose_models(mlp_export, precisions=("fp16",))
    with pytest.raises(web_build.WebBuildError, match="no exported model named cnn .*found: mlp"):
        web_build.choose_models(mlp_export.parent.parent, names=("cnn",))


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_edge", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_says_in_one_line_when_npm_is_missing(mlp_export, tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "MNIST_EDGE_CACHE": str(tmp_path / "empty-cache")}
    result = _cli("web", str(mlp_export), "--out", str(tmp_path / "site"), "--proofs", "off", env=env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mnist-edge: error: npm is not installed"), result.stderr
    assert not (tmp_path / "site").exists()


def test_cli_without_chromium_builds_the_site_and_says_no_proof_ran(mlp_export, node_modules, tmp_path):
    env = {**os.environ, web_proofs.CHROMIUM_ENV: str(tmp_path / "no-chromium")}
    result = _cli("web", str(mlp_export), "--out", str(tmp_path / "site"), env=env)
    assert result.returncode == 0, result.stderr
    assert "browser proofs not run: no Chromium on this machine" in result.stdout
    report = (tmp_path / "site" / "parity.md").read_text()
    assert "**No browser proof ran**" in report and "Model parity" not in report
    assert json.loads((tmp_path / "site" / "parity.json").read_text())["passed"] is False
    manifest = read_manifest(tmp_path / "site" / "models" / "mlp")
    assert [p.engine for p in manifest.artifacts[0].proofs] == ["onnxruntime"]  # no browser proof recorded
    # Asked for proofs that cannot run: an error, and the site built before stays as it was.
    before = (tmp_path / "site" / "sw.js").read_text()
    result = _cli("web", str(mlp_export), "--out", str(tmp_path / "site"), "--proofs", "on", env=env)
    assert result.returncode == 1 and result.stderr.startswith("mnist-edge: error: no Chromium found"), result.stderr
    assert (tmp_path / "site" / "sw.js").read_text() == before


# --- proofs in Chromium -------------------------------------------------------------------------


@pytest.mark.browser
def test_every_artifact_matches_python_in_the_browser_engines(model_runs):
    by_file = {(r.file, r.engine): r for r in model_runs}
    for run in model_runs:
        p = run.proof
        print(f"{run.file:20} {run.engine:16} vs {run.reference:12} "
              + (f"agreement {p.argmax_agreement:.2%} max|dp| {p.max_abs_diff:.2g} load {run.load_ms:.0f} ms run {run.run_ms:.0f} ms"
                 if p else f"cannot run: {run.cannot_run}"))
    for file in ("model.onnx", "model.ort", "model.tflite", "model.fp16.tflite"):
        engine = formats.kind(file).browser_engines[0]
        proof = by_file[(file, engine)].proof
        assert proof.images == 10_000 and proof.argmax_agreement == 1.0 and proof.max_abs_diff <= 1e-5 and proof.passed, file
    int8 = by_file[("model.int8.onnx", "onnxruntime-web")].proof
    assert int8.images == 10_000 and int8.argmax_agreement == 1.0 and int8.passed
    unsupported = by_file[("model.int8.tflite", "litert-js")]
    assert unsupported.proof is None and not unsupported.expected and unsupported.passed
    assert "INT8" in unsupported.cannot_run  # LiteRT.js' own words: no int8 tensors
    assert all(r.passed for r in model_runs)


@pytest.mark.browser
def test_page_preprocessing_equals_python_on_320_drawings(preprocessing):
    p = preprocessing
    print(f"\n{p.compared} drawings: mean |d| {p.mean_abs_diff:.3g}, worst drawing {p.worst_mean_abs_diff:.3g}, "
          f"max |d| {p.max_abs_diff:.3g}, same class {p.same_prediction:.2%}, page {p.js_ms_median:.1f} ms each")
    assert p.compared >= 300 and p.no_digit_one_side == 0
    assert p.mean_abs_diff <= 0.01 and p.same_prediction >= 0.995 and p.passed


UNUSUAL = """(cases) => cases.map(({ rgba, width, height, kind }) => {
  const bytes = Uint8ClampedArray.from(atob(rgba), (c) => c.charCodeAt(0));
  const input = { shape: [null, 28, 28], preprocessing: { kind, box: 20 } };
  try { return Array.from(window.mnistEdge.prepare(new ImageData(bytes, width, height), input)); } catch (e) { return e.message; }
})"""


def unusual_images(rng) -> list[tuple[np.ndarray, str]]:
    """RGBA images a pen on the canvas rarely makes, with the preprocessing kind to run."""
    from PIL import ImageDraw

    images = []
    for i in range(40):
        size = int(rng.choice([40, 64, 65, 100, 200]))
        big = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
        pen = ImageDraw.Draw(big)
        colour = (*(int(c) for c in rng.integers(0, 256, 3)), int(rng.choice([255, 180, 90])))
        points = [tuple(int(v) for v in rng.integers(0, size * 2, 2)) for _ in range(int(rng.integers(2, 6)))]
        pen.line(points, fill=colour, width=max(2, int(size * 2 * rng.choice([0.01, 0.05, 0.2, 0.6]))), joint="curve")
        image = big.resize((size, size), Image.Resampling.BOX)
        if i % 6 == 5:  # dark ink on opaque white paper
            paper = Image.new("RGBA", (size, size), (255, 255, 255, 255))
            paper.paste(Image.new("RGBA", (size, size), (0, 0, 0, 255)), mask=image.getchannel("A"))
            image = paper
        images.append((np.asarray(image), "plain" if i % 4 == 3 else "digit"))
    blank = np.zeros((100, 100, 4), np.uint8)
    speck, line = blank.copy(), blank.copy()
    speck[50:53, 50:53] = 255
    line[48:52, 5:95] = 255
    return images + [(blank, "digit"), (speck, "digit"), (line, "digit")]


@pytest.mark.browser
def test_page_preprocessing_equals_python_on_unusual_images(browser, server):
    """Paths a pen on the canvas rarely takes: tiny and odd-sized images, semi-transparent and
    coloured ink, dark ink on opaque white, strokes covering most of the image (the paper-level
    fit), hair-thin lines (the thickening), the "plain" preprocessing of Fashion-MNIST, and
    images with no digit (blank, a speck, a line), which must get Python's message word for word."""
    import base64

    from mnist_edge.runtime.errors import NoDigitError
    from mnist_edge.runtime.preprocess import to_mnist, to_plain

    cases, expected = [], []
    for rgba, kind in unusual_images(np.random.default_rng(3)):
        try:
            expected.append(to_plain(rgba) if kind == "plain" else to_mnist(rgba))
        except NoDigitError as exc:
            expected.append(str(exc))
        height, width = rgba.shape[:2]
        cases.append({"rgba": base64.b64encode(rgba.tobytes()).decode(), "width": width, "height": height, "kind": kind})
    page = browser.new_page()
    try:
        web_proofs.open_app(page, server.url)
        results = page.evaluate(UNUSUAL, cases)
    finally:
        page.close()
    refused = 0
    for want, got in zip(expected, results):
        if isinstance(want, str):
            assert got == want  # the same "no digit found: ..." message, word for word
            refused += 1
        else:
            assert np.abs(np.asarray(got, np.float32).reshape(28, 28) - want).max() < 1e-5
    assert 3 <= refused < len(cases)


@pytest.mark.browser
def test_mouse_drawings_are_read_right_then_again_offline(page_use, test_artifacts_dir):
    print(f"\nmouse: {page_use.drawn}; offline: {page_use.offline_drawn}")
    assert len(page_use.drawn) == 3 and all(label == shown for label, shown in page_use.drawn)
    assert page_use.service_worker and page_use.offline_drawn == page_use.drawn[:1]
    assert page_use.outside_requests == []  # nothing but 127.0.0.1, ever
    assert (test_artifacts_dir / "web-mouse.png").is_file() and (test_artifacts_dir / "web-offline.png").is_file()


@pytest.mark.browser
def test_finger_drawings_on_a_phone_are_read_right_without_scrolling(playwright_and_browser, server, digits, test_artifacts_dir):
    playwright, browser = playwright_and_browser
    phone = playwright.devices["Pixel 7"]
    context = browser.new_context(**phone)
    try:
        page = context.new_page()
        web_proofs.open_app(page, server.url)
        assert page.evaluate("matchMedia('(pointer: coarse)').matches")  # a touch screen
        page.evaluate("""() => { window.pointerTypes = new Set();
            document.querySelector('#pad').addEventListener('pointerdown', (e) => window.pointerTypes.add(e.pointerType)); }""")
        page.locator("#pad").scroll_into_view_if_needed()
        scrolled = page.evaluate("window.scrollY")
        for label, strokes in digits:
            assert web_proofs.read_drawing(page, strokes, via="touch") == label
            assert page.evaluate("window.scrollY") == scrolled  # drawing never scrolls the page
        assert page.evaluate("Array.from(window.pointerTypes)") == ["touch"]
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits the phone's width
        page.screenshot(path=str(test_artifacts_dir / "web-touch.png"), full_page=True)
    finally:
        context.close()


@pytest.mark.browser
def test_tampered_model_is_refused_with_a_message(browser, server):
    page = browser.new_page()
    try:
        page.goto(server.url + "tampered/")
        page.wait_for_function("() => document.querySelector('#status').classList.contains('error')", timeout=30_000)
        status = page.locator("#status").inner_text()
        assert "could not be loaded" in status and "sha256" in status and "refusing to load it" in status
        assert page.locator("#status").get_attribute("role") == "alert"
        page.evaluate("window.mnistEdge.sketch.setStrokes([{points: [[140, 40], [140, 240]]}])")
        assert page.evaluate("window.mnistEdge.predict()") is None
        assert page.locator("#message").inner_text() == "No model is loaded."
    finally:
        page.close()


@pytest.mark.browser
def test_empty_or_unreadable_drawings_get_a_message_and_the_model_menu_switches(browser, server):
    page = browser.new_page()
    try:
        web_proofs.open_app(page, server.url)
        page.click("#clear")
        page.wait_for_function("() => document.querySelector('#message').textContent.includes('first')")
        assert page.locator("#message").inner_text() == "Draw a digit in the box first."
        assert page.locator("#top li").count() == 0
        page.evaluate("window.mnistEdge.sketch.setStrokes([{width: 20, points: [[20, 140], [260, 150]]}])")
        assert page.evaluate("window.mnistEdge.predict()") is None
        assert "wider than tall" in page.locator("#message").inner_text()
        # Two precisions bundled: the menu offers both; choosing one loads that file.
        options = page.locator("#model option")
        assert options.count() == 2 and page.locator("#model").is_visible()
        page.select_option("#model", "mlp-fp32")
        page.wait_for_function("() => window.mnistEdge.state.model?.artifact.file === 'model.onnx'", timeout=30_000)
        page.evaluate("window.mnistEdge.sketch.setStrokes([{width: 20, points: [[140, 40], [140, 240]]}])")
        result = page.evaluate("window.mnistEdge.predict()")
        assert len(result["top"]) == 3 and abs(sum(result["probabilities"]) - 1) < 1e-4
        assert page.locator("#top li").count() == 3 and "ms" in page.locator("#timing").inner_text()
        assert page.evaluate("document.querySelector('#seen').width") == 28
    finally:
        page.close()


@pytest.mark.browser
def test_collected_samples_download_as_a_zip_that_evaluate_reads(browser, server, digits, mlp_export, tmp_path):
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        web_proofs.open_app(page, server.url)
        assert page.locator("#labels button").first.is_disabled()  # nothing to label before a prediction
        saved = []
        for label, strokes in digits + digits[:1]:  # the first digit twice: its counter reaches 2
            page.evaluate("strokes => window.mnistEdge.sketch.setStrokes(strokes)", strokes)
            page.evaluate("window.mnistEdge.predict()")
            page.locator("#labels button", has_text=label).first.click()
            saved.append(label)
            page.wait_for_function(f"() => document.querySelector('#message').textContent.startsWith('Saved as \"{label}\"')")
        first = digits[0][0]
        assert f"{first}: 2" in page.locator("#counts").inner_text()
        with page.expect_download() as download:
            page.click("#download")
        archive = tmp_path / "samples.zip"
        download.value.save_as(archive)
    finally:
        context.close()
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None  # every CRC right
        names = sorted(z.namelist())
        folder = tmp_path / "my-digits"
        z.extractall(folder)
    expected = sorted({f"{label}/{n}.png" for label in saved for n in range(1, saved.count(label) + 1)})
    assert names == expected
    with Image.open(folder / names[0]) as image:
        assert image.mode == "RGBA" and image.size == (280, 280) and image.getchannel("A").getextrema() == (0, 255)
    out = tmp_path / "evaluation"
    assert main(["evaluate", str(mlp_export), "--data", str(folder), "--out", str(out)]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    print(json.dumps({k: evaluation[k] for k in evaluation if k in ("accuracy", "samples", "images")}, default=str))
    assert (out / "evaluation.md").is_file()


# --- the report the build writes ----------------------------------------------------------------


@pytest.mark.browser
def test_parity_report_and_compatibility_table_come_from_the_proofs(model_runs, preprocessing, page_use, site, mlp_export, tmp_path):
    report = web_proofs.ProofReport(
        chromium="test", versions={"onnxruntime-web": "1.30.0"}, images=10_000,
        runs=model_runs, preprocessing=preprocessing, page_use=page_use,
    )
    assert report.failures() == []
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    web_proofs.write_report(copy, report, [read_manifest(mlp_export)])
    web_proofs.record_in_manifests(copy, model_runs, report.versions, "test")
    text = (copy / "parity.md").read_text()
    int8 = next(r for r in model_runs if r.file == "model.int8.onnx")
    assert f"| mlp | `model.int8.onnx` | onnxruntime-web | onnxruntime | 100.00% | 0 | {int8.proof.max_abs_diff:.2g} |" in text
    assert f"| {preprocessing.compared} | " in text and f"{preprocessing.same_prediction:.2%}" in text
    table = text.split("## Compatibility", 1)[1]
    assert table.count("| `model") == len(read_manifest(mlp_export).artifacts)  # every artifact of the export
    assert "cannot run: " in table and "INT8" in table
    assert "✓ 100.00%" in table and "(vs keras)" in table and "(vs onnxruntime)" in table and "(vs litert)" in table
    manifest = read_manifest(copy / "models" / "mlp")
    engines = [[p.engine for p in a.proofs] for a in manifest.artifacts]
    assert engines == [["onnxruntime", "onnxruntime-web"], ["onnxruntime", "onnxruntime-web"]]
    assert manifest.artifacts[0].proofs[1] == int8.proof and manifest.libraries["chromium"] == "test"
    # A failing proof is reported as such, never as a pass.
    broken = dataclasses.replace(int8, proof=dataclasses.replace(int8.proof, passed=False, failure="argmax agreement 99.00%"))
    failing = dataclasses.replace(report, runs=[broken])
    assert failing.failures() == ["mlp/model.int8.onnx in onnxruntime-web: argmax agreement 99.00%"]
    assert "FAILED: argmax agreement 99.00%" in web_proofs.parity_markdown(failing, [read_manifest(mlp_export)])


def test_leftovers_of_a_killed_build_go_but_a_running_builds_stay(tmp_path):
    """A build killed mid-way leaves .site.building-PID / .site.old-PID; the next build removes
    them, but never the staging folder of a build still running in another process."""
    dead, alive = "999999999", str(os.getpid())
    for name in (f".site.building-{dead}", f".site.old-{dead}", f".site.building-{alive}", f".site.old-{alive}", ".site.notes-1"):
        (tmp_path / name).mkdir()
    web_build.clean_leftovers(tmp_path / "site")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".site.building-{alive}", ".site.notes-1", f".site.old-{alive}"]


# --- hostile input and what the site publishes ----------------------------------------------------


def _raw_request(server, request: bytes) -> bytes:
    """Send `request` as it is on a fresh connection and return what came back (up to 4 KB)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(request)
        return connection.recv(4096)


def test_a_nul_in_the_path_is_a_400_and_a_client_hanging_up_is_no_traceback(server, capfd):
    import socket
    import struct
    import time
    from urllib.parse import urlsplit

    for path in (b"/%00", b"/js/%00page.js", b"/proof/%00"):
        answer = _raw_request(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert _get(server.url + "index.html")[0] == 200  # and it keeps serving
    # A browser closing the tab mid-download: the connection is reset while the server writes.
    url = urlsplit(server.url)
    for _ in range(3):
        with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            connection.sendall(b"GET /vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm HTTP/1.1\r\nHost: x\r\n\r\n")
            connection.recv(1024)
    time.sleep(1.0)  # the server's threads meet the reset
    assert _get(server.url + "index.html")[0] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


def _renamed_export(mlp_export: Path, folder: Path, name: str) -> Path:
    """A copy of the export whose manifest says the model is called `name`."""
    copy = folder / "export"
    shutil.copytree(mlp_export, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["model"]["name"] = name
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


def test_a_model_name_is_never_a_path(mlp_export, node_modules, tmp_path):
    escaped = tmp_path / "escaped"
    evil = _renamed_export(mlp_export, tmp_path / "evil", "../" * 16 + str(escaped).lstrip("/"))
    result = _cli("web", str(evil), "--out", str(tmp_path / "site"), "--proofs", "off", env=dict(os.environ))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "is not a plain name" in result.stderr, result.stderr
    assert not escaped.exists() and not (tmp_path / "site").exists()
    # Two exports under one root with one name: one line, not a FileExistsError.
    root = tmp_path / "artifacts"
    _renamed_export(mlp_export, root / "a", "digits")
    _renamed_export(mlp_export, root / "b", "digits")
    with pytest.raises(web_build.WebBuildError, match="two exports are named 'digits'"):
        web_build.build_site(root, tmp_path / "site2", proofs="off", log=lambda line: None)
    assert not (tmp_path / "site2").exists()


def test_published_manifests_hold_no_build_machine_details_and_the_site_sends_a_strict_csp(site, server, mnist_dir):
    from mnist_edge.demo.web_server import SITE_CSP

    for file in site.rglob("*"):
        if file.is_file() and file.suffix in (".json", ".md", ".js", ".html"):
            text = file.read_text(errors="replace")
            assert str(mnist_dir) not in text and str(Path.home()) not in text, file
    for manifest in site.glob("models/*/manifest.json"):
        data = json.loads(manifest.read_text())
        assert data["platform"] == {} and "/" not in data["test_set"]["source"], data["test_set"]
    for path in ("", "index.html", "js/page.js", "nothing-here"):
        assert _get(server.url + path)[1]["Content-Security-Policy"] == SITE_CSP, path
    assert "'unsafe-inline'" not in SITE_CSP and "'unsafe-eval'" not in SITE_CSP
    meta = (site / "index.html").read_text().split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert meta == SITE_CSP.replace("; frame-ancestors 'none'", "")  # the same policy for static hosts


CSP_WATCH = """window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"""


@pytest.mark.browser
def test_the_app_works_under_its_content_security_policy(browser, server, digits):
    page = browser.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.add_init_script(CSP_WATCH)
        web_proofs.open_app(page, server.url)
        label, strokes = digits[0]
        assert web_proofs.read_drawing(page, strokes) == label
        page.locator("#labels button", has_text=label).first.click()  # a sample kept: images, storage, zip
        page.wait_for_function("() => document.querySelector('#message').textContent.startsWith('Saved as')")
        assert page.evaluate("window.cspViolations") == []
        assert not [e for e in errors if "Content Security Policy" in e], errors
        # And the policy is in force: an inline script is refused.
        page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.append(s); }")
        assert page.evaluate("window.inlineRan === undefined")
        violations = page.evaluate("window.cspViolations")  # once per policy: the header's and the meta's
        assert violations and all(v.startswith("script-src") for v in violations), violations
    finally:
        page.close()


def test_an_unchanged_site_keeps_its_proofs_and_a_changed_one_is_proven_again(mlp_export, node_modules, tmp_path):
    """The proofs are cached by content: the build's Chromium step (counted here; the proofs
    themselves are tested above) runs once for two identical builds, and again when the site changes."""
    calls, logs = [], []

    def run(site, models, node_modules, dataset, screenshots=None):
        calls.append(site)
        return web_proofs.ProofReport(chromium="counted", images=len(dataset.test))

    steps = dataclasses.replace(web_proofs.STEPS, run=run)
    out = tmp_path / "site"
    web_build.build_site(mlp_export, out, proofs="on", steps=steps, log=logs.append)
    first_report = (out / "parity.md").read_text()
    again = web_build.build_site(mlp_export, out, proofs="on", steps=steps, log=logs.append)
    assert len(calls) == 1 and again.report.failures() == [] and again.report.chromium == "counted"
    assert any("unchanged since its proofs passed" in line for line in logs), logs
    assert (out / "parity.md").read_text() == first_report and (out / "sw.js").is_file()
    web_build.build_site(mlp_export, out, precisions=("int8", "fp32"), proofs="on", steps=steps, log=logs.append)
    assert len(calls) == 2  # another site: proven again


# --- number mode ---------------------------------------------------------------------------------

FIRST_WEB_MODEL = "model.int8.onnx"  # the file the site's first model entry runs (PRECISIONS[0])
DRAWN_NUMBERS = ("2026", "314", "90817")


@pytest.fixture(scope="module")
def first_model_predictor(mlp_export):
    """The Python runtime on the very model file the page runs first."""
    return runtime.load(mlp_export, file=FIRST_WEB_MODEL)


def test_number_mode_reads_300_generated_fields_as_python_does(browser, server, first_model_predictor, mnist):
    """js/number.js in the page (the hook the Number mode reads with) against predictor.read on
    the same grey pixels of 300 generated fields: the same text, boxes within 1 px."""
    page = browser.new_page()
    try:
        web_proofs.open_app(page, server.url)
        page.click("#mode-number")
        parity = web_number.prove_number_parity(page, first_model_predictor, mnist.test.images, mnist.test.labels, count=300)
    finally:
        page.close()
    assert parity.fields == 300 and parity.read_both >= 270, parity
    assert parity.mismatches == [], parity.mismatches[:5]
    assert parity.same_text == parity.boxes_within == parity.read_both and parity.passed


def test_numbers_drawn_by_finger_and_mouse_on_the_wide_pad_are_read_back_then_again_offline(
    browser, server, first_model_predictor, mnist, test_artifacts_dir
):
    strokes = {
        text: web_number.number_strokes(first_model_predictor, mnist.test.images, mnist.test.labels, text) for text in DRAWN_NUMBERS
    }
    context = browser.new_context(viewport={"width": 900, "height": 1000}, has_touch=True)
    outside = web_proofs.only_this_host(context, server.url)
    try:
        page = context.new_page()
        web_proofs.open_app(page, server.url)
        page.click("#mode-number")
        assert page.locator("#pad").is_hidden() and page.locator("#numpad").is_visible()
        assert web_number.read_drawn_number(page, strokes["314"], via="touch") == "314"
        assert page.evaluate("window.scrollY") == 0  # a finger drawing does not scroll the page
        for text in DRAWN_NUMBERS:
            assert web_number.read_drawn_number(page, strokes[text]) == text
            assert page.locator("#num-text").inner_text().startswith(f"{text} · ")
            assert page.locator("#num-digits li canvas").count() == len(text)
            assert page.evaluate("window.mnistEdge.number.state.last.digits.length") == len(text)
        page.screenshot(path=str(test_artifacts_dir / "web-number.png"), full_page=True)
        # A ruled line alone is no number: a message, and the page keeps reading.
        line = [{"width": 20, "points": [[40, 200], [800, 200]]}]
        assert web_number.read_drawn_number(page, line) == "No digit found: the image holds only lines."
        assert web_proofs.wait_for_service_worker(page)
        context.set_offline(True)
        try:
            web_proofs.open_app(page, server.url)
            page.click("#mode-number")
            assert web_number.read_drawn_number(page, strokes["2026"]) == "2026"
            page.screenshot(path=str(test_artifacts_dir / "web-number-offline.png"), full_page=True)
        finally:
            context.set_offline(False)
        assert outside == []
    finally:
        context.close()


def test_the_benchmarks_page_timing_reads_a_field_as_python_does_with_each_model(browser, server, mlp_export, mnist):
    """bench/read.py's web figures (web_number.time_page_reading): the page's timed reading of a
    field, with the model switched through the page's menu, is Python's reading of the same pixels
    with the same file."""
    field = web_number.field_greys(mnist.test.images, mnist.test.labels, 1, seed=7)[0][0]
    page = browser.new_page()
    try:
        web_proofs.open_app(page, server.url)
        timings = {model: web_number.time_page_reading(page, field, model, runs=3) for model in ("mlp-fp32", "mlp-int8")}
    finally:
        page.close()
    for model, file in (("mlp-fp32", "model.onnx"), ("mlp-int8", FIRST_WEB_MODEL)):
        timing = timings[model]
        assert timing.model == model and timing.error is None, timing
        assert timing.text == runtime.load(mlp_export, file=file).read(field).text
        assert len(timing.ms) == len(timing.steps["segment"]) == len(timing.steps["inference"]) == 3
        assert timing.cpu_ms > 0 and timing.median_ms > 0
