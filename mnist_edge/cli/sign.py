"""`mnist-edge sign` and `mnist-edge keygen`: sign an export folder with the owner's key, and make
that key. Offline (model-signing's key or certificate signer, never the keyless flow) [extra: signing]."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import one_export


def register(sub) -> None:
    p = sub.add_parser("sign", help="sign an export folder with your private key (writes model.sig) [extra: signing]")
    p.add_argument("export_dir", type=Path, help="an export folder, e.g. artifacts/cnn/export")
    p.add_argument("--key", type=Path, required=True, help="EC private key (PEM), e.g. from `mnist-edge keygen`")
    p.add_argument(
        "--signing-certificate", type=Path,
        help="sign with this certificate of the key instead of the bare key (verified with --certificate-chain)",
    )
    p.add_argument(
        "--certificate-chain", type=Path, nargs="+", default=[], metavar="PEM",
        help="with --signing-certificate: the certificates that issued it (intermediates, root)",
    )
    p.set_defaults(handler=run_sign)

    k = sub.add_parser("keygen", help="make an EC P-256 key pair to sign exports with [extra: signing]")
    k.add_argument("--out", type=Path, default=Path("."), help="folder for the two files (default: here)")
    k.add_argument("--name", default="mnist-edge", help="file name stem: NAME.pem and NAME.pub.pem (default: mnist-edge)")
    k.set_defaults(handler=run_keygen)


def run_sign(args: argparse.Namespace) -> int:
    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.signature import sign_export

    if bool(args.certificate_chain) != (args.signing_certificate is not None):
        raise MnistEdgeError(
            "--signing-certificate (the certificate of --key) and --certificate-chain (the certificates "
            "that issued it) go together"
        )
    folder = one_export(args.export_dir)
    written = sign_export(
        folder, args.key, signing_certificate=args.signing_certificate, certificate_chain=args.certificate_chain
    )
    print(f"signed every file of {folder}: {written}")
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    from mnist_edge.signature import generate_key_pair

    private, public = args.out / f"{args.name}.pem", args.out / f"{args.name}.pub.pem"
    args.out.mkdir(parents=True, exist_ok=True)
    generate_key_pair(private, public)
    print(f"private key (keep it secret; sign with it): {private}")
    print(f"public key (ship it with the runtime or the web app): {public}")
    return 0
