"""One contract, two languages: the JSON Schema of manifest.json and the page's engine table are
generated from the Python dataclasses and registry, checked in, and kept current here; the web
page validates a manifest with that schema on load and refuses one it cannot use (real Chromium).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mnist_edge import contract, formats, manifest
from mnist_edge.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_checked_in_schemas_and_engine_table_are_current():
    stale = [
        str(path.relative_to(ROOT))
        for path, text in contract.generated_files().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"run `python -m mnist_edge.contract` to regenerate: {stale}"


def test_the_schema_follows_the_dataclasses(monkeypatch):
    generated = manifest.json_schema()
    assert generated["properties"]["schema_version"]["pattern"] == r"^2\.[0-9]+$"
    artifact = generated["properties"]["artifacts"]["items"]
    assert set(artifact["required"]) >= {"file", "format", "precision", "engine", "bytes", "sha256", "proofs"}
    assert artifact["properties"]["batch"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert "root" not in generated["properties"] and "skipped" not in generated["properties"]
    # A field added to a dataclass shows up in the schema (and so in the stale check above).
    import dataclasses

    widened = dataclasses.make_dataclass("ModelInfo", [("extra_field", int, dataclasses.field(default=0))], bases=(manifest.ModelInfo,), frozen=True)
    monkeypatch.setattr(manifest, "ModelInfo", widened)
    monkeypatch.setitem(manifest.Manifest.__annotations__, "model", widened)
    assert "extra_field" in manifest.json_schema()["properties"]["model"]["properties"]


def test_the_engine_table_lists_every_browser_engine_with_its_page_module():
    table = formats.browser_table()
    assert set(table["engines"]) == set(formats.BROWSER_ENGINES)
    web_js = ROOT / "demo" / "web" / "js"
    for name, entry in table["engines"].items():
        assert (web_js / entry["page_module"]).is_file(), name


# --- the page refuses a manifest it cannot use -----------------------------------------------------


def _break(site: Path, folder: str, change) -> Path:
    """A copy of the site whose first model's manifest went through `change`."""
    copy = site.parent / folder
    shutil.copytree(site, copy)
    index = json.loads((copy / "models.json").read_text())
    path = copy / index["models"][0]["manifest"]
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return copy


@pytest.fixture(scope="module")
def sites(mlp_export, tmp_path_factory):
    from mnist_edge.demo import web_build

    out = tmp_path_factory.mktemp("contract") / "site"
    web_build.build_site(mlp_export, out, precisions=("int8",), proofs="off", log=lambda line: None)
    newer = _break(out, "newer", lambda m: m.update(schema_version="3.0"))
    wrong = _break(out, "wrong", lambda m: m["artifacts"][0].update(bytes="many"))
    bad_index = out.parent / "bad-index"
    shutil.copytree(out, bad_index)
    index = json.loads((bad_index / "models.json").read_text())
    del index["models"][0]["file"]
    (bad_index / "models.json").write_text(json.dumps(index))
    return {"/": out, "/newer/": newer, "/wrong/": wrong, "/bad-index/": bad_index}


def _error_status(browser, url: str) -> str:
    """The page's status line once it shows an error (the untouched site loading is test_web's)."""
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for_function("() => document.querySelector('#status').classList.contains('error')", timeout=30_000)
        return page.locator("#status").inner_text()
    finally:
        page.close()


def test_the_built_models_json_follows_its_dataclasses(sites):
    from mnist_edge.manifest import ManifestError, _from_plain
    from mnist_edge.site import INDEX_NAME, SiteIndex

    data = json.loads((sites["/"] / INDEX_NAME).read_text())
    index = _from_plain(SiteIndex, data, INDEX_NAME)
    assert index.models and all(m.engine in index.engines for m in index.models)
    data["models"][0]["bytes"] = "many"
    with pytest.raises(ManifestError, match=r"models\[0\] bytes: expected an integer"):
        _from_plain(SiteIndex, data, INDEX_NAME)


@pytest.mark.browser
def test_page_refuses_a_newer_major_version_and_a_wrong_field_type(sites, mlp_export):
    from playwright.sync_api import sync_playwright

    from mnist_edge.demo import web_proofs
    from mnist_edge.demo.web_server import SiteServer

    assert read_manifest(mlp_export).schema_version.startswith("2.")
    with SiteServer(sites) as server, sync_playwright() as playwright:
        browser = web_proofs.launch(playwright)
        try:
            newer = _error_status(browser, server.url + "newer/")
            assert "could not be loaded" in newer and 'schema_version "3.0" is not supported' in newer
            assert "reads 2.x" in newer
            wrong = _error_status(browser, server.url + "wrong/")
            assert "does not match the manifest schema" in wrong
            assert "artifacts[0].bytes: expected integer, found string" in wrong
            bad_index = _error_status(browser, server.url + "bad-index/")
            assert "Cannot start: models.json does not match its schema: models[0].file: missing" in bad_index
        finally:
            browser.close()
