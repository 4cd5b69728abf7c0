"""`mnist-edge demo`: serve the Gradio page for the exported models under a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge.cli.common import positive_int
from mnist_edge.errors import ensure_installed


def register(sub) -> None:
    p = sub.add_parser("demo", help="serve the drawing/upload demo page for exported models [extra: demo]")
    p.add_argument(
        "--model", type=Path, default=Path("artifacts"),
        help="artifacts folder (every <model>/export inside), one model folder or one export (default: artifacts)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=positive_int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also ask Gradio for a public share link (off by default)")
    p.add_argument(
        "--collect", type=Path, metavar="FOLDER",
        help="let the page save drawings and uploads as labelled examples in FOLDER/<class>/ "
        "(for `mnist-edge evaluate` and `finetune`)",
    )
    p.add_argument(
        "--public-key", type=Path, metavar="PEM",
        help="serve only exports signed by this key's owner (default: $MNIST_EDGE_PUBLIC_KEY) [extra: signing]",
    )
    p.add_argument(
        "--sessions", type=positive_int, default=200, metavar="N",
        help="keep the state of the last N sessions (each API call is one); bounds memory (default: 200)",
    )
    p.set_defaults(handler=run)


def require_signatures(public_key: Path | None) -> None:
    """The signature hook: every runtime.load of the app (and of what it starts) requires this key."""
    import os

    from mnist_edge.signature import PUBLIC_KEY_ENV, check_public_key

    if public_key is not None:
        check_public_key(public_key)
        os.environ[PUBLIC_KEY_ENV] = str(public_key.resolve())


def run(args: argparse.Namespace) -> int:
    ensure_installed("gradio")
    require_signatures(args.public_key)
    from mnist_edge.demo.app import launch

    launch(args.model, host=args.host, port=args.port, share=args.share, collect=args.collect, sessions=args.sessions)
    return 0
