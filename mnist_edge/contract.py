"""The contract's generated files, checked in and kept current by tests/test_contract.py: the
manifest's JSON Schema (next to mnist_edge/manifest.py, and the web page's copy), the page's
table of browser engines with its schema (from the dataclasses and the registry), and the page's
copy of the preprocessing recipe's constants (runtime/preprocess_spec.json).

    python -m mnist_edge.contract      # rewrite them after changing the manifest or the registry
"""

from __future__ import annotations

from pathlib import Path

from mnist_edge import formats, manifest, site
from mnist_edge.schema import dump


def generated_files() -> dict[Path, str]:
    """Every checked-in file generated from the contract, with the text it must hold."""
    root = Path(__file__).resolve().parent
    web_js = root.parent / "demo" / "web" / "js"
    manifest_schema = dump(manifest.json_schema())
    spec = root.parent / "runtime" / "preprocess_spec.json"
    files = {root / manifest.SCHEMA_FILE: manifest_schema}
    if web_js.is_dir():  # a source checkout: the page's copies
        files[web_js / "contract" / manifest.SCHEMA_FILE] = manifest_schema
        files[web_js / "contract" / spec.name] = spec.read_text(encoding="utf-8")  # the recipe's constants
        files[web_js / "contract" / "models.schema.json"] = dump(site.json_schema())
        files[web_js / "engines" / "engines.json"] = dump(formats.browser_table())
        files[web_js / "engines" / "engines.schema.json"] = dump(formats.browser_table_schema())
    return files


def main() -> None:
    for path, text in generated_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
