"""`mnist-edge predict`: read images with an exported model, the runtime only (no TensorFlow).

Up to PARALLEL_FILES files are prepared right here, one after another: no worker to start, so
one image answers fast. From PARALLEL_FILES files on, `--jobs` worker processes (processes, as
decoding holds the GIL for part of its work) decode and prepare them in chunks of CHUNK_FILES,
at most CHUNKS_PER_JOB chunks per worker in flight, so memory stays flat for a folder of any size.
Inference runs in batches of INFERENCE_BATCH; rows are printed in input order as soon as their
batch is done; an image that cannot be read is one error row, and the others are still
predicted. On a terminal, long runs draw a progress bar on stderr (never into a pipe or a log).
"""

from __future__ import annotations

import argparse
import os
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mnist_edge.cli.common import add_engine_args, add_jobs_arg, one_export, positive_int, printable
from mnist_edge.errors import MnistEdgeError
from mnist_edge.imagefolder import IMAGE_SUFFIXES
from mnist_edge.runtime.pool import (  # noqa: F401 (CHUNKS_PER_JOB, ordered_map: what its tests tune)
    CHUNKS_PER_JOB,
    available_cores,
    ordered_map,
    predicted,
    prepare_or_error,
    prepared_in_workers,
)

PATH_COLUMN = (20, 60)  # the table's path column: at least, at most this wide
# From this many files on, worker processes prepare them (and a bar may show): starting a worker
# costs about 0.4 s of CPU, what preparing 200 small files costs in this process.
PARALLEL_FILES = 200
INFERENCE_BATCH = 256
PROGRESS_INTERVAL = 0.1  # seconds between redraws of the progress bar


def register(sub) -> None:
    p = sub.add_parser("predict", help="read images with an exported model (no TensorFlow)")
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH",
        help="image files or folders of images; a folder is read with its subfolders (e.g. my-digits/0/*.png ...)",
    )
    p.add_argument("--model", type=Path, required=True, help="export folder, e.g. artifacts/cnn/export")
    add_engine_args(p)
    p.add_argument("--threads", type=positive_int, help="inference threads (default: 1)")
    add_jobs_arg(p, "decoding and preparing images", PARALLEL_FILES)
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.set_defaults(handler=run)


def image_paths(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Each PATH as given; a folder expands to the image files inside it and its subfolders
    (hidden ones and symlinked folders skipped), sorted. Also returns the folders that could not
    be listed, each with the reason, so the other paths are still predicted."""
    found, unreadable = [], []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        for folder, subfolders, files in os.walk(path, onerror=lambda exc: unreadable.append(_listing_error(exc))):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            found += [
                Path(folder) / name for name in sorted(files)
                if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
                and (Path(folder) / name).is_file()
            ]
    return found, unreadable


def _listing_error(exc: OSError) -> tuple[Path, str]:
    return Path(exc.filename), f"cannot read the folder {exc.filename} ({exc.strerror or exc})"


def run(args: argparse.Namespace) -> int:
    from mnist_edge import runtime

    predictor = runtime.load(one_export(args.model), engine=args.engine, precision=args.precision, threads=args.threads)
    paths, unreadable = image_paths(args.paths)
    if not paths and not unreadable:
        raise MnistEdgeError(f"no images found in {', '.join(map(str, args.paths))}")
    jobs = args.jobs or available_cores()
    if jobs > 1 and len(paths) >= PARALLEL_FILES:
        prepared = prepared_in_workers(predictor.manifest.input, paths, jobs)
    else:
        prepared = ((path, prepare_or_error(predictor.prepare, path)) for path in paths)
    show = json_row if args.json else table_printer(paths + [p for p, _ in unreadable], predictor)
    for path, reason in unreadable:  # listed first: they were found first
        print(show(path, reason))
    errors = len(unreadable)
    with Progress(len(paths), enabled=len(paths) >= PARALLEL_FILES and sys.stderr.isatty()) as progress:
        for path, result in predicted(predictor, progress.counted(prepared), INFERENCE_BATCH):
            errors += isinstance(result, str)
            progress.clear()
            print(show(path, result))
    if errors:
        folders = f" ({len(unreadable)} of them folders)" if unreadable else ""
        print(f"mnist-edge: error: {errors} of {len(paths) + len(unreadable)} images could not be read{folders}", file=sys.stderr)
        return 1
    return 0


# --- inference and output ------------------------------------------------------------------------


def json_row(path: Path, result) -> str:
    row = {"error": result} if isinstance(result, str) else result.as_dict()
    return json.dumps({"path": str(path), **row})


def table_printer(paths: list[Path], predictor) -> Callable[[Path, object], str]:
    """Print the table's header; return the function that formats one row of it. Names (paths,
    class names, error texts) are printed with terminal control characters escaped."""
    low, high = PATH_COLUMN
    path_width = min(high, max(low, *(len(printable(str(p))) for p in paths)))
    label_width = max(len("class"), *(len(printable(name)) for name in predictor.class_names))
    print(printable(f"{'path':<{path_width}} {'class':>{label_width}} {'confidence':>10}  top 3  ({predictor.artifact.file})"))

    def row(path: Path, result) -> str:
        name = printable(str(path))
        shown = name if len(name) <= path_width else "…" + name[-(path_width - 1) :]
        if isinstance(result, str):
            return f"{shown:<{path_width}} {'-':>{label_width}} {'-':>10}  error: {printable(result)}"
        top = "  ".join(f"{printable(label)}:{p:.2f}" for label, p in result.top(3))
        return f"{shown:<{path_width}} {printable(result.label):>{label_width}} {result.confidence:>10.2%}  {top}"

    return row


class Progress:
    """A one-line progress bar on stderr, redrawn at most every PROGRESS_INTERVAL seconds and
    cleared before each line of output (stdout may be the same terminal). Draws nothing when
    not enabled."""

    WIDTH = 30

    def __init__(self, total: int, *, enabled: bool, stream=None):
        self.total, self.enabled, self.stream = total, enabled, stream or sys.stderr
        self.done, self.start, self.drawn_at, self.shown = 0, time.perf_counter(), 0.0, False

    def counted(self, items: Iterable) -> Iterator:
        """The items, advancing the bar by one for each."""
        for item in items:
            self.done += 1
            self.draw()
            yield item

    def draw(self) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.drawn_at < PROGRESS_INTERVAL and self.done < self.total):
            return
        self.drawn_at = now
        filled = self.WIDTH * self.done // self.total
        line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} images"
        elapsed = now - self.start
        if elapsed >= 1:  # the rate is noise before that, and includes starting the workers
            rate = self.done / elapsed
            line += f", {rate:.0f}/s" + (f", {(self.total - self.done) / rate:.0f} s left" if self.done < self.total else "")
        self.stream.write(f"\r{line}\033[K")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown, self.drawn_at = False, 0.0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.clear()
