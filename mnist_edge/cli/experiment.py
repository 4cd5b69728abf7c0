"""`mnist-edge experiment overfitting`: the MLP trained three ways, to see what dropout and
augmentation do to overfitting."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_data_args, positive_int
from mnist_edge.errors import ensure_installed

EXPERIMENTS = ("overfitting",)
DEFAULT_OUT = Path("artifacts/experiments")


def register(sub) -> None:
    from mnist_edge.trainer.train import DEFAULT_SEED

    p = sub.add_parser(
        "experiment",
        help="learning experiments: overfitting (the MLP without dropout, with dropout, with dropout and "
        "augmentation) [extra: train]",
    )
    p.add_argument("name", choices=EXPERIMENTS, help="which experiment to run")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs per run (default: the MLP's recipe)")
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed, the same for every run (default: {DEFAULT_SEED})")
    p.add_argument(
        "--out", type=Path, help=f"output folder (default: {DEFAULT_OUT}/NAME): experiment.md, a png and a json",
    )
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras", "matplotlib")
    from mnist_edge.data import load_dataset
    from mnist_edge.trainer.experiment import run_overfitting

    dataset = load_dataset(args.data_dir)
    run_overfitting(
        dataset, args.out or DEFAULT_OUT / args.name, epochs=args.epochs, limit=args.limit, seed=args.seed
    )
    return 0
