"""File helpers shared by every package: checksums and atomic writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from mnist_edge.errors import MnistEdgeError

CHUNK_BYTES = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file in the same folder, then rename: readers see old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def process_alive(pid: int) -> bool:
    """Is process `pid` running? For leftovers named after the process that made them."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# --- replacing a folder ----------------------------------------------------------------------------
# A command may replace a folder only if it is absent or a folder this toolkit wrote; never the data a
# command reads, nor a folder holding it. Every command that swaps a folder in (export, finetune,
# web, the pipeline through them) asks `check_replaceable` first.

WRITTEN_MARKER = ".mnist-edge"  # a folder holding this file was written by mnist-edge
# What the toolkit's own folders hold, for folders written before the marker existed: any one of
# these sets of files (the site's marker, an export's manifest, a trained model's files).
OWN_SIGNATURES = ((".mnist-edge-site",), ("manifest.json", "parity.md"), ("model.keras", "metrics.json"))


class FolderNotReplaceable(MnistEdgeError):
    """A command was asked to replace a folder it did not write, or the data it reads."""

    exit_code = 2


def mark_written(folder: str | os.PathLike, what: str) -> None:
    """Mark `folder` as written by mnist-edge (`what`: a model, an export, a site), so a later run may replace it."""
    atomic_write_text(Path(folder) / WRITTEN_MARKER, f"written by mnist-edge ({what}); mnist-edge may replace this folder\n")


def written_by_toolkit(folder: str | os.PathLike) -> bool:
    """Does `folder` (a real folder, not a symlink) hold the marker, or one of the toolkit's own file sets?"""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return False
    if (folder / WRITTEN_MARKER).is_file():
        return True
    return any(all((folder / name).is_file() for name in names) for names in OWN_SIGNATURES)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def replace_refusal(target: str | os.PathLike, *, protected: tuple = ()) -> str | None:
    """Why `target` may not be replaced by a new folder, or None when it may.

    Allowed: an absent path, an empty folder, or a folder mnist-edge wrote (see written_by_toolkit) that is
    neither one of the `protected` paths (the data a command reads, its source model) nor a
    folder holding one of them, nor the current folder or one holding it."""
    target = Path(target)
    if not os.path.lexists(target):
        return None
    if target.is_symlink():
        return f"{target} is a symbolic link; name a folder of its own"
    if not target.is_dir():
        return f"{target} exists and is not a folder"
    real = target.resolve()
    for path in (*protected, Path.cwd()):
        if path is not None and _inside(Path(path).resolve(), real):
            what = "the current folder" if path == Path.cwd() else str(path)
            return f"{target} is or holds {what}, which this command reads or runs in"
    try:
        if not any(target.iterdir()):  # an empty folder: nothing to lose
            return None
    except OSError as exc:
        return f"{target} cannot be listed ({exc.strerror or exc})"
    if not written_by_toolkit(target):
        return f"{target} exists and was not written by mnist-edge"
    return None


def check_replaceable(
    target: str | os.PathLike, *, protected: tuple = (), option: str = "--out", advice: str = "choose another"
) -> None:
    """Raise FolderNotReplaceable (one line, nothing changed) unless `target` may be replaced."""
    reason = replace_refusal(target, protected=protected)
    if reason:
        raise FolderNotReplaceable(f"{option}: {reason}; {advice} (nothing was changed)")
