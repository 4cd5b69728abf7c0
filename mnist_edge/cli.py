"""The `mnist-edge` command line: one front for training, export, verification, prediction,
benchmarks and the demo.

Only the standard library is imported at module level, so `mnist-edge --help` works with the
base install and `mnist-edge predict` starts fast. Each subcommand imports what it needs.
Expected failures (MnistEdgeError) become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mnist_edge import __version__
from mnist_edge.errors import MnistEdgeError, ensure_installed

MODEL_CHOICES = ("mlp", "cnn")


def _quiet_tensorflow() -> None:
    """TensorFlow's C++ start-up chatter hides the lines that matter; keep errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --- subcommands -------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras", "matplotlib")
    _quiet_tensorflow()
    from trainer.data import load_dataset, parse_class_names
    from trainer.train import TrainConfig, train

    dataset = load_dataset(args.data_dir, class_names=parse_class_names(args.class_names))
    for model in args.model:
        config = TrainConfig(
            model=model, epochs=args.epochs, batch_size=args.batch_size, limit=args.limit, seed=args.seed
        )
        train(dataset, config, args.out)
    return 0


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _thresholds(args: argparse.Namespace):
    from export.parity import Thresholds

    defaults = Thresholds()
    overrides = {
        name: getattr(args, name) for name in defaults.as_dict() if getattr(args, name, None) is not None
    }
    return Thresholds(**{**defaults.as_dict(), **overrides})


def cmd_export(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras", "tf2onnx", "onnx", "ai_edge_litert")
    _quiet_tensorflow()
    from export.exporter import export_model

    export_model(
        args.model_dir,
        formats=_csv(args.formats),
        precisions=_csv(args.precisions),
        opset=args.opset,
        calibration_size=args.calibration_size,
        thresholds=_thresholds(args),
        data_dir=args.data_dir,
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from export.verify import verify_export

    backends = ("onnx", "litert") if args.backend == "all" else (args.backend,)
    results = verify_export(
        _one_export(args.export_dir), data_dir=args.data_dir, tolerance=args.tolerance, backends=backends
    )
    width = max(len(r.file) for r in results) if results else 10
    for r in results:
        figure = f"{r.accuracy:.4%}" if r.accuracy is not None else "-"
        status = "FAIL" if not r.ok else ("ok  " if r.accuracy is not None else "sha ")
        print(f"{status}  {r.file:<{width}}  accuracy {figure:>8}  {r.detail}")
    failed = [r.file for r in results if not r.ok]
    if failed:
        print(f"mnist-edge: error: verify failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    sha_only = sum(r.accuracy is None for r in results)
    note = f" ({sha_only} by checksum only)" if sha_only else ""
    print(f"verified {len(results)} artifacts in {args.export_dir}{note}")
    return 0


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}


def _image_paths(paths: list[Path]) -> list[Path]:
    """Each PATH as given; folders expand to the image files inside them, sorted."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def _one_export(path: Path) -> Path:
    """--model may name an export folder, its manifest, artifacts/<model>, or an artifacts folder
    holding a single model."""
    from runtime.manifest import find_exports

    if path.suffix == ".json":
        return path
    exports = find_exports(path)
    if len(exports) > 1:
        names = ", ".join(str(e) for e in exports)
        raise MnistEdgeError(f"{path} holds several exported models ({names}); pass one of them to --model")
    return exports[0] if exports else path  # none: runtime.load says what is missing


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    import runtime
    from runtime.preprocess import to_mnist

    predictor = runtime.load(
        _one_export(args.model), backend=args.backend, precision=args.precision, threads=args.threads
    )
    paths = _image_paths(args.paths)
    if not paths:
        raise MnistEdgeError(f"no images found in {', '.join(map(str, args.paths))}")
    inputs, errors = {}, {}
    for path in paths:
        try:
            inputs[path] = to_mnist(path)
        except runtime.MnistRuntimeError as exc:
            errors[path] = str(exc)
    results = {}
    if inputs:
        probabilities = predictor.predict_array(np.stack(list(inputs.values())))
        results = {path: predictor.to_prediction(p) for path, p in zip(inputs, probabilities)}
    if not args.json:
        print(f"{'path':<40} {'digit':>5} {'confidence':>10}  top 3  ({predictor.artifact.file})")
    for path in paths:
        if path in errors:
            if args.json:
                print(json.dumps({"path": str(path), "error": errors[path]}))
            else:
                print(f"{str(path):<40} {'-':>5} {'-':>10}  error: {errors[path]}")
            continue
        result = results[path]
        if args.json:
            print(json.dumps({"path": str(path), **result.as_dict()}))
        else:
            top = "  ".join(f"{name}:{p:.2f}" for name, p in result.top(3, predictor.class_names))
            print(f"{str(path):<40} {result.label:>5} {result.confidence:>10.2%}  {top}")
    if errors:
        print(f"mnist-edge: error: {len(errors)} of {len(paths)} images could not be read", file=sys.stderr)
        return 1
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    ensure_installed("tensorflow", "keras", "matplotlib", "tf2onnx", "onnx", "ai_edge_litert")
    _quiet_tensorflow()
    from mnist_edge.pipeline import run_pipeline

    models = _csv(args.models)
    unknown = [m for m in models if m not in MODEL_CHOICES]
    if unknown or not models:
        raise MnistEdgeError(f"--models: unknown model {', '.join(unknown) or '(none)'}; choose from {', '.join(MODEL_CHOICES)}")
    run_pipeline(args.out, models=models, retrain=args.retrain, data_dir=args.data_dir, seed=args.seed)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
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


def cmd_demo(args: argparse.Namespace) -> int:
    ensure_installed("gradio")
    from demo.app import launch

    launch(args.model, host=args.host, port=args.port, share=args.share)
    return 0


# --- parser ------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder of the four MNIST-format IDX files (.gz or raw) or an mnist.npz; "
        "default: $MNIST_DATA_DIR, then ~/.cache/mnist-edge, then a verified download",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnist-edge",
        description="Train MNIST digit classifiers, export them to ONNX and TFLite with proven parity, "
        "and run them without TensorFlow.",
    )
    parser.add_argument("--version", action="version", version=f"mnist-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a model and write its metrics, plots and report [extra: train]")
    p.add_argument(
        "--model", choices=MODEL_CHOICES, action="append", required=True,
        help="which model to train (repeat to train both)",
    )
    p.add_argument("--epochs", type=_positive_int, help="maximum epochs (default: the model's recipe)")
    p.add_argument("--batch-size", type=_positive_int, help="batch size (default: the model's recipe)")
    p.add_argument("--limit", type=_positive_int, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--out", type=Path, default=Path("artifacts"), help="output folder (default: artifacts)")
    p.add_argument(
        "--class-names",
        help="comma-separated names of the 10 classes, or @file with one per line (default: the digits)",
    )
    _add_data_args(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser(
        "export", help="convert a trained model to ONNX and TFLite and prove each artifact [extra: train]"
    )
    p.add_argument("model_dir", type=Path, help="folder of a trained model, e.g. artifacts/cnn")
    p.add_argument("--formats", default="onnx,tflite", help="comma list of onnx,tflite (onnx includes .ort)")
    p.add_argument("--precisions", default="fp32,fp16,int8", help="comma list of fp32,fp16,int8 (fp16: TFLite)")
    p.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default: 17)")
    p.add_argument(
        "--calibration-size", type=_positive_int, default=1000,
        help="training images used to calibrate int8 quantization (default: 1000)",
    )
    limits = p.add_argument_group("parity limits (override the defaults)")
    limits.add_argument("--fp32-min-agreement", type=float, help="default 1.0")
    limits.add_argument("--fp32-max-abs-diff", type=float, help="default 1e-4")
    limits.add_argument("--fp16-min-agreement", type=float, help="default 0.999")
    limits.add_argument("--int8-min-agreement", type=float, help="default 0.995")
    limits.add_argument("--int8-max-accuracy-drop", type=float, help="default 0.003 (0.3 points)")
    limits.add_argument("--int8-max-size-ratio", type=float, help="default 0.35 of the fp32 file")
    _add_data_args(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("verify", help="re-check an export's checksums and accuracy, without TensorFlow")
    p.add_argument("export_dir", type=Path, help="an export folder, e.g. artifacts/cnn/export")
    p.add_argument(
        "--tolerance", type=float, default=0.0005,
        help="allowed accuracy difference from the manifest (default: 0.0005 = 5 in 10,000)",
    )
    p.add_argument(
        "--backend", choices=("all", "onnx", "litert"), default="all",
        help="which artifacts to run: all (default), or only those of one backend (sha256 is checked for all)",
    )
    _add_data_args(p)
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("predict", help="predict digits in image files with an exported model (no TensorFlow)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of images")
    p.add_argument("--model", type=Path, required=True, help="export folder, e.g. artifacts/cnn/export")
    p.add_argument("--backend", choices=("onnx", "litert"), default="onnx", help="inference engine (default: onnx)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32", help="default: fp32")
    p.add_argument("--threads", type=_positive_int, help="inference threads (default: 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser(
        "pipeline", help="train (unless trained), export and verify both models; print a summary [extra: train]"
    )
    p.add_argument("--out", type=Path, default=Path("artifacts"), help="artifacts folder (default: artifacts)")
    p.add_argument("--models", default="mlp,cnn", help="comma list of models (default: mlp,cnn)")
    p.add_argument("--retrain", action="store_true", help="train again even if a trained model exists")
    p.add_argument("--seed", type=int, default=42, help="random seed for training (default: 42)")
    _add_data_args(p)
    p.set_defaults(handler=cmd_pipeline)

    p = sub.add_parser(
        "bench", help="latency, throughput, cold start and size of every exported artifact (and Keras)"
    )
    p.add_argument("--model", type=Path, default=Path("artifacts"), help="artifacts folder or one export folder")
    p.add_argument("--threads", type=_positive_int, default=1, help="inference threads (default: 1)")
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="where to write the figures (default: bench.json)")
    p.add_argument("--runtime-venv", type=Path, help="a venv with only `pip install .`, for footprint and cold start")
    p.add_argument("--train-venv", type=Path, help="the training venv, for the footprint comparison")
    _add_data_args(p)
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("demo", help="serve the drawing/upload demo page for exported models [extra: demo]")
    p.add_argument(
        "--model", type=Path, default=Path("artifacts"),
        help="artifacts folder (every <model>/export inside), one model folder or one export (default: artifacts)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=_positive_int, default=7860, help="port (default: 7860)")
    p.add_argument("--share", action="store_true", help="also ask Gradio for a public share link (off by default)")
    p.set_defaults(handler=cmd_demo)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except MnistEdgeError as exc:
        print(f"mnist-edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mnist-edge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
