"""`mnist-edge bench`: latency, throughput, cold start and size of every exported artifact."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_data_args, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="latency, throughput, cold start and size of every exported artifact (and Keras)"
    )
    p.add_argument("--model", type=Path, default=Path("artifacts"), help="artifacts folder or one export folder")
    p.add_argument("--threads", type=positive_int, default=1, help="inference threads (default: 1)")
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="where to write the figures (default: bench.json)")
    p.add_argument("--runtime-venv", type=Path, help="a venv with only `pip install .`, for footprint and cold start")
    p.add_argument("--train-venv", type=Path, help="the training venv, for the footprint comparison")
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge.bench import run_bench

    run_bench(
        args.model,
        data_dir=args.data_dir,
        threads=args.threads,
        runtime_venv=args.runtime_venv,
        train_venv=args.train_venv,
        out=args.out,
    )
    return 0
