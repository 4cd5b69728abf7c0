"""`mnist-edge web`: build the static web app from exports (the model runs in the visitor's
browser, offline), prove it in Chromium, and optionally serve it."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge import formats
from mnist_edge.cli.common import add_data_args, csv, positive_int
from mnist_edge.errors import MnistEdgeError
from mnist_edge.files import check_replaceable

DEFAULT_PORT = 8000


def register(sub) -> None:
    from mnist_edge.demo.web_build import DEFAULT_PRECISIONS, PROOF_MODES

    p = sub.add_parser(
        "web", help="build the web app where the model runs in the browser, offline (site/); --serve serves it"
    )
    p.add_argument(
        "artifacts", type=Path, nargs="?", default=Path("artifacts"),
        help="artifacts folder (every <model>/export inside), one model folder or one export (default: artifacts)",
    )
    p.add_argument("--out", type=Path, default=Path("site"), help="the site folder to write (default: site)")
    p.add_argument("--model", type=csv, default=(), help="models to bundle, e.g. cnn or cnn,mlp (default: every export found)")
    p.add_argument(
        "--precision", type=csv, default=DEFAULT_PRECISIONS,
        help=f"precisions to bundle, comma-separated, of {', '.join(formats.PRECISIONS)} "
        f"(default: {','.join(DEFAULT_PRECISIONS)}, the smallest download)",
    )
    p.add_argument(
        "--proofs", choices=PROOF_MODES, default="auto",
        help="prove the site in Chromium: auto (when Chromium is there, default), on (fail without it), off",
    )
    add_data_args(p)
    p.add_argument("--serve", action="store_true", help="serve the site after building it (Ctrl+C stops)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=positive_int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    p.add_argument(
        "--public-key", type=Path, metavar="PEM",
        help="bundle only exports signed by this key's owner and make the page check their signature "
        "(default: $MNIST_EDGE_PUBLIC_KEY) [extra: signing]",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge.demo import web_proofs
    from mnist_edge.demo.web_build import build_site
    from mnist_edge.demo.web_server import SiteServer

    unknown = [p for p in args.precision if p not in formats.PRECISIONS]
    if unknown or not args.precision:
        raise MnistEdgeError(f"--precision {','.join(unknown) or '(empty)'}: choose from {', '.join(formats.PRECISIONS)}")
    protected = (args.artifacts, args.data_dir and Path(args.data_dir))
    check_replaceable(args.out, protected=tuple(p for p in protected if p))  # the rule every command follows
    build = build_site(
        args.artifacts, args.out, names=args.model, precisions=args.precision, proofs=args.proofs,
        data_dir=args.data_dir, public_key=args.public_key, log=lambda line: print(line, flush=True),
        steps=web_proofs.STEPS,
    )
    print(f"mnist-edge web: wrote {build.out}/ ({build.first_visit_bytes / 1e6:.1f} MB kept on the first visit, before compression)")
    report = build.report
    if report.not_run:
        print(f"mnist-edge web: browser proofs not run: {report.not_run} (see {build.out}/parity.md)")
    else:
        print(f"mnist-edge web: every browser proof passed in Chromium {report.chromium} (see {build.out}/parity.md)")
    if args.serve:
        server = SiteServer({"/": build.out}, args.host, args.port)
        print(f"mnist-edge web: serving {build.out}/ at {server.url} (Ctrl+C stops)", flush=True)
        server.serve_forever()
    return 0
