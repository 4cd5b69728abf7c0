"""`mnist-edge bench`: latency, throughput, cold start and size of every exported artifact;
preprocessing by input kind against the previous implementation; folder throughput."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import add_measured_data_args, csv, positive_int


def register(sub) -> None:
    from mnist_edge.bench import FOLDER_FILES, SECTIONS

    p = sub.add_parser(
        "bench", help="latency, throughput, cold start and size of every exported artifact (and Keras), preprocessing"
    )
    p.add_argument("--model", type=Path, default=Path("artifacts"), help="artifacts folder or one export folder")
    p.add_argument("--threads", type=positive_int, default=1, help="inference threads (default: 1)")
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="where to write the figures (default: bench.json)")
    p.add_argument("--runtime-venv", type=Path, help="a venv with only `pip install .`, for footprint and cold start")
    p.add_argument("--train-venv", type=Path, help="the training venv, for the footprint comparison")
    p.add_argument(
        "--only", type=csv, default=SECTIONS, metavar="SECTIONS",
        help=f"comma-separated, from {', '.join(SECTIONS)} (default: all)",
    )
    p.add_argument(
        "--folder-files", type=positive_int, default=FOLDER_FILES,
        help=f"PNG files in the folder-throughput run (default: {FOLDER_FILES})",
    )
    add_measured_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge.bench import SECTIONS, run_bench
    from mnist_edge.errors import MnistEdgeError

    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        raise MnistEdgeError(f"--only: unknown section {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    run_bench(
        args.model,
        data_dir=args.data_dir,
        threads=args.threads,
        runtime_venv=args.runtime_venv,
        train_venv=args.train_venv,
        out=args.out,
        sections=args.only,
        folder_files=args.folder_files,
    )
    return 0
