"""`mnist-edge train`: train a model and write its metrics, plots and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_data_args, positive_int
from mnist_edge.errors import ensure_installed

MODEL_CHOICES = ("mlp", "cnn")


def register(sub) -> None:
    from mnist_edge.manifest import PREPROCESSING_KINDS
    from mnist_edge.trainer.models import DEFAULT_RECIPE, RECIPE_NAMES
    from mnist_edge.trainer.train import DEFAULT_SEED

    p = sub.add_parser("train", help="train a model and write its metrics, plots and report [extra: train]")
    p.add_argument(
        "--model", choices=MODEL_CHOICES, action="append", required=True,
        help="which model to train (repeat to train both)",
    )
    p.add_argument(
        "--recipe", choices=RECIPE_NAMES, default=DEFAULT_RECIPE,
        help="how to train: default, or fast (the CNN in about a quarter of the default's time, 0.11 points less accurate); "
        "see docs/training.md",
    )
    p.add_argument("--epochs", type=positive_int, help="maximum epochs (default: the model's recipe)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: the model's recipe)")
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default: {DEFAULT_SEED})")
    p.add_argument("--out", type=Path, default=Path("artifacts"), help="output folder (default: artifacts)")
    p.add_argument(
        "--class-names",
        help="comma-separated names of the 10 classes, or @file with one per line (default: the digits)",
    )
    p.add_argument(
        "--preprocessing", choices=PREPROCESSING_KINDS,
        help="what runtimes do to an image before the model sees it: digit (MNIST's crop, 20x20 box and "
        "centre of mass) or plain (resize only); default: digit for the digits, plain for other class names",
    )
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras", "matplotlib")
    from mnist_edge.data import load_dataset, parse_class_names
    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.trainer.models import recipe_of
    from mnist_edge.trainer.train import TrainConfig, train

    for model in args.model:
        try:
            recipe_of(model, args.recipe)
        except ValueError as exc:
            raise MnistEdgeError(str(exc)) from exc
    dataset = load_dataset(args.data_dir, class_names=parse_class_names(args.class_names))
    for model in args.model:
        config = TrainConfig(
            model=model, epochs=args.epochs, batch_size=args.batch_size, limit=args.limit, seed=args.seed,
            preprocessing=args.preprocessing, recipe=args.recipe,
        )
        train(dataset, config, args.out)
    return 0
