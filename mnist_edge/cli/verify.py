"""`mnist-edge verify`: re-check an export's checksums, model contract and accuracy, without TensorFlow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_edge import formats
from mnist_edge.cli.common import add_measured_data_args, finite_non_negative, one_export, printable


def register(sub) -> None:
    from mnist_edge.export.verify import ACCURACY_TOLERANCE

    p = sub.add_parser("verify", help="re-check an export's checksums and accuracy, without TensorFlow")
    p.add_argument("export_dir", type=Path, help="an export folder, e.g. artifacts/cnn/export")
    p.add_argument(
        "--tolerance", type=finite_non_negative, default=ACCURACY_TOLERANCE,
        help=f"allowed accuracy difference from the manifest (default: {ACCURACY_TOLERANCE:g} = "
        f"{ACCURACY_TOLERANCE * 10000:g} in 10,000)",
    )
    p.add_argument(
        "--engine", choices=("all", *formats.ENGINES), default="all",
        help="which artifacts to run: all (default), or only one engine's (sha256 is checked for all)",
    )
    trust = p.add_mutually_exclusive_group()
    trust.add_argument(
        "--public-key", type=Path, metavar="PEM",
        help="first check the export's signature (model.sig) over every file with this EC public key "
        "(default: $MNIST_EDGE_PUBLIC_KEY) [extra: signing]",
    )
    trust.add_argument(
        "--certificate-chain", type=Path, nargs="+", metavar="PEM",
        help="first check the signature against this certificate chain instead [extra: signing]",
    )
    add_measured_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge.export.verify import verify_export
    from mnist_edge.signature import configured_public_key

    engines = tuple(formats.ENGINES) if args.engine == "all" else (args.engine,)
    export_dir = one_export(args.export_dir)
    public_key = None if args.certificate_chain else configured_public_key(args.public_key)
    signature = check_signature(export_dir, public_key, args.certificate_chain)  # first: a refusal ends here
    results = verify_export(
        export_dir, data_dir=args.data_dir, tolerance=args.tolerance, engines=engines, public_key=public_key
    )
    width = max((len(printable(r.file)) for r in results), default=10)
    for r in results:
        figure = f"{r.accuracy:.4%}" if r.accuracy is not None else "-"
        print(printable(f"{r.status:<7} {printable(r.file):<{width}}  accuracy {figure:>8}  {r.detail}"))
    failed = [r.file for r in results if not r.ok]
    if failed:
        print(printable(f"mnist-edge: error: verify failed for {', '.join(failed)}"), file=sys.stderr)
        return 1
    reproduced = sum(r.status == "ok" for r in results)
    if not reproduced:  # an empty list, only unknown kinds, or --engine naming none of them
        print(
            f"mnist-edge: error: verify checked nothing in {printable(str(args.export_dir))}: no artifact's accuracy was "
            f"reproduced ({len(results)} listed, none run with --engine {args.engine})",
            file=sys.stderr,
        )
        return 1
    checksum_only = len(results) - reproduced
    note = f" ({checksum_only} by checksum only)" if checksum_only else ""
    print(f"verified {len(results)} artifacts in {printable(str(args.export_dir))}{note}; signature: {signature}")
    return 0


def check_signature(export_dir: Path, public_key: Path | None, certificate_chain: list[Path] | None) -> str:
    """Check the signature before anything else (SignatureError ends the command); say what was checked."""
    from mnist_edge.signature import unchecked_status, verify_signature

    if public_key is None and not certificate_chain:
        return unchecked_status(export_dir)
    signed = verify_signature(export_dir, public_key=public_key, certificate_chain=certificate_chain or ())
    return f"verified: every file signed by {signed.signer}"
