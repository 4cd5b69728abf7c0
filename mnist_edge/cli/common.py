"""Pieces every subcommand shares: argument types, the data-folder option, finding one export."""

from __future__ import annotations

import argparse
import math
import unicodedata
from pathlib import Path

from mnist_edge.errors import MnistEdgeError


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def finite_non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of at least 0, got {text!r}")
    return value


def printable(text: str) -> str:
    """`text` with terminal control characters escaped (\\x1b, \\n, ...): a file or class name
    must not move the cursor, recolour or retitle the user's terminal."""
    return "".join(_escape(char) if _is_control(char) else char for char in text)


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != "\u200d"


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder of the four MNIST-format IDX files (.gz or raw) or an mnist.npz; "
        "default: $MNIST_DATA_DIR, then ~/.cache/mnist-edge, then a verified download",
    )


def add_engine_args(parser: argparse.ArgumentParser, *, fixed_precision: bool = False) -> None:
    """--engine and --precision, with the registry's choices. The precision defaults to the
    registry's default when `fixed_precision`, else (None) to the engine's own default."""
    from mnist_edge import formats

    parser.add_argument(
        "--engine", choices=tuple(formats.ENGINES), default=formats.DEFAULT_ENGINE,
        help=f"inference engine (default: {formats.DEFAULT_ENGINE})",
    )
    parser.add_argument(
        "--precision", choices=formats.PRECISIONS, default=formats.DEFAULT_PRECISION if fixed_precision else None,
        help=f"default: {formats.DEFAULT_PRECISION}" + ("" if fixed_precision else ", or the engine's only one"),
    )


def add_jobs_arg(parser: argparse.ArgumentParser, doing: str, from_files: int) -> None:
    """--jobs: how many worker processes do `doing` when there are `from_files` files or more."""
    from mnist_edge.runtime.pool import available_cores

    parser.add_argument(
        "--jobs", type=positive_int,
        help=f"processes {doing} when there are {from_files} or more (default: every core, here {available_cores()})",
    )


def add_signing_key_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-key", type=Path, metavar="PEM",
        help="sign what is published with this EC private key (default: $MNIST_EDGE_SIGNING_KEY; "
        "unset: unsigned) [extra: signing]",
    )


def add_measured_data_args(parser: argparse.ArgumentParser) -> None:
    """--data-dir for commands that re-measure an export on the test set its manifest records."""
    parser.add_argument(
        "--data-dir",
        help="folder of the four MNIST-format IDX files (.gz or raw) or an mnist.npz; default: the first whose "
        "test set is the one the manifest records (same fingerprint) of $MNIST_DATA_DIR, the folder the "
        "manifest names, ~/.cache/mnist-edge (nothing is downloaded)",
    )


def one_export(path: Path) -> Path:
    """`--model` may name an export folder, its manifest, artifacts/<model>, or an artifacts
    folder holding a single model."""
    from mnist_edge.manifest import find_exports

    if path.suffix == ".json":
        return path
    exports = find_exports(path)
    if len(exports) > 1:
        names = ", ".join(str(e) for e in exports)
        raise MnistEdgeError(f"{path} holds several exported models ({names}); pass one of them to --model")
    return exports[0] if exports else path  # none: the manifest reader says what is missing


def probability(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {text!r}") from exc
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {value}")
    return value
