"""`mnist-edge pipeline`: train (unless trained), export (unless current) and verify each model."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnist_edge import formats
from mnist_edge.cli.common import add_data_args, add_signing_key_arg, csv, positive_int
from mnist_edge.cli.train import MODEL_CHOICES
from mnist_edge.errors import MnistEdgeError, ensure_installed
from mnist_edge.files import check_replaceable

TRAIN_MODULES = ("tensorflow", "keras", "matplotlib")  # training, before the export's own needs


def register(sub) -> None:
    from mnist_edge.pipeline import Serve
    from mnist_edge.trainer.train import DEFAULT_SEED

    p = sub.add_parser(
        "pipeline", help="train (unless trained), export and verify both models; print a summary [extra: train]"
    )
    p.add_argument("--out", type=Path, default=Path("artifacts"), help="artifacts folder (default: artifacts)")
    p.add_argument(
        "--models", default=",".join(MODEL_CHOICES), help=f"comma list of models (default: {','.join(MODEL_CHOICES)})"
    )
    p.add_argument("--retrain", action="store_true", help="train again even if a trained model exists")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed for training (default: {DEFAULT_SEED})")
    p.add_argument(
        "--serve", action="store_true",
        help="serve the demo as soon as the first model is published (it picks up the others as they come), "
        "and keep serving once all are done",
    )
    p.add_argument("--host", default=Serve.host, help=f"with --serve: address (default: {Serve.host})")
    p.add_argument("--port", type=positive_int, default=Serve.port, help=f"with --serve: port (default: {Serve.port})")
    p.add_argument(
        "--web-port", type=positive_int,
        help="with --serve: once every model is ready, also build the web app (mnist-edge web) and serve it on this port",
    )
    p.add_argument("--site", type=Path, default=Serve.site, help=f"with --web-port: the site folder (default: {Serve.site})")
    p.add_argument(
        "--web-proofs", choices=("auto", "on", "off"), default=Serve.web_proofs,
        help="with --web-port: prove the web app in Chromium first (as mnist-edge web --proofs; default: auto)",
    )
    p.add_argument(
        "--no-reader", action="store_true",
        help="skip the number reader (by default it is trained in OUT/reader, about 20 minutes, and published with the CNN)",
    )
    add_signing_key_arg(p)
    add_data_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ensure_installed(*TRAIN_MODULES, *formats.export_modules())
    from mnist_edge.pipeline import Serve, run_pipeline

    models = csv(args.models)
    unknown = [m for m in models if m not in MODEL_CHOICES]
    if unknown or not models:
        raise MnistEdgeError(
            f"--models: unknown model {', '.join(unknown) or '(none)'}; choose from {', '.join(MODEL_CHOICES)}"
        )
    serve = Serve(args.host, args.port, args.web_port, args.site, args.web_proofs) if args.serve else None
    if serve and serve.web_port:  # refused now, not after training: the site folder is replaced at the end
        protected = tuple(p for p in (args.out, args.data_dir and Path(args.data_dir)) if p)
        check_replaceable(args.site, protected=protected, option="--site")
    if serve:
        ensure_installed("gradio")
    run_pipeline(
        args.out, models=models, retrain=args.retrain, data_dir=args.data_dir, seed=args.seed, serve=serve,
        signing_key=args.signing_key, reader=not args.no_reader,
    )
    return 0
