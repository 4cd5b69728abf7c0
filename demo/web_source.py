"""What the web build and its proofs share: where the app's sources are, the npm package versions,
and the manifests of the models bundled (each once)."""

from __future__ import annotations

import json
from pathlib import Path

SOURCE = Path(__file__).with_name("web")  # the app's sources, package data of mnist_edge.demo


def package_version(node_modules: Path, package: str) -> str:
    return json.loads((node_modules / package / "package.json").read_text(encoding="utf-8"))["version"]


def manifests_of(models: list) -> list:
    """Each bundled model's manifest once (a model may be bundled at several precisions)."""
    return list({m.name: m.manifest for m in models}.values())
