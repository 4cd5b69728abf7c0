"""`mnist-edge verify`: re-check an export's checksums, model contract and accuracy, without TensorFlow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_edge import formats
from mnist_edge.cli.common import add_data_args, one_export


def register(sub) -> None:
    from mnist_edge.export.verify import ACCURACY_TOLERANCE

    p = sub.add_parser("verify", help="re-check an export's checksums and accuracy, without TensorFlow")
    p.add_argument("export_dir", type=Path, help="an export folder, e.g. artifacts/cnn/export")
    p.add_argument(
        "--tolerance", type=float, default=ACCURACY_TOLERANCE,
        help=f"allowed accuracy difference from the manifest (default: {ACCURACY_TOLERANCE:g} = "
        f"{ACCURACY_TOLERANCE * 10000:g} in 10,000)",
    )
    p.add_argument(
        "--engine", choices=("all", *formats.ENGINES), default="all",
        help="which artifacts to run: all (default), or only one engine's (sha256 is checked for all)",
    )
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge.export.verify import verify_export

    engines = tuple(formats.ENGINES) if args.engine == "all" else (args.engine,)
    results = verify_export(one_export(args.export_dir), data_dir=args.data_dir, tolerance=args.tolerance, engines=engines)
    width = max((len(r.file) for r in results), default=10)
    for r in results:
        figure = f"{r.accuracy:.4%}" if r.accuracy is not None else "-"
        print(f"{r.status:<7} {r.file:<{width}}  accuracy {figure:>8}  {r.detail}")
    failed = [r.file for r in results if not r.ok]
    if failed:
        print(f"mnist-edge: error: verify failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    checksum_only = sum(r.status == "sha256" for r in results)
    note = f" ({checksum_only} by checksum only)" if checksum_only else ""
    print(f"verified {len(results)} artifacts in {args.export_dir}{note}")
    return 0
