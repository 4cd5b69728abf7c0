"""The web app's number reading (demo/web/js/number.js) under `node --test`, against golden
readings the Python recipe writes just now (tests/js/make_number_fixture.py): every test in
tests/js/number.test.mjs runs here; the other JS suites run in test_web_node.py and test_signing.py. The Chromium proofs of the Number
mode are in tests/test_web.py, but those of the number reader (an export with a sequence model,
js/sequence.js): its node goldens and its site, read in Chromium against Python, are here."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_edge import runtime
from mnist_edge.demo import web_build, web_number, web_proofs
from mnist_edge.demo.web_server import SiteServer
from mnist_edge.manifest import read_manifest

JS_TESTS = Path(__file__).parent / "js"


def test_node_tests_pass_with_number_js_equal_to_the_python_recipe_on_30_fields(mlp_export, mnist, tmp_path):
    sys.path.insert(0, str(JS_TESTS))
    from make_number_fixture import FIELDS, make_fixture

    fixture = make_fixture(tmp_path / "number.json.gz", runtime.load(mlp_export), mnist.test.images, mnist.test.labels)
    golden = json.loads(gzip.decompress(fixture.read_bytes()))
    # The fields exercise the recipe's hard parts: cuts through touching digits, lines removed.
    assert len(golden["fields"]) == FIELDS
    assert sum(any(part[6] > 0 for part in f.get("parts", [])) for f in golden["fields"]) >= 3
    assert sum(bool(f.get("dividers")) for f in golden["fields"]) >= 2  # combs: the one-digit-per-cell term
    assert sum("reading" in f for f in golden["fields"]) >= FIELDS - 2
    result = subprocess.run(
        # The other suites in tests/js need their own goldens: test_web_node.py and test_signing.py run them.
        ["node", "--test", str(JS_TESTS / "number.test.mjs")], capture_output=True, text=True, timeout=300,
        env={**os.environ, "NUMBER_FIXTURE": str(fixture)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed_fields = [line for line in result.stdout.splitlines() if line.startswith("ok ") and " - field " in line]
    assert "# fail 0" in result.stdout and len(passed_fields) == FIELDS, result.stdout[-1500:]


# --- the number reader (an export with a sequence model: runtime/sequence.py, js/sequence.js) ------


def test_node_tests_pass_with_sequence_js_equal_to_the_python_reader(reader_export, mnist, tmp_path):
    """tests/js/sequence.test.mjs on goldens the Python runtime writes now with the small reader:
    each field read "auto" and "sequence" (and with the reader's probabilities changed, for every
    path of "auto"), the line images, the readings; and Pillow's bilinear resize."""
    sys.path.insert(0, str(JS_TESTS))
    from make_number_fixture import SEQUENCE_FIELDS, make_sequence_fixture

    fixture = make_sequence_fixture(tmp_path / "sequence.json.gz", runtime.load(reader_export), mnist.test.images, mnist.test.labels)
    golden = json.loads(gzip.decompress(fixture.read_bytes()))
    assert len(golden["fields"]) == SEQUENCE_FIELDS
    assert sum(f["sequence"].get("reading", {}).get("reader") == "sequence" for f in golden["fields"]) >= SEQUENCE_FIELDS // 2
    result = subprocess.run(
        ["node", "--test", str(JS_TESTS / "sequence.test.mjs")], capture_output=True, text=True, timeout=300,
        env={**os.environ, "SEQUENCE_FIXTURE": str(fixture)},
    )
    print("\n".join(line for line in result.stdout.splitlines() if "goldens:" in line or "bilinear:" in line))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    readings = [line for line in result.stdout.splitlines() if line.startswith("ok ") and " - line " in line]
    assert "# fail 0" in result.stdout and len(readings) >= 3 * SEQUENCE_FIELDS, result.stdout[-1500:]


READER_FIELDS = 300  # fields read "auto" in Chromium


@pytest.fixture(scope="module")
def reader_site(reader_export, tmp_path_factory) -> Path:
    """The site of the export with a number reader (its fp32 ONNX model), built without proofs."""
    out = tmp_path_factory.mktemp("web-reader") / "site"
    build = web_build.build_site(reader_export, out, precisions=("fp32",), proofs="off", log=lambda line: None)
    assert build.report.not_run == "skipped with --proofs off"
    return out


def test_the_site_ships_the_number_reader_checked_and_kept_for_offline_use(reader_site, reader_export, mnist_dir):
    manifest = read_manifest(reader_site / "models" / "mlp")
    exported = read_manifest(reader_export)
    assert manifest.reader.proof.passed and str(mnist_dir) in exported.reader.proof.source
    # The same reader, but for the local path of the test set its proof names (no build machine details).
    assert manifest.reader == dataclasses.replace(exported.reader, proof=dataclasses.replace(exported.reader.proof, source=manifest.reader.proof.source))
    assert str(mnist_dir) not in (reader_site / "models" / "mlp" / "manifest.json").read_text()
    assert manifest.reader.proof.source == f"mnist_edge.fields of {mnist_dir.name} test digits"
    shipped = reader_site / "models" / "mlp" / manifest.reader.file
    assert shipped.read_bytes() == (reader_export / exported.reader.file).read_bytes()
    sw = (reader_site / "sw.js").read_text()
    precache = json.loads(sw.split("const PRECACHE = ", 1)[1].split("; //", 1)[0])
    assert f"models/mlp/{manifest.reader.file}" in precache["files"] and "models/mlp/model.onnx" in precache["files"]


FILES_ON_PAGE = """async ({ field, reader }) => {
  const values = Uint8Array.from(atob(field.grey), (c) => c.charCodeAt(0));
  const data = new Uint8ClampedArray(4 * values.length).map((_, i) => (i % 4 === 3 ? 255 : values[i >> 2]));
  const reading = await window.mnistEdge.number.readPixels({ data, width: field.width, height: field.height }, { reader });
  return reading.error || reading.files;
}"""


def test_number_mode_reads_300_fields_with_the_number_reader_as_python_does(reader_site, reader_export, mnist, tmp_path):
    """The page's "auto" reading (js/number.js + js/sequence.js, the model and reader.onnx on
    onnxruntime-web) against predictor.read on the same grey pixels of 300 generated fields: the
    same text, the same reader, boxes within 1 px, and most read by the number reader (so "auto"
    proves the sequence reading too; the node goldens also read every field "sequence" alone); then
    offline, a number drawn with the mouse and a field read by the reader (kept by the service
    worker), the files that read it shown; then a changed reader.onnx is refused with a message."""
    from playwright.sync_api import sync_playwright

    predictor = runtime.load(reader_export)
    assert predictor.has_reader
    tampered = tmp_path / "tampered"
    shutil.copytree(reader_site, tampered)
    reader_file = tampered / "models" / "mlp" / predictor.manifest.reader.file
    data = bytearray(reader_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    reader_file.write_bytes(bytes(data))
    field = _field_payload(web_number.field_greys(mnist.test.images, mnist.test.labels, 1, seed=7)[0][0])
    strokes = web_number.number_strokes(predictor, mnist.test.images, mnist.test.labels, "42")
    with SiteServer({"/": reader_site, "/tampered/": tampered}) as server, sync_playwright() as playwright:
        browser = web_proofs.launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 900, "height": 1000})
            page = context.new_page()
            web_proofs.open_app(page, server.url)
            page.click("#mode-number")
            parity = web_number.prove_number_parity(page, predictor, mnist.test.images, mnist.test.labels, count=READER_FIELDS)
            # Which files read a field, as the Number mode shows them.
            files = [page.evaluate(FILES_ON_PAGE, {"field": field, "reader": mode}) for mode in ("sequence", "digits")]
            assert web_proofs.wait_for_service_worker(page)
            context.set_offline(True)
            web_proofs.open_app(page, server.url)
            page.click("#mode-number")
            offline_files = page.evaluate(FILES_ON_PAGE, {"field": field, "reader": "sequence"})
            drawn = web_number.read_drawn_number(page, strokes)
            last = page.evaluate("(({ last }) => last && { reader: last.reader, files: last.files })(window.mnistEdge.number.state)")
            shown = page.locator("#num-timing").inner_text()
            context.set_offline(False)
            context.close()
            page = browser.new_page()
            web_proofs.open_app(page, server.url + "tampered/")
            page.click("#mode-number")
            error = page.evaluate(
                "() => window.mnistEdge.number.readPixels({ data: new Uint8ClampedArray(4 * 64 * 32), width: 64, height: 32 }).then(() => null, (e) => e.message)"
            )
            page.close()
        finally:
            browser.close()
    print(f"auto: {parity.fields} fields, {parity.read_both} read by both, {parity.refused_both} refused by both, "
          f"{parity.by_sequence} read by the number reader, max box difference {parity.max_box_diff} px, "
          f"Python right on {parity.python_correct}, page median {parity.js_ms_median:.1f} ms")
    assert parity.fields == READER_FIELDS and parity.read_both >= 0.9 * READER_FIELDS, parity
    assert parity.mismatches == [], parity.mismatches[:5]
    assert parity.same_text == parity.boxes_within == parity.read_both and parity.passed and parity.max_box_diff <= 1
    # Not vacuous: the number reader read a good share of the fields, and the digit reader some.
    assert parity.by_sequence >= READER_FIELDS // 10 and parity.read_both - parity.by_sequence >= 1, parity.by_sequence
    assert files == ["model.onnx + reader.onnx", "model.onnx"] and offline_files == files[0], (files, offline_files)
    print(f"drawn 42 offline: read {drawn!r} by {last}; shown: {shown!r}")
    assert last is not None, drawn  # read offline: the reader was kept for offline use
    assert last["files"] == ("model.onnx + reader.onnx" if last["reader"] == "sequence" else "model.onnx")
    assert shown.startswith(f"read by {last['files']} · cut "), shown
    assert error is not None and "reader.onnx" in error and "refusing to load it" in error, error


def _field_payload(grey) -> dict:
    import base64

    return {"grey": base64.b64encode(grey.tobytes()).decode("ascii"), "width": int(grey.shape[1]), "height": int(grey.shape[0])}
