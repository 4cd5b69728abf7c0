"""models.json, the web app's index: what the page offers (one entry per bundled model and
precision) and where each browser engine's files are. Written by `mnist-edge web`
(demo/web_build.py), read by demo/web/js/page.js, which validates it against the JSON Schema
generated from these dataclasses (demo/web/js/contract/models.schema.json)."""

from __future__ import annotations

from dataclasses import dataclass

INDEX_NAME = "models.json"


@dataclass(frozen=True)
class SiteEngine:
    """A bundled browser engine: its label, npm version, and entry module in the site."""

    label: str
    version: str
    module: str  # relative to the site, e.g. vendor/onnxruntime-web/ort.wasm.min.mjs


@dataclass(frozen=True)
class SiteModel:
    """One entry of the page's model menu: one artifact of one model."""

    id: str
    name: str
    title: str
    precision: str
    engine: str  # a key of SiteIndex.engines
    manifest: str  # the model's manifest.json, relative to the site
    file: str  # the artifact, relative to its manifest
    bytes: int
    test_accuracy: float


@dataclass(frozen=True)
class SiteIndex:
    engines: dict[str, SiteEngine]
    models: tuple[SiteModel, ...]


def json_schema() -> dict:
    """The JSON Schema of models.json (checked in as demo/web/js/contract/models.schema.json)."""
    from mnist_edge.schema import json_schema as schema_of

    return schema_of(SiteIndex, title="mnist-edge web app index (models.json)")
