"""`mnist-edge finetune`: teach a trained model your own handwriting without forgetting MNIST."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_data_args, add_signing_key_arg, positive_int
from mnist_edge.errors import ensure_installed


def register(sub) -> None:
    from mnist_edge.trainer.finetune import DEFAULT_EPOCHS, DEFAULT_HOLDOUT, MAX_MNIST_DROP

    p = sub.add_parser(
        "finetune", help="fine-tune a trained model on a folder of your own labelled images [extra: train]"
    )
    p.add_argument("model_dir", type=Path, help="folder of a trained model, e.g. artifacts/cnn")
    p.add_argument(
        "--data", type=Path, required=True,
        help="a folder with one subfolder per class (my-digits/0/*.png, my-digits/1/*.jpg, ...)",
    )
    p.add_argument("--out", type=Path, help="where the fine-tuned model folder goes (default: <model_dir>-mine)")
    p.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS, help=f"default: {DEFAULT_EPOCHS}")
    p.add_argument(
        "--holdout", type=float, default=DEFAULT_HOLDOUT,
        help=f"share of each class kept out of training for the before/after figure (default: {DEFAULT_HOLDOUT})",
    )
    p.add_argument(
        "--max-mnist-drop", type=float, default=MAX_MNIST_DROP,
        help=f"refuse to publish if MNIST test accuracy falls more than this (default: {MAX_MNIST_DROP} = "
        f"{MAX_MNIST_DROP * 100:g} points)",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    add_signing_key_arg(p)
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras", "matplotlib")
    from mnist_edge.trainer.finetune import FinetuneConfig, finetune

    out = args.out or args.model_dir.with_name(args.model_dir.name + "-mine")
    config = FinetuneConfig(epochs=args.epochs, holdout=args.holdout, max_mnist_drop=args.max_mnist_drop, seed=args.seed)
    finetune(args.model_dir, args.data, out, config, data_dir=args.data_dir, signing_key=args.signing_key)
    return 0
