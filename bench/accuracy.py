"""Accuracy benchmark: train both models from scratch on full MNIST and print one table.

    python bench/accuracy.py [--out bench-artifacts] [--seed 42] [--data-dir D]

Prints model, parameters, epochs run (best), training seconds, test accuracy and test loss,
and writes the table as markdown to OUT/accuracy.md. These are the README's figures.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_edge.data import load_dataset  # noqa: E402
from mnist_edge.trainer.train import TrainConfig, train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir")
    parser.add_argument("--models", default="mlp,cnn")
    args = parser.parse_args()

    dataset = load_dataset(args.data_dir)
    rows = []
    for name in args.models.split(","):
        metrics = train(dataset, TrainConfig(model=name, seed=args.seed), args.out)
        rows.append(metrics)
    lines = [
        "| model | parameters | epochs run (best) | training s | test accuracy | test loss |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m['model']} | {m['params']:,} | {m['epochs_run']} ({m['best_epoch']}) | {m['train_seconds']:.0f} "
        f"| {m['test_accuracy']:.2%} | {m['test_loss']:.4f} |"
        for m in rows
    ]
    table = "\n".join(lines)
    print("\n" + table)
    (args.out / "accuracy.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
