"""The proof server's layout: the site at /, and under /proof/ the harness page, the npm
packages, the exports and the test data (outside the site's CSP: the harness has an inline import map)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from mnist_edge import formats
from mnist_edge.manifest import Manifest

from .web_source import SOURCE


PROOF_PREFIXES = ("/proof/",)  # the harness page (an inline import map): outside the site's CSP


def proof_mounts(site: Path, manifests: list[Manifest], node_modules: Path, work: Path) -> dict[str, Path]:
    """The site at /, and under /proof/ the harness page, the npm packages, the exports and the data."""
    harness = work / "harness"
    harness.mkdir(parents=True, exist_ok=True)
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



def write_test_images(images: np.ndarray, folder: Path) -> str:
    """The test inputs as one float32 file the harness fetches; returns its name."""
    name = "test-images.f32"
    (folder / name).write_bytes(np.ascontiguousarray(images, dtype="<f4").tobytes())
    return name
