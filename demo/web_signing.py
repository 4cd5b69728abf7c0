"""Signed exports on the web app (docs/security.md): the build side of demo/web/js/signature.js.

With a public key, `mnist-edge web` bundles only exports signed by its owner (checked here, in
Python, first), ships each export's model.sig and its manifest.json as signed
(signed-manifest.json) next to the site's own manifest, and embeds the key in js/trust.js. The
page then checks the signature and the hashes with WebCrypto before any session is created.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mnist_edge.errors import MnistEdgeError
from mnist_edge.files import atomic_write_bytes, atomic_write_text
from mnist_edge.manifest import MANIFEST_NAME
from mnist_edge.signature import SIGNATURE_NAME, verify_signature

SIGNED_MANIFEST = "signed-manifest.json"  # demo/web/js/signature.js reads it under this name
TRUST_FILE = Path("js") / "trust.js"
TRUST_LINE = re.compile(r"^export const PUBLIC_KEY_PEM = .*$", re.MULTILINE)


def public_key_pem(public_key: Path) -> str:
    """The key as model-signing fingerprints it (SubjectPublicKeyInfo PEM, re-serialized)."""
    from cryptography.hazmat.primitives import serialization

    from mnist_edge.signature import check_public_key

    check_public_key(public_key)
    key = serialization.load_pem_public_key(public_key.read_bytes())
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def add_signatures(staging: Path, exports: list[tuple[Path, str]], public_key: Path | None) -> None:
    """For each (export folder, site folder): refuse it unless signed by `public_key`, then ship
    its signature and signed manifest; embed the key in the page. Nothing to do without a key."""
    if public_key is None:
        return
    for export_dir, folder in exports:
        signed = verify_signature(export_dir, public_key=public_key)  # SignatureError: the build stops
        manifest_bytes = (export_dir / MANIFEST_NAME).read_bytes()
        signed.check(MANIFEST_NAME, manifest_bytes)
        atomic_write_bytes(staging / folder / SIGNED_MANIFEST, manifest_bytes)
        atomic_write_bytes(staging / folder / SIGNATURE_NAME, (export_dir / SIGNATURE_NAME).read_bytes())
    trust = staging / TRUST_FILE
    line = f"export const PUBLIC_KEY_PEM = {json.dumps(public_key_pem(public_key))}; // written by `mnist-edge web`"
    text, count = TRUST_LINE.subn(lambda _: line, trust.read_text(encoding="utf-8"))
    if count != 1:
        raise MnistEdgeError(f"{trust}: expected one `export const PUBLIC_KEY_PEM = ...` line to fill in")
    atomic_write_text(trust, text)
