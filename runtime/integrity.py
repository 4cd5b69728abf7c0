"""Read an artifact's bytes only after they match the manifest: a regular file of the stated size
whose sha256 is the manifest's. The same bytes are then handed to the engine, so what was
checked is what runs."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from mnist_edge.manifest import Artifact, Manifest
from mnist_edge.runtime.errors import IntegrityError


def read_verified(manifest: Manifest, artifact: Artifact) -> bytes:
    """The artifact's bytes, checked against the manifest's size and sha256; its companion files
    (a C header next to its source) are checked the same way.

    The size is compared before anything is read (a symlink to /dev/zero or a huge sparse file
    must not exhaust memory), and at most that many bytes plus one are read."""
    content = read_checked(manifest.path_of(artifact), artifact.bytes, artifact.sha256)
    for companion in artifact.companions:
        read_checked(manifest.root / companion.file, companion.bytes, companion.sha256)
    return content


def read_checked(path: Path, size: int, sha256: str) -> bytes:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise IntegrityError(f"{path}: not a regular file; refusing to load it")
        if info.st_size != size:
            raise IntegrityError(
                f"{path}: size {info.st_size} bytes differs from the manifest's {size}; "
                "the file was modified or truncated, refusing to load it"
            )
        with open(path, "rb") as file:
            content = file.read(size + 1)
    except FileNotFoundError as exc:
        raise IntegrityError(f"{path}: artifact listed in the manifest is missing") from exc
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(content) != size:  # changed between stat and read
        raise IntegrityError(f"{path}: read {len(content)} bytes, the manifest says {size}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        raise IntegrityError(
            f"{path}: sha256 {digest[:16]}… does not match the manifest's {sha256[:16]}…; "
            "the file was modified, refusing to load it"
        )
    return content
