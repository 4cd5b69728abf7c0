"""Load MNIST-format data (IDX files or a Keras-style mnist.npz) and check every byte of it.

Any 28x28, 10-class set in the same format works (Fashion-MNIST, for one). Only numpy is
needed here, so the runtime-side commands (`verify`, the demo's examples) can use it without
TensorFlow.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_edge.download import DownloadError, download_mnist_npz
from mnist_edge.errors import MnistEdgeError

IMAGE_SIZE = 28
NUM_CLASSES = 10
DIGIT_NAMES = tuple(str(d) for d in range(NUM_CLASSES))

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the rank.
IDX_LABELS_MAGIC = 0x00000801
IDX_IMAGES_MAGIC = 0x00000803

# File names of the four IDX files, gzip-compressed or raw.
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
NPZ_NAME = "mnist.npz"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

DATA_DIR_ENV = "MNIST_DATA_DIR"
CACHE_DIR_ENV = "MNIST_EDGE_CACHE"


class DataError(MnistEdgeError):
    """The data is missing, truncated, corrupt or inconsistent. The message names the file."""

    exit_code = 2


class DataDownloadError(DataError, DownloadError):
    """The data had to be downloaded, and the download failed (download.py sits below this module)."""


@dataclass(frozen=True)
class Split:
    """Images as uint8 [N, 28, 28] (light ink on dark, as stored) and labels as uint8 [N]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> "Split":
        """The first `n` examples (all of them when n is None)."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=NUM_CLASSES)


@dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    source: str
    class_names: tuple[str, ...] = DIGIT_NAMES


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0-255 to float32 in [0, 1], the input every model and artifact expects."""
    return images.astype(np.float32) / 255.0


# --- IDX -------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic, not its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: gzip stream is truncated (file cut short?)") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from None


def parse_idx(data: bytes, expected_magic: int, name: str) -> np.ndarray:
    """Parse one IDX file's bytes into a uint8 array, checking magic, dimensions and size."""
    if len(data) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        kind = "labels" if expected_magic == IDX_LABELS_MAGIC else "images"
        raise DataError(
            f"{name}: not an IDX {kind} file (magic 0x{magic:08x}, expected 0x{expected_magic:08x})"
        )
    rank = magic & 0xFF
    header = 4 + 4 * rank
    if len(data) < header:
        raise DataError(f"{name}: IDX header is truncated ({len(data)} bytes)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    if rank == 3 and dims[1:] != [IMAGE_SIZE, IMAGE_SIZE]:
        raise DataError(f"{name}: images are {dims[1]}x{dims[2]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {problem}: {len(data)} bytes, the header {dims} promises {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    return parse_idx(_read_bytes(path), expected_magic, str(path))


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    # Some mirrors use a dot instead of the dash before "idx" (train-images.idx3-ubyte).
    for name in (stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def _checked_split(images: np.ndarray, labels: np.ndarray, where: str) -> Split:
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1:
        raise DataError(f"{where}: labels have shape {labels.shape}, expected (N,)")
    if len(images) != len(labels):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{where}: no examples")
    if labels.max() >= NUM_CLASSES:
        bad = int(labels.max())
        raise DataError(f"{where}: label {bad} is out of range 0-{NUM_CLASSES - 1}")
    return Split(np.ascontiguousarray(images, dtype=np.uint8), np.ascontiguousarray(labels, dtype=np.uint8))


def load_idx_folder(folder: Path) -> Dataset:
    """Load the four IDX files of an MNIST-format folder."""
    splits = {}
    for split in ("train", "test"):
        paths = {}
        for kind in ("images", "labels"):
            stem = IDX_FILES[(split, kind)]
            path = _find_idx_file(folder, stem)
            if path is None:
                raise DataError(f"{folder}: missing {stem}.gz (or {stem})")
            paths[kind] = path
        images = read_idx(paths["images"], IDX_IMAGES_MAGIC)
        labels = read_idx(paths["labels"], IDX_LABELS_MAGIC)
        where = f"{paths['images'].name} / {paths['labels'].name} in {folder}"
        splits[split] = _checked_split(images, labels, where)
    return Dataset(train=splits["train"], test=splits["test"], source=str(folder))


def load_npz(path: Path) -> Dataset:
    """Load a Keras-style mnist.npz (x_train, y_train, x_test, y_test)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)}")
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError...: all mean corrupt
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    for key in NPZ_KEYS:
        if arrays[key].dtype != np.uint8:
            raise DataError(f"{path}: {key} has dtype {arrays[key].dtype}, expected uint8")
    return Dataset(
        train=_checked_split(arrays["x_train"], arrays["y_train"], f"{path} (train)"),
        test=_checked_split(arrays["x_test"], arrays["y_test"], f"{path} (test)"),
        source=str(path),
    )


def load_path(path: Path) -> Dataset:
    """Load a folder of IDX files, a folder holding mnist.npz, or an .npz file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data folder does not exist")
    if path.is_file():
        return load_npz(path)
    if _find_idx_file(path, IDX_FILES[("train", "images")]) is None and (path / NPZ_NAME).is_file():
        return load_npz(path / NPZ_NAME)
    return load_idx_folder(path)


# --- where the data comes from ---------------------------------------------------------------


def cache_dir() -> Path:
    """The user cache folder: $MNIST_EDGE_CACHE, else $XDG_CACHE_HOME/mnist-edge, else ~/.cache/mnist-edge."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-edge"


def _cache_has_data(folder: Path) -> bool:
    return (folder / NPZ_NAME).is_file() or _find_idx_file(folder, IDX_FILES[("train", "images")]) is not None


def resolve_data_path(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """Where to read the data from: `data_dir`, $MNIST_DATA_DIR, the cache, or a fresh download.

    An explicit `data_dir` or $MNIST_DATA_DIR that does not exist is an error, never a silent
    fallback to another source.
    """
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    cache = cache_dir()
    if _cache_has_data(cache):
        return cache
    if not download:
        raise DataError(
            f"no MNIST data: pass --data-dir, set {DATA_DIR_ENV}, or put {NPZ_NAME} in {cache}"
        )
    try:
        return download_mnist_npz(cache / NPZ_NAME)
    except DownloadError as exc:
        raise DataDownloadError(str(exc)) from exc


def load_dataset(
    data_dir: str | os.PathLike | None = None,
    *,
    class_names: tuple[str, ...] | None = None,
    download: bool = True,
) -> Dataset:
    """Resolve the data source and load it, checked."""
    dataset = load_path(resolve_data_path(data_dir, download=download))
    if class_names is not None:
        if len(class_names) != NUM_CLASSES:
            raise DataError(f"--class-names: {len(class_names)} names given, expected {NUM_CLASSES}")
        dataset = Dataset(dataset.train, dataset.test, dataset.source, tuple(class_names))
    return dataset


def load_measured_on(source: str, sha256: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The data set a figure was measured on, named by its test split's fingerprint `sha256`.

    With `data_dir`, that data (the caller compares its fingerprint). Otherwise the first whose
    test split matches of: $MNIST_DATA_DIR, the recorded `source` (where the figure was
    measured), the user cache. Nothing is downloaded."""
    if data_dir is not None:
        return load_path(Path(data_dir))
    tried = []
    for candidate in (os.environ.get(DATA_DIR_ENV), source, cache_dir()):
        if not candidate or str(candidate) in tried:
            continue
        tried.append(str(candidate))
        try:
            dataset = load_path(Path(candidate))
        except (DataError, OSError, ValueError):
            continue
        if fingerprint(dataset.test) == sha256:
            return dataset
    raise DataError(
        f"no copy of the test set this was measured on ({source}) found in {', '.join(tried)}; "
        "pass --data-dir with that data"
    )


def parse_class_names(text: str | None) -> tuple[str, ...] | None:
    """'a,b,c' (or a file with one name per line, given as @path) into a tuple of names."""
    if not text:
        return None
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise DataError(f"{path}: cannot read class names ({exc.strerror or exc})") from None
    else:
        names = [name.strip() for name in text.split(",")]
    return tuple(names)


def split_train_validation(
    train: Split, validation_fraction: float, seed: int
) -> tuple[Split, Split]:
    """A stratified, seeded hold-out from the training data. The test set is never touched."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(train.labels == c)
        rng.shuffle(idx)
        val_idx.append(idx[: int(round(len(idx) * validation_fraction))])
    val_mask = np.zeros(len(train), dtype=bool)
    val_mask[np.concatenate(val_idx)] = True
    fit_idx = rng.permutation(np.flatnonzero(~val_mask))
    val_idx_all = np.flatnonzero(val_mask)
    return (
        Split(train.images[fit_idx], train.labels[fit_idx]),
        Split(train.images[val_idx_all], train.labels[val_idx_all]),
    )


def fingerprint(split: Split) -> str:
    """sha256 over a split's image and label bytes: names the exact data a figure was measured on."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(split.images).tobytes())
    digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()


def calibration_sample(train: Split, size: int, seed: int) -> Split:
    """A seeded, class-balanced sample of training images for quantization calibration."""
    rng = np.random.default_rng(seed)
    per_class = max(1, size // NUM_CLASSES)
    picks = [rng.permutation(np.flatnonzero(train.labels == c))[:per_class] for c in range(NUM_CLASSES)]
    idx = rng.permutation(np.concatenate(picks))[:size]
    return Split(train.images[idx], train.labels[idx])
