"""Download a file with a progress bar, verify its sha256, and write it atomically.

The last resort of the data loader: the public Keras `mnist.npz`. A failed, interrupted or
mismatched download leaves nothing behind, so the cache only ever holds verified files.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

from mnist_edge.errors import MnistEdgeError

MNIST_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# Lets a mirror (or a test's local server) stand in for the public address.
URL_ENV = "MNIST_EDGE_DOWNLOAD_URL"
CHUNK_BYTES = 1 << 16
TIMEOUT_SECONDS = 30.0


class DownloadError(MnistEdgeError):
    """The download failed, was cut short, or did not match its checksum."""

    exit_code = 2  # as mnist_edge.data.DataError: the data is missing


def _progress_printer(stream) -> Callable[[int, int | None], None]:
    """A one-line progress bar on `stream`, redrawn at most ten times a second."""
    last = [0.0]

    def show(done: int, total: int | None, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - last[0] < 0.1:
            return
        last[0] = now
        if total:
            frac = done / total
            bar = "#" * int(frac * 30)
            stream.write(f"\r  [{bar:<30}] {frac:6.1%}  {done / 1e6:6.1f}/{total / 1e6:.1f} MB")
        else:
            stream.write(f"\r  {done / 1e6:6.1f} MB")
        if final:
            stream.write("\n")
        stream.flush()

    return show


def _copy_hashing(response: BinaryIO, out: BinaryIO, total: int | None, show) -> tuple[int, str]:
    digest = hashlib.sha256()
    done = 0
    while True:
        chunk = response.read(CHUNK_BYTES)
        if not chunk:
            break
        out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if show:
            show(done, total)
    if show:
        show(done, total, final=True)
    return done, digest.hexdigest()


def download(
    url: str,
    dest: Path,
    sha256: str,
    *,
    progress: bool = True,
    timeout: float = TIMEOUT_SECONDS,
) -> Path:
    """Fetch `url` into `dest`, verified against `sha256`. On any failure nothing is left at `dest`."""
    import urllib.error  # only when downloading: reading the data never loads urllib
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    show = _progress_printer(sys.stderr) if progress else None
    if progress:
        print(f"Downloading {url}", file=sys.stderr)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    done, digest = _copy_hashing(response, out, total, show)
            except urllib.error.HTTPError as exc:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(f"{url}: download failed ({reason})") from None
            except Exception as exc:  # http.client.IncompleteRead and friends
                raise DownloadError(f"{url}: download interrupted ({type(exc).__name__}: {exc})") from None
            out.flush()
            os.fsync(out.fileno())
        if total is not None and done != total:
            raise DownloadError(f"{url}: connection closed after {done} of {total} bytes")
        if digest != sha256:
            raise DownloadError(
                f"{url}: checksum mismatch: got sha256 {digest}, expected {sha256}; file discarded"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def download_mnist_npz(dest: Path) -> Path:
    """Download the public Keras mnist.npz to `dest` (the data module names it) and return its path."""
    url = os.environ.get(URL_ENV) or MNIST_NPZ_URL
    return download(url, Path(dest), MNIST_NPZ_SHA256)
