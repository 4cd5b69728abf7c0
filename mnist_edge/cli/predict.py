"""`mnist-edge predict`: read images with an exported model, the runtime only (no TensorFlow)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnist_edge import formats
from mnist_edge.cli.common import one_export, positive_int
from mnist_edge.errors import MnistEdgeError
from mnist_edge.imagefolder import IMAGE_SUFFIXES

PATH_COLUMN = (20, 60)  # the table's path column: at least, at most this wide


def register(sub) -> None:
    from mnist_edge.runtime.predictor import DEFAULT_ENGINE, DEFAULT_PRECISION

    p = sub.add_parser("predict", help="read images with an exported model (no TensorFlow)")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of images")
    p.add_argument("--model", type=Path, required=True, help="export folder, e.g. artifacts/cnn/export")
    p.add_argument(
        "--engine", choices=tuple(formats.ENGINES), default=DEFAULT_ENGINE,
        help=f"inference engine (default: {DEFAULT_ENGINE})",
    )
    p.add_argument(
        "--precision", choices=formats.PRECISIONS, default=DEFAULT_PRECISION, help=f"default: {DEFAULT_PRECISION}"
    )
    p.add_argument("--threads", type=positive_int, help="inference threads (default: 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler=run)


def image_paths(paths: list[Path]) -> list[Path]:
    """Each PATH as given; folders expand to the image files inside them, sorted."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from mnist_edge import runtime

    predictor = runtime.load(one_export(args.model), engine=args.engine, precision=args.precision, threads=args.threads)
    paths = image_paths(args.paths)
    if not paths:
        raise MnistEdgeError(f"no images found in {', '.join(map(str, args.paths))}")
    inputs, errors = {}, {}
    for path in paths:
        try:
            inputs[path] = predictor.prepare(path)
        except runtime.PreprocessError as exc:
            errors[path] = str(exc)
    results = {}
    if inputs:
        probabilities = predictor.predict_array(np.stack(list(inputs.values())))
        results = {path: predictor.to_prediction(p) for path, p in zip(inputs, probabilities)}
    if args.json:
        for path in paths:
            row = {"error": errors[path]} if path in errors else results[path].as_dict()
            print(json.dumps({"path": str(path), **row}))
    else:
        print_table(paths, results, errors, predictor)
    if errors:
        print(f"mnist-edge: error: {len(errors)} of {len(paths)} images could not be read", file=sys.stderr)
        return 1
    return 0


def print_table(paths, results, errors, predictor) -> None:
    low, high = PATH_COLUMN
    path_width = min(high, max(low, *(len(str(p)) for p in paths)))
    label_width = max(len("class"), *(len(name) for name in predictor.class_names))
    print(f"{'path':<{path_width}} {'class':>{label_width}} {'confidence':>10}  top 3  ({predictor.artifact.file})")
    for path in paths:
        shown = str(path) if len(str(path)) <= path_width else "…" + str(path)[-(path_width - 1) :]
        if path in errors:
            print(f"{shown:<{path_width}} {'-':>{label_width}} {'-':>10}  error: {errors[path]}")
            continue
        result = results[path]
        top = "  ".join(f"{name}:{p:.2f}" for name, p in result.top(3))
        print(f"{shown:<{path_width}} {result.label:>{label_width}} {result.confidence:>10.2%}  {top}")
