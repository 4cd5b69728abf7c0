"""`mnist-edge train-reader`: train the number reader (a sequence model for whole rows of digits)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_data_args, positive_int
from mnist_edge.errors import ensure_installed


def register(sub) -> None:
    from mnist_edge.trainer.reader import ReaderConfig

    d = ReaderConfig()
    p = sub.add_parser(
        "train-reader",
        help="train the number reader, which reads digits that touch or overlap [extra: train]; "
        "publish it with `mnist-edge export MODEL --reader DIR`",
    )
    p.add_argument("--out", type=Path, default=Path("artifacts/reader"), help="output folder (default: artifacts/reader)")
    p.add_argument("--fields", type=positive_int, default=d.fields, help=f"generated fields per seed (default: {d.fields:,})")
    p.add_argument(
        "--seeds", default=",".join(map(str, d.seeds)),
        help=f"comma list of the fields' seeds, one set of fields each (default: {','.join(map(str, d.seeds))})",
    )
    p.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"epochs (default: {d.epochs})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the weights and batch order (default: {d.seed})")
    p.add_argument("--jobs", type=positive_int, default=d.jobs, help=f"processes generating the fields (default: {d.jobs})")
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras")
    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.trainer.reader import ReaderConfig, train_reader

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError as exc:
        raise MnistEdgeError(f"--seeds takes a comma list of integers, got {args.seeds!r}") from exc
    config = ReaderConfig(fields=args.fields, seeds=seeds, epochs=args.epochs, seed=args.seed, jobs=args.jobs)
    train_reader(args.out, config, data_dir=args.data_dir)
    return 0
