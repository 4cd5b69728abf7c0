"""mnist_edge.data on the real MNIST files: loading, every kind of broken file, where the data
comes from, the validation split, class names, and how the CLI reports a data error."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.data import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    IDX_FILES,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    NPZ_NAME,
    DataError,
    Split,
    cache_dir,
    load_dataset,
    load_npz,
    load_path,
    parse_class_names,
    resolve_data_path,
    split_train_validation,
)
from mnist_edge.download import URL_ENV

ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# Port 9 (discard) has nothing listening here: a download that should never happen fails fast
# instead of reaching the internet.
UNREACHABLE_URL = "http://127.0.0.1:9/mnist.npz"

TRAIN_IMAGES = IDX_FILES[("train", "images")]
TRAIN_LABELS = IDX_FILES[("train", "labels")]
TEST_IMAGES = IDX_FILES[("test", "images")]
TEST_LABELS = IDX_FILES[("test", "labels")]


# --- helpers -----------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file's bytes: magic, one big-endian uint32 per dimension, then the uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def real_file(mnist_dir: Path, stem: str) -> Path:
    return mnist_dir / (stem + ".gz")


def mnist_copy(mnist_dir: Path, dest: Path, *, omit: str | None = None) -> Path:
    """A folder of symlinks to the four real .gz files (minus `omit`), ready to be tampered with."""
    dest.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        if stem != omit:
            (dest / (stem + ".gz")).symlink_to(real_file(mnist_dir, stem))
    return dest


def replace_file(folder: Path, stem: str, name: str, content: bytes) -> Path:
    """Swap the real `stem`.gz in `folder` for a file `name` holding `content`."""
    (folder / (stem + ".gz")).unlink()
    path = folder / name
    path.write_bytes(content)
    return path


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def small_npz(path: Path, mnist, n_train: int, n_test: int = 50) -> Path:
    """A valid mnist.npz holding the first images of the real data set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_npz(
        path,
        x_train=mnist.train.images[:n_train],
        y_train=mnist.train.labels[:n_train],
        x_test=mnist.test.images[:n_test],
        y_test=mnist.test.labels[:n_test],
    )


def assert_same_dataset(a, b) -> None:
    for name in ("train", "test"):
        np.testing.assert_array_equal(getattr(a, name).images, getattr(b, name).images)
        np.testing.assert_array_equal(getattr(a, name).labels, getattr(b, name).labels)


def image_keys(images: np.ndarray) -> list[bytes]:
    """Each image's bytes, hashable, so sets of images can be compared exactly."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [row.tobytes() for row in flat]


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """No $MNIST_DATA_DIR, an empty cache of our own, and no way to reach the internet."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    monkeypatch.setenv(URL_ENV, UNREACHABLE_URL)
    return cache


@pytest.fixture(scope="module")
def real_npz(tmp_path_factory, mnist) -> Path:
    """The full real data set as a Keras-style mnist.npz."""
    return small_npz(
        tmp_path_factory.mktemp("npz") / NPZ_NAME, mnist, len(mnist.train), len(mnist.test)
    )


# --- the real data -----------------------------------------------------------------------------


def test_real_mnist_has_expected_shapes_counts_and_ranges(mnist, mnist_dir):
    assert mnist.source == str(mnist_dir)
    assert mnist.train.images.shape == (60000, 28, 28)
    assert mnist.test.images.shape == (10000, 28, 28)
    assert mnist.train.labels.shape == (60000,)
    assert mnist.test.labels.shape == (10000,)
    for split in (mnist.train, mnist.test):
        assert split.images.dtype == np.uint8
        assert split.labels.dtype == np.uint8
        assert split.labels.min() == 0 and split.labels.max() == 9
        # Real scans use the whole range: black background, saturated ink.
        assert split.images.min() == 0 and split.images.max() == 255
    assert mnist.train.class_counts().tolist() == TRAIN_CLASS_COUNTS
    assert mnist.test.class_counts().tolist() == TEST_CLASS_COUNTS
    assert mnist.class_names == tuple("0123456789")


def test_raw_idx_files_load_identically_to_gzip(mnist, mnist_dir, tmp_path):
    for stem in IDX_FILES.values():
        (tmp_path / stem).write_bytes(gzip.decompress(real_file(mnist_dir, stem).read_bytes()))
    raw = load_path(tmp_path)
    assert raw.source == str(tmp_path)
    assert_same_dataset(raw, mnist)


def test_npz_file_loads_identically(mnist, real_npz):
    from_npz = load_path(real_npz)
    assert from_npz.source == str(real_npz)
    assert_same_dataset(from_npz, mnist)


def test_folder_holding_npz_loads_identically(mnist, real_npz):
    from_folder = load_dataset(real_npz.parent)
    assert from_folder.source == str(real_npz)
    assert_same_dataset(from_folder, mnist)


def test_fashion_mnist_loads_with_the_same_shapes():
    if not FASHION_MNIST_DIR.is_dir():
        pytest.fail(
            f"Fashion-MNIST not found at {FASHION_MNIST_DIR}: "
            "install it with `apt-get install dataset-fashion-mnist`"
        )
    fashion = load_dataset(FASHION_MNIST_DIR)
    assert fashion.train.images.shape == (60000, 28, 28)
    assert fashion.test.images.shape == (10000, 28, 28)
    assert fashion.train.images.dtype == np.uint8
    # Fashion-MNIST is balanced: 6000 training and 1000 test images per class.
    assert fashion.train.class_counts().tolist() == [6000] * 10
    assert fashion.test.class_counts().tolist() == [1000] * 10


# --- broken data: each a DataError naming the file and the problem ------------------------------


def test_missing_folder(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataError, match="does not exist") as err:
        load_path(missing)
    assert str(missing) in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("omit", [TRAIN_LABELS, TEST_IMAGES])
def test_folder_missing_one_file(mnist_dir, tmp_path, omit):
    folder = mnist_copy(mnist_dir, tmp_path / "data", omit=omit)
    with pytest.raises(DataError, match="missing") as err:
        load_path(folder)
    assert omit in str(err.value)
    assert str(folder) in str(err.value)


def test_empty_folder_names_the_first_missing_file(tmp_path):
    with pytest.raises(DataError, match=f"missing {TRAIN_IMAGES}"):
        load_path(tmp_path)


def test_truncated_gzip(mnist_dir, tmp_path):
    folder = mnist_copy(mnist_dir, tmp_path / "data")
    real = real_file(mnist_dir, TRAIN_IMAGES).read_bytes()
    bad = replace_file(folder, TRAIN_IMAGES, TRAIN_IMAGES + ".gz", real[: len(real) // 2])
    with pytest.raises(DataError, match="truncated") as err:
        load_path(folder)
    assert str(bad) in str(err.value)


def test_truncated_raw_idx(mnist_dir, tmp_path):
    folder = mnist_copy(mnist_dir, tmp_path / "data")
    raw = gzip.decompress(real_file(mnist_dir, TEST_IMAGES).read_bytes())
    bad = replace_file(folder, TEST_IMAGES, TEST_IMAGES, raw[:-1000])
    with pytest.raises(DataError, match="truncated") as err:
        load_path(folder)
    message = str(err.value)
    assert str(bad) in message
    assert f"{len(raw) - 1000} bytes" in message and str(len(raw)) in message


def test_trailing_bytes_after_raw_idx(mnist_dir, tmp_path):
    folder = mnist_copy(mnist_dir, tmp_path / "data")
    raw = gzip.decompress(real_file(mnist_dir, TRAIN_LABELS).read_bytes())
    bad = replace_file(folder, TRAIN_LABELS, TRAIN_LABELS, raw + b"\x00" * 7)
    with pytest.raises(DataError, match="trailing bytes") as err:
        load_path(folder)
    assert str(bad) in str(err.value)


def test_images_and_labels_swapped_is_a_wrong_magic_number(mnist_dir, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / (TRAIN_IMAGES + ".gz")).symlink_to(real_file(mnist_dir, TRAIN_LABELS))
    (folder / (TRAIN_LABELS + ".gz")).symlink_to(real_file(mnist_dir, TRAIN_IMAGES))
    (folder / (TEST_IMAGES + ".gz")).symlink_to(real_file(mnist_dir, TEST_IMAGES))
    (folder / (TEST_LABELS + ".gz")).symlink_to(real_file(mnist_dir, TEST_LABELS))
    with pytest.raises(DataError, match="not an IDX images file") as err:
        load_path(folder)
    message = str(err.value)
    assert str(folder / (TRAIN_IMAGES + ".gz")) in message
    assert f"0x{IDX_LABELS_MAGIC:08x}" in message and f"0x{IDX_IMAGES_MAGIC:08x}" in message


def test_garbage_inside_a_gzip_file(mnist_dir, tmp_path):
    folder = mnist_copy(mnist_dir, tmp_path / "data")
    real = bytearray(real_file(mnist_dir, TRAIN_LABELS).read_bytes())
    # Keep the gzip header (so it is still recognised as gzip) and scramble the stream after it.
    middle = len(real) // 2
    real[middle : middle + 512] = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    bad = replace_file(folder, TRAIN_LABELS, TRAIN_LABELS + ".gz", bytes(real))
    with pytest.raises(DataError, match="corrupt gzip data") as err:
        load_path(folder)
    assert str(bad) in str(err.value)


def test_non_gzip_garbage_named_gz(mnist_dir, tmp_path):
    folder = mnist_copy(mnist_dir, tmp_path / "data")
    bad = replace_file(folder, TRAIN_IMAGES, TRAIN_IMAGES + ".gz", b"<html>404 Not Found</html>\n")
    with pytest.raises(DataError, match="not an IDX images file") as err:
        load_path(folder)
    assert str(bad) in str(err.value)


def test_images_and_labels_count_mismatch(mnist, tmp_path):
    (tmp_path / TRAIN_IMAGES).write_bytes(idx_bytes(mnist.train.images[:100], IDX_IMAGES_MAGIC))
    (tmp_path / TRAIN_LABELS).write_bytes(idx_bytes(mnist.train.labels[:99], IDX_LABELS_MAGIC))
    (tmp_path / TEST_IMAGES).write_bytes(idx_bytes(mnist.test.images[:10], IDX_IMAGES_MAGIC))
    (tmp_path / TEST_LABELS).write_bytes(idx_bytes(mnist.test.labels[:10], IDX_LABELS_MAGIC))
    with pytest.raises(DataError, match="100 images but 99 labels") as err:
        load_path(tmp_path)
    assert TRAIN_IMAGES in str(err.value) and TRAIN_LABELS in str(err.value)


def test_label_out_of_range(mnist, tmp_path):
    labels = mnist.test.labels[:20].copy()
    labels[7] = 10
    (tmp_path / TRAIN_IMAGES).write_bytes(idx_bytes(mnist.train.images[:20], IDX_IMAGES_MAGIC))
    (tmp_path / TRAIN_LABELS).write_bytes(idx_bytes(mnist.train.labels[:20], IDX_LABELS_MAGIC))
    (tmp_path / TEST_IMAGES).write_bytes(idx_bytes(mnist.test.images[:20], IDX_IMAGES_MAGIC))
    (tmp_path / TEST_LABELS).write_bytes(idx_bytes(labels, IDX_LABELS_MAGIC))
    with pytest.raises(DataError, match="label 10 is out of range 0-9") as err:
        load_path(tmp_path)
    assert TEST_LABELS in str(err.value)


def test_wrong_image_size(mnist, tmp_path):
    padded = np.pad(mnist.train.images[:20], ((0, 0), (2, 2), (2, 2)))  # 32x32, like LeNet's input
    bad = tmp_path / TRAIN_IMAGES
    bad.write_bytes(idx_bytes(padded, IDX_IMAGES_MAGIC))
    (tmp_path / TRAIN_LABELS).write_bytes(idx_bytes(mnist.train.labels[:20], IDX_LABELS_MAGIC))
    with pytest.raises(DataError, match="images are 32x32, expected 28x28") as err:
        load_path(tmp_path)
    assert str(bad) in str(err.value)


def test_npz_missing_a_key(mnist, tmp_path):
    path = write_npz(
        tmp_path / NPZ_NAME,
        x_train=mnist.train.images[:10],
        y_train=mnist.train.labels[:10],
        x_test=mnist.test.images[:10],
    )
    with pytest.raises(DataError, match="missing arrays y_test") as err:
        load_path(tmp_path)
    assert str(path) in str(err.value)


def test_npz_with_wrong_dtype(mnist, tmp_path):
    path = write_npz(
        tmp_path / NPZ_NAME,
        x_train=mnist.train.images[:10].astype(np.float32) / 255.0,
        y_train=mnist.train.labels[:10],
        x_test=mnist.test.images[:10],
        y_test=mnist.test.labels[:10],
    )
    with pytest.raises(DataError, match="x_train has dtype float32, expected uint8") as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / NPZ_NAME
    path.write_text("this is not a zip archive\n")
    with pytest.raises(DataError, match="not a readable .npz file") as err:
        load_path(path)
    assert str(path) in str(err.value)


def test_truncated_npz(real_npz, tmp_path):
    path = tmp_path / NPZ_NAME
    with open(real_npz, "rb") as f:
        path.write_bytes(f.read(1_000_000))
    with pytest.raises(DataError, match="not a readable .npz file") as err:
        load_path(path)
    assert str(path) in str(err.value)


# --- where the data comes from -----------------------------------------------------------------


def test_explicit_data_dir_beats_env_and_cache(mnist, isolated_env, tmp_path, monkeypatch):
    explicit = small_npz(tmp_path / "explicit" / NPZ_NAME, mnist, 100)
    env = small_npz(tmp_path / "env" / NPZ_NAME, mnist, 200)
    small_npz(isolated_env / NPZ_NAME, mnist, 300)
    monkeypatch.setenv(DATA_DIR_ENV, str(env.parent))
    assert resolve_data_path(explicit.parent) == explicit.parent
    dataset = load_dataset(explicit.parent)
    assert dataset.source == str(explicit) and len(dataset.train) == 100


def test_env_beats_cache(mnist, isolated_env, tmp_path, monkeypatch):
    env = small_npz(tmp_path / "env" / NPZ_NAME, mnist, 200)
    small_npz(isolated_env / NPZ_NAME, mnist, 300)
    monkeypatch.setenv(DATA_DIR_ENV, str(env.parent))
    dataset = load_dataset()
    assert dataset.source == str(env) and len(dataset.train) == 200


def test_cache_of_idx_files_is_used_last(mnist, mnist_dir, isolated_env):
    mnist_copy(mnist_dir, isolated_env)
    assert resolve_data_path(download=False) == isolated_env
    dataset = load_dataset(download=False)
    assert dataset.source == str(isolated_env)
    assert_same_dataset(dataset, mnist)


def test_cache_folder_defaults_to_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mnist-edge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mnist-edge"


def test_explicit_nonexistent_data_dir_does_not_fall_back(mnist, isolated_env, tmp_path):
    small_npz(isolated_env / NPZ_NAME, mnist, 300)  # a good cache, which must not be used
    missing = tmp_path / "typo"
    with pytest.raises(DataError, match="does not exist") as err:
        load_dataset(missing)
    assert str(missing) in str(err.value)


def test_nonexistent_env_data_dir_does_not_fall_back(mnist, isolated_env, tmp_path, monkeypatch):
    small_npz(isolated_env / NPZ_NAME, mnist, 300)
    missing = tmp_path / "typo"
    monkeypatch.setenv(DATA_DIR_ENV, str(missing))
    with pytest.raises(DataError, match="does not exist") as err:
        load_dataset()
    assert str(missing) in str(err.value)


def test_no_source_and_no_download_is_a_clear_error(isolated_env):
    isolated_env.mkdir()
    with pytest.raises(DataError) as err:
        load_dataset(download=False)
    message = str(err.value)
    assert "--data-dir" in message and DATA_DIR_ENV in message and str(isolated_env) in message
    assert list(isolated_env.iterdir()) == []


# --- the validation split ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_10pct(mnist) -> tuple[Split, Split]:
    return split_train_validation(mnist.train, 0.1, seed=42)


def test_split_sizes_add_up_and_parts_are_disjoint(mnist, split_10pct):
    fit, val = split_10pct
    assert len(fit) + len(val) == len(mnist.train)
    assert len(val) == pytest.approx(0.1 * len(mnist.train), abs=10)
    # Together the two parts are exactly the training set, each image once.
    assert Counter(image_keys(fit.images)) + Counter(image_keys(val.images)) == Counter(
        image_keys(mnist.train.images)
    )
    assert not set(image_keys(fit.images)) & set(image_keys(val.images))
    # Every image keeps its own label.
    label_of = dict(zip(image_keys(mnist.train.images), mnist.train.labels.tolist()))
    assert [label_of[k] for k in image_keys(val.images)] == val.labels.tolist()


def test_split_never_contains_test_images(mnist, split_10pct):
    test_keys = set(image_keys(mnist.test.images))
    for part in split_10pct:
        assert not set(image_keys(part.images)) & test_keys


def test_split_is_stratified(mnist, split_10pct):
    full_share = mnist.train.class_counts() / len(mnist.train)
    for part in split_10pct:
        share = part.class_counts() / len(part)
        np.testing.assert_allclose(share, full_share, atol=0.01)


def test_split_is_deterministic_for_a_seed(mnist, split_10pct):
    fit, val = split_train_validation(mnist.train, 0.1, seed=42)
    np.testing.assert_array_equal(fit.images, split_10pct[0].images)
    np.testing.assert_array_equal(val.labels, split_10pct[1].labels)
    np.testing.assert_array_equal(val.images, split_10pct[1].images)


def test_split_differs_for_another_seed(mnist, split_10pct):
    _, val = split_train_validation(mnist.train, 0.1, seed=7)
    assert set(image_keys(val.images)) != set(image_keys(split_10pct[1].images))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_rejects_fractions_outside_0_1(mnist, fraction):
    with pytest.raises(ValueError, match="validation_fraction"):
        split_train_validation(mnist.train, fraction, seed=0)


# --- class names -------------------------------------------------------------------------------

FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def test_class_names_from_comma_list():
    assert parse_class_names(" zero, one ,two") == ("zero", "one", "two")
    assert parse_class_names(",".join(FASHION_NAMES)) == FASHION_NAMES


def test_class_names_from_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(FASHION_NAMES[:5]) + "\n\n  \n" + "\n".join(FASHION_NAMES[5:]) + "\n")
    assert parse_class_names(f"@{path}") == FASHION_NAMES


def test_class_names_from_missing_file(tmp_path):
    missing = tmp_path / "names.txt"
    with pytest.raises(DataError, match="cannot read class names") as err:
        parse_class_names(f"@{missing}")
    assert str(missing) in str(err.value)


def test_no_class_names_means_the_default():
    assert parse_class_names(None) is None
    assert parse_class_names("") is None


def test_load_dataset_applies_class_names(mnist, tmp_path):
    folder = small_npz(tmp_path / NPZ_NAME, mnist, 100).parent
    dataset = load_dataset(folder, class_names=FASHION_NAMES)
    assert dataset.class_names == FASHION_NAMES


def test_load_dataset_rejects_wrong_number_of_class_names(mnist, tmp_path):
    folder = small_npz(tmp_path / NPZ_NAME, mnist, 100).parent
    with pytest.raises(DataError, match="9 names given, expected 10"):
        load_dataset(folder, class_names=parse_class_names(",".join(FASHION_NAMES[:9])))


# --- the CLI -----------------------------------------------------------------------------------


def no_fallback_env(tmp_path: Path) -> dict[str, str]:
    """No other data source: if the CLI ever ignored a bad --data-dir, it would fail fast on the
    empty cache and the unreachable download instead of training on the real data."""
    env = {k: v for k, v in os.environ.items() if k != DATA_DIR_ENV}
    env.update({CACHE_DIR_ENV: str(tmp_path / "empty-cache"), URL_ENV: UNREACHABLE_URL})
    return env


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=no_fallback_env(tmp_path),
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mnist-edge: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert result.stdout == ""


def test_cli_train_with_missing_data_dir(tmp_path):
    result = run_cli(tmp_path, "train", "--model", "mlp", "--data-dir", "/nonexistent")
    assert_one_line_error(result, "/nonexistent", "does not exist")


def test_cli_train_with_truncated_idx_file(mnist_dir, tmp_path):
    folder = mnist_copy(mnist_dir, tmp_path / "data")
    raw = gzip.decompress(real_file(mnist_dir, TRAIN_LABELS).read_bytes())
    bad = replace_file(folder, TRAIN_LABELS, TRAIN_LABELS, raw[: len(raw) // 2])
    result = run_cli(
        tmp_path, "train", "--model", "mlp", "--data-dir", str(folder), "--out", str(tmp_path / "out")
    )
    assert_one_line_error(result, str(bad), "truncated")
    assert not (tmp_path / "out").exists()


def test_cli_data_error_comes_before_tensorflow_is_imported(tmp_path):
    # The data is checked first, so a bad --data-dir fails in a fraction of a second.
    code = (
        "import sys\n"
        "from mnist_edge.cli import main\n"
        f"rc = main(['train', '--model', 'mlp', '--data-dir', {str(tmp_path / 'missing')!r}])\n"
        "print(rc, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=no_fallback_env(tmp_path),
        timeout=60,
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
