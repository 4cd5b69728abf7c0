"""The `mnist-edge` command line: one front for training, export, verification, prediction,
benchmarks and the apps. One small module per subcommand (`register` adds its parser, `run` does
the work); choices and defaults come from the constants the code itself uses.

Nothing heavy is imported to build the parser, so `mnist-edge --help` works with the base install
and `mnist-edge predict` starts fast. Expected failures (MnistEdgeError) become one line on stderr
and a non-zero exit code; Ctrl+C and SIGTERM stop the command cleanly (exit 130 and 143; see mnist_edge/termination.py).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from mnist_edge import __version__
from mnist_edge.errors import MnistEdgeError
from mnist_edge.termination import Terminated, install as install_signal_handlers, stopped_line

# Subcommands, in the order `--help` lists them.
COMMANDS = (
    "train", "train-reader", "export", "sign", "verify", "predict", "read", "batch", "evaluate", "finetune", "pipeline", "bench", "demo",
    "web", "experiment", "compare",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-edge",
        description="Train MNIST digit classifiers, export them to ONNX and TFLite with proven parity, "
        "and run them without TensorFlow.",
    )
    parser.add_argument("--version", action="version", version=f"mnist-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"mnist_edge.cli.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        install_signal_handlers()
    try:
        return int(args.handler(args) or 0)
    except MnistEdgeError as exc:
        from mnist_edge.cli.common import printable

        print(f"mnist-edge: error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print(stopped_line(signal.SIGTERM), file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(stopped_line(signal.SIGINT), file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
