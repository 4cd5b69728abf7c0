"""`mnist-edge evaluate`: how well an export reads a folder of your own labelled images (no TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_engine_args, one_export


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="accuracy, per-class recall, confusion and mistakes of an export on your own images"
    )
    p.add_argument("model", type=Path, help="export folder (or model folder), e.g. artifacts/cnn")
    p.add_argument(
        "--data", type=Path, required=True,
        help="a folder with one subfolder per class (my-digits/0/*.png, my-digits/1/*.jpg, ...)",
    )
    add_engine_args(p)
    p.add_argument(
        "--out", type=Path,
        help="where evaluation.md, evaluation.json and mistakes.png go (default: <model folder>/evaluation-<data name>)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge import runtime
    from mnist_edge.evaluate import run_evaluation
    from mnist_edge.imagefolder import read_image_folder

    predictor = runtime.load(one_export(args.model), engine=args.engine, precision=args.precision)
    folder = read_image_folder(args.data, predictor.class_names)
    out = args.out or predictor.manifest.root.parent / f"evaluation-{folder.root.resolve().name}"
    run_evaluation(predictor, folder, out)
    return 0
