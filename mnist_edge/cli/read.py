"""`mnist-edge read`: read whole handwritten numbers (a row of 1 to 12 digits per image) with an
exported digit model, the runtime only (no TensorFlow). The recipe is docs/reading.md.

One row per image (or one JSON object per line with --json), in input order; an image that
cannot be read is one error row and the others are still read; exit 1 if any failed. Folders
expand as in `predict`; from PARALLEL_FILES files on, `--jobs` worker processes each load the
model once and read whole images in chunks (a reading is segmentation and inference together).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from mnist_edge.cli.common import add_engine_args, add_jobs_arg, one_export, probability
from mnist_edge.cli.predict import PARALLEL_FILES, PATH_COLUMN, Progress, image_paths
from mnist_edge.errors import MnistEdgeError
from mnist_edge.runtime.pool import CHUNK_FILES, available_cores, ordered_map


def register(sub) -> None:
    from mnist_edge.runtime.number import load_spec
    from mnist_edge.runtime.reading import READERS

    default_confidence = load_spec()["min_confidence"]
    p = sub.add_parser("read", help="read whole handwritten numbers (rows of digits) with an exported model")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of images")
    p.add_argument("--model", type=Path, required=True, help="export folder, e.g. artifacts/cnn/export")
    add_engine_args(p, fixed_precision=True)
    p.add_argument(
        "--min-confidence", type=probability, default=default_confidence, metavar="P",
        help=f"readings less confident than this are marked rejected, for a person to check (default: {default_confidence})",
    )
    p.add_argument(
        "--reader", choices=READERS, default="auto",
        help="auto: the export's number reader (a sequence model, for digits that touch) combined with digit-by-digit "
        "reading, or digit by digit where the export has none; digits or sequence: one of them alone (default: auto)",
    )
    add_jobs_arg(p, "reading images", PARALLEL_FILES)
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mnist_edge import runtime

    model = one_export(args.model)
    predictor = runtime.load(model, engine=args.engine, precision=args.precision, threads=1)
    if predictor.uses_reader(args.reader):
        predictor.sequence_reader()  # a missing or tampered reader is one line here, before any image
    paths, unreadable = image_paths(args.paths)
    if not paths and not unreadable:
        raise MnistEdgeError(f"no images found in {', '.join(map(str, args.paths))}")
    jobs = args.jobs or available_cores()
    if jobs > 1 and len(paths) >= PARALLEL_FILES:
        readings = read_in_workers((model, args.engine, args.precision, args.min_confidence, args.reader), paths, jobs)
    else:
        readings = ((path, read_or_error(predictor, path, args.min_confidence, args.reader)) for path in paths)
    show = json_row if args.json else table_printer(paths, predictor, args.reader)
    for path, reason in unreadable:  # folders that could not be listed: one error row each
        print(show(path, reason))
    errors = len(unreadable)
    with Progress(len(paths), enabled=len(paths) >= PARALLEL_FILES and sys.stderr.isatty()) as progress:
        for path, result in progress.counted(readings):
            errors += isinstance(result, str)
            progress.clear()
            print(show(path, result))
    if errors:
        print(f"mnist-edge: error: {errors} of {len(paths) + len(unreadable)} images could not be read", file=sys.stderr)
        return 1
    return 0


def read_or_error(predictor, path: Path, min_confidence: float, reader: str = "auto"):
    """The reading of one file, or the one-line reason it cannot be read."""
    from mnist_edge.runtime.errors import PreprocessError

    try:
        return predictor.read(path, min_confidence=min_confidence, reader=reader)
    except PreprocessError as exc:
        return str(exc)


_worker: tuple | None = None  # (predictor, min_confidence, reader), set in each worker process by _start_worker


def _start_worker(model: Path, engine: str, precision: str, min_confidence: float, reader: str) -> None:
    import signal

    from mnist_edge import runtime

    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle: it stops the pool
    _worker = (runtime.load(model, engine=engine, precision=precision, threads=1), min_confidence, reader)


def _read_chunk(paths: list[Path]) -> list:
    predictor, min_confidence, reader = _worker
    return [read_or_error(predictor, path, min_confidence, reader) for path in paths]


def read_in_workers(settings: tuple, paths: list[Path], jobs: int) -> Iterator[tuple[Path, object]]:
    """(path, Reading or error text) for every path, in order, read by `jobs` processes."""
    starts = range(0, len(paths), CHUNK_FILES)
    chunks = (paths[start : start + CHUNK_FILES] for start in starts)
    results = ordered_map(_read_chunk, chunks, jobs=jobs, initializer=_start_worker, initargs=settings)
    for start, read in zip(starts, results):
        yield from zip(paths[start : start + CHUNK_FILES], read)


def json_row(path: Path, result) -> str:
    row = {"error": result} if isinstance(result, str) else result.as_dict()
    return json.dumps({"path": str(path), **row})


def table_printer(paths: list[Path], predictor, reader: str = "auto"):
    """Print the table's header; return the function that formats one row of it."""
    low, high = PATH_COLUMN
    path_width = min(high, max(low, *(len(str(p)) for p in paths)))
    files = predictor.artifact.file
    if predictor.uses_reader(reader):
        files = predictor.manifest.reader.file if reader == "sequence" else f"{files} and {predictor.manifest.reader.file}"
    print(f"{'path':<{path_width}} {'number':>12} {'confidence':>10}  per digit  ({files})")

    def row(path: Path, result) -> str:
        shown = str(path) if len(str(path)) <= path_width else "…" + str(path)[-(path_width - 1) :]
        if isinstance(result, str):
            return f"{shown:<{path_width}} {'-':>12} {'-':>10}  error: {result}"
        digits = " ".join(f"{d.label}:{d.confidence:.2f}" for d in result.digits)
        flag = "  rejected" if result.rejected else ""
        return f"{shown:<{path_width}} {result.text:>12} {result.confidence:>10.2%}  {digits}{flag}"

    return row
