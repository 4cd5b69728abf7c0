"""What a trained model folder says about itself (metrics.json), for the steps that come after
training: the export, the fine-tuning, the comparisons.

    record = read_record("artifacts/cnn")
    record.class_names, record.preprocessing, record.data.test_sha256
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mnist_edge.data import DIGIT_NAMES, DataError, Dataset, fingerprint, load_dataset
from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import PREPROCESSING_KINDS  # noqa: F401  (what `preprocessing` may be)

METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"


class DataMismatchError(DataError):
    """The data at hand is not the data set the model was trained and measured on."""


@dataclass(frozen=True)
class DataRecord:
    """The data set a model was trained on: where it was, and fingerprints of its splits."""

    source: str
    train_sha256: str
    test_sha256: str

    @classmethod
    def of(cls, dataset: Dataset) -> "DataRecord":
        return cls(dataset.source, fingerprint(dataset.train), fingerprint(dataset.test))

    def as_dict(self) -> dict:
        return {"source": self.source, "train_sha256": self.train_sha256, "test_sha256": self.test_sha256}


@dataclass(frozen=True)
class TrainingRecord:
    model_dir: Path
    architecture: str  # the network it is: "mlp" or "cnn" (a fine-tuned model keeps its source's)
    class_names: tuple[str, ...]
    preprocessing: str  # "digit" (the MNIST recipe) or "plain" (resize only)
    test_accuracy: float | None
    data: DataRecord | None  # None for models trained before the fingerprint was recorded
    accuracy_is: str | None = None  # what test_accuracy is: one seed's result
    recipe_mean: dict | None = None  # the recipe's recorded mean over seeds, when known
    # The moves its recipe reads each image with (trainer.models.with_test_time_shifts); () = one pass.
    test_time_shifts: tuple[tuple[int, int], ...] = ()


def default_preprocessing(class_names: tuple[str, ...]) -> str:
    """Digits get the MNIST recipe (crop, 20x20 box, centre of mass); anything else a plain resize."""
    return "digit" if tuple(class_names) == DIGIT_NAMES else "plain"


def read_record(model_dir: str | os.PathLike) -> TrainingRecord:
    model_dir = Path(model_dir)
    path = model_dir / METRICS_FILE
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        metrics = {}
    except (OSError, json.JSONDecodeError) as exc:
        raise MnistEdgeError(f"{path}: cannot read the training record ({exc})") from exc
    names = tuple(metrics.get("class_names") or DIGIT_NAMES)
    data = metrics.get("data")
    return TrainingRecord(
        model_dir=model_dir,
        architecture=str(metrics.get("model") or model_dir.name),
        class_names=names,
        preprocessing=metrics.get("preprocessing") or default_preprocessing(names),
        test_accuracy=metrics.get("test_accuracy"),
        data=DataRecord(data["source"], data["train_sha256"], data["test_sha256"]) if data else None,
        accuracy_is=metrics.get("accuracy_is"),
        recipe_mean=metrics.get("recipe_mean"),
        test_time_shifts=_shifts(metrics.get("test_time_shifts"), path),
    )


def _shifts(value, path: Path) -> tuple[tuple[int, int], ...]:
    from mnist_edge.trainer.models import require_shifts

    try:
        return require_shifts(value or ())
    except ValueError as exc:
        raise MnistEdgeError(f"{path}: {exc}") from exc


def load_training_data(
    record: TrainingRecord, data_dir: str | os.PathLike | None = None, *, dataset: Dataset | None = None
) -> Dataset:
    """The data set the model was trained on (`dataset` if given; else `data_dir`; else where it was at
    training time; else the usual sources), checked against the training-time fingerprint."""
    recorded = record.data
    if dataset is None:
        if data_dir is None and recorded and Path(recorded.source).exists():
            data_dir = recorded.source
        dataset = load_dataset(data_dir, class_names=record.class_names, download=recorded is None)
    if recorded and fingerprint(dataset.test) != recorded.test_sha256:
        raise DataMismatchError(
            f"{record.model_dir} was trained on the data set at {recorded.source} (test set sha256 "
            f"{recorded.test_sha256[:12]}…), but {dataset.source} holds another one; "
            "pass --data-dir with the data the model was trained on"
        )
    return dataset
