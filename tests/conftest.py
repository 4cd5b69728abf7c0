"""Shared fixtures. Tests read the real MNIST files from $MNIST_DATA_DIR (../shared/data/mnist by
default) and never download anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "mnist"
os.environ.setdefault("MNIST_DATA_DIR", str(DEFAULT_DATA_DIR))

# tests/test_no_tensorflow.py runs some of these tests inside a venv holding only the installed
# wheel; there they must import that package, never this source tree.
INSTALLED_ENV = "MNIST_EDGE_EXPECT_INSTALLED"


def pytest_configure(config):
    expected = os.environ.get(INSTALLED_ENV)
    if expected:
        import mnist_edge.runtime

        where = Path(mnist_edge.runtime.__file__).resolve()
        if not str(where).startswith(str(Path(expected).resolve())):
            raise pytest.UsageError(f"mnist_edge was imported from {where}, not from the installed package in {expected}")


# Where tests leave things a person may want to look at (screenshots, reports).
TEST_ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = Path(os.environ["MNIST_DATA_DIR"])
    if not path.is_dir():
        pytest.fail(f"MNIST data not found at {path}: set MNIST_DATA_DIR to the folder of the four IDX files")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The full real MNIST dataset, loaded and checked once per session."""
    from mnist_edge.data import load_dataset

    return load_dataset(mnist_dir)


@pytest.fixture(scope="session")
def test_artifacts_dir() -> Path:
    TEST_ARTIFACTS.mkdir(exist_ok=True)
    return TEST_ARTIFACTS


# --- small trained models and their exports ----------------------------------------------------
# Short fits on slices of real MNIST: seconds, not minutes. Full-accuracy runs are benchmarks.

TINY_TRAINING = {"mlp": {"epochs": 5, "limit": 10000}, "cnn": {"epochs": 3, "limit": 8000}}
# Set by tests/test_no_tensorflow.py when it runs the runtime tests in a venv without TensorFlow:
# an export made beforehand by the main test session, which cannot be made there.
EXPORT_ENV = "MNIST_EDGE_TEST_EXPORT"


def _train_tiny(name: str, root: Path, mnist) -> Path:
    from mnist_edge.trainer.train import TrainConfig, train

    train(mnist, TrainConfig(model=name, **TINY_TRAINING[name]), root)
    return root / name


@pytest.fixture(scope="session")
def trained_mlp(tmp_path_factory, mnist) -> Path:
    """artifacts/mlp of an MLP trained for a few epochs on 10,000 real training images."""
    return _train_tiny("mlp", tmp_path_factory.mktemp("artifacts"), mnist)


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory, mnist) -> Path:
    return _train_tiny("cnn", tmp_path_factory.mktemp("artifacts"), mnist)


@pytest.fixture(scope="session")
def mlp_export(request, mnist) -> Path:
    """A complete, passing export (every kind of the registry) of the small MLP."""
    if os.environ.get(EXPORT_ENV):
        return Path(os.environ[EXPORT_ENV])
    from mnist_edge.export.exporter import export_model

    model_dir = request.getfixturevalue("trained_mlp")
    export_model(model_dir, dataset=mnist)
    return model_dir / "export"


# The number reader (trainer/reader.py), trained briefly: enough that it reads some fields, so the
# tests exercise every path of reading with it; its accuracy is the benchmark's business.
TINY_READER = {"fields": 3000, "seeds": (1,), "epochs": 4}
READER_PROOF_FIELDS = 60


@pytest.fixture(scope="session")
def trained_reader(tmp_path_factory, mnist_dir) -> Path:
    from mnist_edge.trainer.reader import ReaderConfig, train_reader

    out = tmp_path_factory.mktemp("reader")
    train_reader(out, ReaderConfig(**TINY_READER), data_dir=mnist_dir)
    return out


@pytest.fixture(scope="session")
def reader_export(tmp_path_factory, trained_mlp, trained_reader, mnist) -> Path:
    """The small MLP exported (fp32 ONNX only) with the small number reader. Its proof's gain
    limit is lifted: the brief training does not beat digit-by-digit reading, which the limit's own
    test shows is refused by default."""
    import shutil

    from mnist_edge.export.exporter import export_model
    from mnist_edge.export.parity import Thresholds

    model_dir = tmp_path_factory.mktemp("with-reader") / "mlp"
    shutil.copytree(trained_mlp, model_dir, ignore=shutil.ignore_patterns("export*"))
    export_model(
        model_dir, families=("onnx",), precisions=("fp32",), dataset=mnist, reader=trained_reader,
        reader_fields=READER_PROOF_FIELDS, thresholds=Thresholds(reader_min_gain=-100.0),
    )
    return model_dir / "export"
