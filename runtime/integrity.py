"""Read an artifact's bytes only after they match the manifest: a regular file of the stated size
whose sha256 is the manifest's. The same bytes are then handed to the engine, so what was
checked is what runs."""

from __future__ import annotations

import hashlib
import os
import stat

from mnist_edge.manifest import Artifact, Manifest
from mnist_edge.runtime.errors import IntegrityError


def read_verified(manifest: Manifest, artifact: Artifact) -> bytes:
    """The artifact's bytes, checked against the manifest's size and sha256.

    The size is compared before anything is read (a symlink to /dev/zero or a huge sparse file
    must not exhaust memory), and at most that many bytes plus one are read."""
    path = manifest.path_of(artifact)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise IntegrityError(f"{path}: not a regular file; refusing to load it")
        if info.st_size != artifact.bytes:
            raise IntegrityError(
                f"{path}: size {info.st_size} bytes differs from the manifest's {artifact.bytes}; "
                "the file was modified or truncated, refusing to load it"
            )
        with open(path, "rb") as file:
            content = file.read(artifact.bytes + 1)
    except FileNotFoundError as exc:
        raise IntegrityError(f"{path}: artifact listed in the manifest is missing") from exc
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(content) != artifact.bytes:  # changed between stat and read
        raise IntegrityError(f"{path}: read {len(content)} bytes, the manifest says {artifact.bytes}")
    digest = hashlib.sha256(content).hexdigest()
    if digest != artifact.sha256:
        raise IntegrityError(
            f"{path}: sha256 {digest[:16]}… does not match the manifest's {artifact.sha256[:16]}…; "
            "the file was modified, refusing to load it"
        )
    return content
