"""Write the fixture tests/js/signature.test.mjs checks: a small export folder signed in Python by
model-signing (as `mnist-edge sign` does), the owner's public key, and the same folder signed by a
stranger. `python tests/js/make_signature_fixture.py tests/js/fixture` rewrites the committed copy;
tests/test_signing.py makes a fresh one for every run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MANIFEST = {
    "schema_version": "2.0",
    "created": "2026-12-01T10:00:00+00:00",
    "model": {"name": "mlp"},
    "input": {"name": "image", "shape": [None, 28, 28], "dtype": "float32", "range": [0.0, 1.0]},
    "output": {"name": "probabilities", "shape": [None, 10], "dtype": "float32"},
    "class_names": [str(i) for i in range(10)],
    "artifacts": [{"file": "model.onnx", "bytes": 256}],
}


def make_fixture(out: Path) -> Path:
    from mnist_edge.signature import SIGNATURE_NAME, generate_key_pair, sign_export

    out.mkdir(parents=True, exist_ok=True)
    keys = out / "keys"  # private keys stay out of the committed fixture
    keys.mkdir(exist_ok=True)
    for who in ("owner", "stranger"):
        for suffix in (".pem", ".pub.pem"):
            (keys / f"{who}{suffix}").unlink(missing_ok=True)
        generate_key_pair(keys / f"{who}.pem", keys / f"{who}.pub.pem")
    export = out / "export"
    export.mkdir(exist_ok=True)
    (export / "manifest.json").write_text(json.dumps(MANIFEST, indent=2) + "\n")
    (export / "model.onnx").write_bytes(os.urandom(256))
    (export / "parity.md").write_text("# parity\n")
    sign_export(export, keys / "stranger.pem")
    (out / "stranger.sig").write_bytes((export / SIGNATURE_NAME).read_bytes())
    sign_export(export, keys / "owner.pem")
    (out / "owner.pub.pem").write_bytes((keys / "owner.pub.pem").read_bytes())
    for private in keys.glob("*.pem"):
        private.unlink()
    keys.rmdir()
    return out


if __name__ == "__main__":
    print(make_fixture(Path(sys.argv[1])))
