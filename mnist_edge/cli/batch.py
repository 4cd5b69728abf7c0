"""`mnist-edge batch`: score an archive of images on Ray Data, on this machine or a cluster.

The pipeline is mnist_edge/scale.py (docs/scale.md); this module is its command line. Ray comes
with the `scale` extra: without it the command says so in one line and starts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_edge.cli.common import add_engine_args, one_export, positive_int, probability
from mnist_edge.errors import ensure_installed

from mnist_edge.scale import DEFAULT_BATCH, IMAGE_COLUMN, MODES, PREPARE_PER_ACTOR  # Ray itself is imported later



def register(sub) -> None:
    p = sub.add_parser(
        "batch",
        help="score an archive of images on Ray Data (this machine or a cluster); needs the 'scale' extra",
        description="Read every INPUT with an exported model on Ray Data and write one row per image "
        "into Parquet shards in --output (path, result, error). See docs/scale.md.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image files, folders, globs (quoted), Parquet files with an image-bytes column, or URIs (s3://...)",
    )
    p.add_argument("--model", type=Path, required=True, help="export folder, e.g. artifacts/cnn/export")
    p.add_argument("--output", type=Path, required=True, help="folder for the Parquet shards: new, empty, or an earlier batch output")
    p.add_argument("--mode", choices=MODES, default="digit", help="one digit per image, or a whole number (default: digit)")
    p.add_argument(
        "--address",
        help="the Ray cluster to join: ray://HOST:PORT (Ray Client), HOST:PORT or auto; default: a private local Ray",
    )
    p.add_argument("--actors", type=positive_int, help=f"model actors (default: one per {PREPARE_PER_ACTOR} CPUs of the cluster in digit mode, one per CPU "
        "in number mode; at least 1)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH, help=f"rows per batch (default: {DEFAULT_BATCH})")
    p.add_argument(
        "--image-column", default=IMAGE_COLUMN,
        help=f"the column of image bytes in Parquet inputs (default: {IMAGE_COLUMN})",
    )
    p.add_argument(
        "--min-confidence", type=probability, metavar="P",
        help="--mode number: a reading less confident than P is marked rejected (default: mnist-edge read's)",
    )
    add_engine_args(p, fixed_precision=True)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed("ray", "pyarrow")  # the `scale` extra: one line naming it, before anything starts
    from mnist_edge import scale
    from mnist_edge.cli.predict import Progress

    job = scale.Job(
        model=one_export(args.model), inputs=tuple(args.inputs), output=args.output, mode=args.mode,
        address=args.address, actors=args.actors, batch_size=args.batch_size, image_column=args.image_column,
        engine=args.engine, precision=args.precision, min_confidence=args.min_confidence,
    )
    progress = Progress(1, enabled=sys.stderr.isatty())

    def on_rows(done: int, total: int) -> None:
        progress.total, progress.done = total, done
        progress.draw()

    with progress:
        summary = scale.run(job, on_rows)
    print(f"{summary.line()}; wrote {len(summary.shards)} Parquet shard(s) to {args.output}")
    return 0
