"""`mnist-edge export`: convert a trained model to every planned artifact kind, prove each one,
publish the set or reject it. Choices and defaults come from mnist_edge.formats and the parity
limits in mnist_edge.export.parity."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mnist_edge import formats
from mnist_edge.cli.common import add_data_args, add_signing_key_arg, csv, positive_int
from mnist_edge.errors import MnistEdgeError, ensure_installed
from mnist_edge.termination import stopping_note


def register(sub) -> None:
    from mnist_edge.export.convert import DEFAULT_CALIBRATION_SIZE, DEFAULT_OPSET
    from mnist_edge.export.parity import Thresholds

    p = sub.add_parser(
        "export", help="convert a trained model to ONNX and TFLite and prove each artifact [extra: train]"
    )
    p.add_argument("model_dir", type=Path, help="folder of a trained model, e.g. artifacts/cnn")
    families = ",".join(formats.families())
    p.add_argument(
        "--formats", default=families,
        help=f"comma list of {families} (default: all; "
        + "; ".join(f"{f}: {', '.join(k.file for k in formats.KINDS if k.family == f)}" for f in formats.families())
        + ")",
    )
    precisions = ",".join(formats.PRECISIONS)
    p.add_argument("--precisions", default=precisions, help=f"comma list of {precisions} (default: all)")
    p.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")
    p.add_argument(
        "--calibration-size", type=positive_int, default=DEFAULT_CALIBRATION_SIZE,
        help=f"training images used to calibrate int8 quantization (default: {DEFAULT_CALIBRATION_SIZE})",
    )
    p.add_argument(
        "--one-pass", action="store_true",
        help="export the network alone, without the test-time shifts its recipe reads with "
        "(one pass per image instead of five: for microcontrollers, or reading long numbers fast)",
    )
    p.add_argument(
        "--reader", type=Path, metavar="DIR",
        help="publish the number reader trained in DIR (`mnist-edge train-reader`) with this model, after proving "
        "it on generated fields of MNIST test digits (it must read more fields whole than digit-by-digit reading)",
    )
    p.add_argument(
        "--reader-fields", type=positive_int, default=None, metavar="N",
        help="fields the reader's proof reads (default: 1000, the reading benchmark's)",
    )
    limits = p.add_argument_group("parity limits (override the defaults)")
    for name, value in Thresholds().as_dict().items():
        limits.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name, help=f"default {value:g}")
    add_signing_key_arg(p)
    add_data_args(p)
    p.set_defaults(handler=run)


def thresholds(args: argparse.Namespace):
    from mnist_edge.export.parity import Thresholds

    overrides = {name: value for name in Thresholds().as_dict() if (value := getattr(args, name, None)) is not None}
    return Thresholds(**{**Thresholds().as_dict(), **overrides})


def run(args: argparse.Namespace) -> int:
    families, precisions = csv(args.formats), csv(args.precisions)
    if not families or not precisions:
        raise MnistEdgeError("--formats and --precisions each need at least one value")
    ensure_installed(*formats.export_modules(formats.plan(families, precisions)))
    from mnist_edge.export.exporter import export_model
    from mnist_edge.manifest import EXPORT_DIR

    with stopping_note(what_a_stop_leaves(args.model_dir / EXPORT_DIR)):
        export_model(
            args.model_dir,
            families=families,
            precisions=precisions,
            opset=args.opset,
            calibration_size=args.calibration_size,
            thresholds=thresholds(args),
            data_dir=args.data_dir,
            signing_key=args.signing_key,
            one_pass=args.one_pass,
            reader=args.reader,
            reader_fields=args.reader_fields,
        )
    return 0


def what_a_stop_leaves(export: Path):
    """The note for a SIGTERM or Ctrl+C: whether `export` is still the folder it was (a publish
    swaps in a new folder; one caught between its renames is put back by the cleanup)."""

    def identity() -> tuple[int, int] | None:
        try:
            info = os.stat(export)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    before = identity()

    def note() -> str:
        if identity() == before:
            return "the previous export is unchanged" if before else "no export was published"
        return f"the new export was already published to {export}"

    return note
