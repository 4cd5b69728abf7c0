"""The main job: train both models (unless already trained), export them, verify the exports,
and print one summary table. `make run` calls it before starting the demo."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_edge.files import sha256_file
from mnist_edge.manifest import EXPORT_DIR, Manifest, ManifestError, read_manifest


def _export_is_current(model_dir: Path) -> bool:
    """An export made from exactly this model.keras, with every artifact it lists still present."""
    from mnist_edge.trainer.record import MODEL_FILE

    if not (model_dir / MODEL_FILE).is_file():
        return False
    try:
        manifest = read_manifest(model_dir / EXPORT_DIR)
    except ManifestError:
        return False
    return manifest.model.sha256 == sha256_file(model_dir / MODEL_FILE) and all(
        manifest.path_of(a).is_file() for a in manifest.artifacts
    )


def run_pipeline(
    out: str | os.PathLike = "artifacts",
    *,
    models: tuple[str, ...] = ("mlp", "cnn"),
    retrain: bool = False,
    data_dir: str | os.PathLike | None = None,
    seed: int = 42,
    stream=sys.stdout,
) -> list["SummaryRow"]:
    """Train, export and verify each model; return one summary row per model."""
    from mnist_edge.data import load_dataset
    from mnist_edge.export.exporter import export_model
    from mnist_edge.export.verify import VerifyFailed, verify_export
    from mnist_edge.trainer.record import MODEL_FILE
    from mnist_edge.trainer.train import TrainConfig, train

    out = Path(out)
    dataset = load_dataset(data_dir)
    rows = []
    for name in models:
        model_dir = out / name
        if retrain or not (model_dir / MODEL_FILE).is_file():
            train(dataset, TrainConfig(model=name, seed=seed), out, stream=stream)
        else:
            print(f"{name}: reusing the trained model in {model_dir} (--retrain to train again)", file=stream)
        if _export_is_current(model_dir):
            print(f"{name}: export is up to date with model.keras; not exporting again", file=stream)
        else:
            export_model(model_dir, dataset=dataset, stream=stream)
        checks = verify_export(model_dir / EXPORT_DIR, data_dir=dataset.source)
        failed = [c for c in checks if not c.ok]
        if failed:
            raise VerifyFailed(f"{name}: verify failed: " + "; ".join(f"{c.file}: {c.detail}" for c in failed))
        rows.append(SummaryRow(name, read_training_metrics(model_dir), read_manifest(model_dir / EXPORT_DIR)))
    print_summary(rows, stream)
    return rows


@dataclass(frozen=True)
class SummaryRow:
    model: str
    metrics: dict  # metrics.json of the trained model
    manifest: Manifest


def read_training_metrics(model_dir: Path) -> dict:
    import json

    from mnist_edge.trainer.record import METRICS_FILE

    return json.loads((model_dir / METRICS_FILE).read_text())


def print_summary(rows: list[SummaryRow], stream=sys.stdout) -> None:
    print("", file=stream)
    print(
        f"{'model':<5} {'artifact':<18} {'precision':<9} {'size KiB':>9} {'accuracy':>9} {'Δ vs Keras':>10} "
        f"{'agreement':>9}",
        file=stream,
    )
    for row in rows:
        metrics = row.metrics
        print(
            f"{row.model:<5} {'model.keras':<18} {'fp32':<9} {'':>9} {metrics['test_accuracy']:>9.2%} {'':>10} {'':>9}"
            f"   ({metrics['params']:,} params, {metrics['epochs_run']} epochs, {metrics['train_seconds']:.0f}s)",
            file=stream,
        )
        for a in row.manifest.artifacts:
            p = a.parity
            print(
                f"{'':<5} {a.file:<18} {a.precision:<9} {a.bytes / 1024:>9.1f} {p.test_accuracy:>9.2%} "
                f"{p.accuracy_delta * 100:>+9.2f}p {p.argmax_agreement:>9.2%}",
                file=stream,
            )
    print("\nEvery artifact passed its parity checks and was re-verified from its files.", file=stream)
