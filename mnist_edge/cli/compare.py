"""`mnist-edge compare A B`: two trained and exported models side by side (compare.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_data_args
from mnist_edge.errors import ensure_installed


def register(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="two trained, exported models side by side: accuracy, loss, size, latency, the images only one "
        "gets right, McNemar's test [extra: train]",
    )
    p.add_argument("first", type=Path, help="a trained model folder with its export, e.g. artifacts/mlp")
    p.add_argument("second", type=Path, help="the other one, e.g. artifacts/cnn")
    p.add_argument("--out", type=Path, help="where to write compare.md and its pictures (default: FIRST's parent folder)")
    p.add_argument(
        "--bench", type=Path,
        help="latency figures from `mnist-edge bench` (default: bench.json in --out or the current folder; "
        "without one, a quick measurement)",
    )
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed("matplotlib")
    from mnist_edge.trainer.compare import write_comparison

    write_comparison(args.first, args.second, args.out, data_dir=args.data_dir, bench=args.bench)
    return 0
