"""Score archives of images on Ray Data: the pipeline behind `mnist-edge batch`.

    list inputs (driver) -> read bytes (read_binary_files / read_parquet tasks)
      -> decode + prepare with the runtime's own preprocessing (tasks, one batch at a time)
      -> predict in a fixed pool of actors (one Predictor each, one onnxruntime thread)
      -> rows streamed back to the driver -> Parquet shards in the output folder

The same program runs on a local Ray started for the job or on a user's cluster (`address`).
Every input is one output row; a file that cannot be read is a row with its `error`, never the
end of the job. An actor that dies is restarted by Ray and its batch retried, and a batch's rows
reach the driver only once its task succeeded, so each input is written exactly once.

The rows are written by the driver (about 100 bytes each, see docs/scale.md): the output folder
is on the machine that runs the command, also with a `ray://` client, and it is published
whole, under the same folder rule as every other command (never replace a folder this toolkit
did not write). Ray is imported inside the functions that need it: the base runtime install
does not have it (the `scale` extra does).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mnist_edge import __version__, formats
from mnist_edge.errors import MnistEdgeError
from mnist_edge.files import atomic_write_text, process_alive
from mnist_edge.imagefolder import IMAGE_SUFFIXES

MODES = ("digit", "number")
DEFAULT_BATCH = 256  # rows per prepare task call and per inference call (predict's INFERENCE_BATCH)
# An actor's share of a CPU. Inference is about a tenth of the cost of decoding and preparing (docs/scale.md),
# so an actor never holds a whole core: the read and prepare tasks always find one (Ray issue #44687:
# an actor pool holding every CPU stalls Ray Data's reads).
ACTOR_CPUS = 0.25
PREPARE_PER_ACTOR = 4  # default --actors: one per this many CPUs of the cluster
SHARD_ROWS = 100_000  # rows per output Parquet file
PARQUET_SUFFIX = ".parquet"
IMAGE_COLUMN = "image"  # the default column of image bytes in Parquet inputs (binary, or a struct with "bytes")
PATH_COLUMN = "path"  # a Parquet input's own name for each row, when it has one
MARKER = "_batch.json"  # written last into the output folder: what made it, and the summary
GLOB_CHARACTERS = "*?["


class BatchError(MnistEdgeError):
    """The job cannot start or finish: bad inputs, output folder, model or cluster."""


# --- inputs ------------------------------------------------------------------------------------


@dataclass
class Source:
    """Files on one filesystem: `filesystem` None is this machine's (absolute paths); a URI's
    pyarrow filesystem takes paths without the scheme, which `prefix` puts back for the output."""

    filesystem: object = None
    prefix: str = ""
    images: list[str] = field(default_factory=list)
    parquet: list[str] = field(default_factory=list)


@dataclass
class Inputs:
    """What the driver found to read, by filesystem, and the inputs refused before any read
    (one row each, with its error)."""

    sources: dict[str, Source] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def source(self, key: str, filesystem=None, prefix: str = "") -> Source:
        return self.sources.setdefault(key, Source(filesystem, prefix))

    @property
    def files(self) -> int:
        return sum(len(s.images) + len(s.parquet) for s in self.sources.values())


def list_inputs(inputs: Iterable[str], max_file_bytes: int | None = None) -> Inputs:
    """Expand INPUTs (files, folders, globs, Parquet files; URIs through pyarrow's filesystems)
    into the files to read. Folders give the image and Parquet files directly inside them, sorted;
    a file that is missing, not a regular file or over the runtime's size limit is refused with
    its reason, so no read task ever blocks on a pipe or reads a huge file."""
    from mnist_edge.runtime.preprocess import MAX_FILE_BYTES

    limit = max_file_bytes or MAX_FILE_BYTES
    found = Inputs()
    for text in inputs:
        if "://" in text:
            _list_uri(text, limit, found)
        elif any(c in text for c in GLOB_CHARACTERS) and not os.path.lexists(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise BatchError(f"{text}: no file matches this pattern")
            for match in matches:
                _list_local(Path(match), limit, found)
        else:
            _list_local(Path(text), limit, found)
    return found


def _kind(name: str) -> str | None:
    suffix = os.path.splitext(name)[1].lower()
    return "parquet" if suffix == PARQUET_SUFFIX else "images" if suffix in IMAGE_SUFFIXES else None


def _list_local(path: Path, limit: int, found: Inputs) -> None:
    if path.is_dir():
        for child in sorted(path.iterdir()):
            kind = _kind(child.name)
            if kind and not child.is_dir():
                _add_local(child, kind, limit, found)
        return
    _add_local(path, _kind(path.name) or "images", limit, found)


def _add_local(path: Path, kind: str, limit: int, found: Inputs) -> None:
    absolute = str(path.absolute())
    try:
        info = path.stat()
    except FileNotFoundError:
        found.refused.append((absolute, "file not found"))
        return
    except OSError as exc:
        found.refused.append((absolute, f"cannot read ({exc.strerror or exc})"))
        return
    if not stat.S_ISREG(info.st_mode):
        found.refused.append((absolute, "not a regular file (a folder, pipe, device or socket), not an image"))
    elif kind == "images" and info.st_size > limit:
        found.refused.append((absolute, f"{info.st_size:,} bytes, over the {limit:,}-byte limit"))
    else:
        getattr(found.source(""), kind).append(absolute)


def _list_uri(uri: str, limit: int, found: Inputs) -> None:
    import pyarrow.fs as pafs

    scheme, rest = uri.split("://", 1)
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            listed = filesystem.get_file_info(pafs.FileSelector(path))
            infos = sorted((i for i in listed if i.type == pafs.FileType.File and _kind(i.path)), key=lambda i: i.path)
        else:
            infos = [info]
    except (OSError, ValueError, TypeError) as exc:  # pyarrow raises OSError or ArrowInvalid (a ValueError)
        raise BatchError(f"{uri}: cannot list it ({exc})") from exc
    prefix = f"{scheme}://"
    source = found.source(prefix + rest.split("/", 1)[0], filesystem, prefix)  # one per bucket / host
    for info in infos:
        shown, kind = prefix + info.path, _kind(info.path) or "images"
        if info.type == pafs.FileType.NotFound:
            found.refused.append((shown, "file not found"))
        elif info.type != pafs.FileType.File:
            found.refused.append((shown, "not a file"))
        elif kind == "images" and info.size is not None and info.size > limit:
            found.refused.append((shown, f"{info.size:,} bytes, over the {limit:,}-byte limit"))
        else:
            getattr(source, kind).append(info.path)


# --- the rows written ----------------------------------------------------------------------------


def output_schema(mode: str):
    """The Parquet schema of `mode`'s rows. Every column but `path` is null on an error row."""
    import pyarrow as pa

    if mode == "digit":
        result = [
            pa.field("digit", pa.int8()),  # the most probable class index (the digit itself for MNIST)
            pa.field("label", pa.string()),  # its class name
            pa.field("confidence", pa.float32()),  # its probability
            pa.field("probabilities", pa.list_(pa.float32())),  # every class's, in class order
        ]
    else:  # number: the reading of `mnist-edge read` (Predictor.read)
        box = pa.list_(pa.int32(), 4)  # x0, y0, x1, y1 in the input image's pixels (x1, y1 exclusive)
        top = pa.list_(pa.struct([("label", pa.string()), ("confidence", pa.float32())]))  # 3 best, best first
        reading = pa.struct(
            [("digit", pa.int8()), ("label", pa.string()), ("confidence", pa.float32()), ("top", top), ("box", box)]
        )
        result = [
            pa.field("text", pa.string()),
            pa.field("confidence", pa.float32()),
            pa.field("rejected", pa.bool_()),  # below the reader's min_confidence: a person should check it
            pa.field("digits", pa.list_(reading)),
        ]
    return pa.schema([pa.field("path", pa.string(), nullable=False), *result, pa.field("error", pa.string())])


def error_table(rows: list[tuple[str, str]], mode: str):
    """Rows that are only a path and an error, in `mode`'s schema."""
    import pyarrow as pa

    schema = output_schema(mode)
    columns = {name: pa.nulls(len(rows), schema.field(name).type) for name in schema.names}
    columns["path"] = pa.array([path for path, _ in rows], pa.string())
    columns["error"] = pa.array([error for _, error in rows], pa.string())
    return pa.table(columns, schema=schema)


def _reason(exc: Exception) -> str:
    """A preprocessing error without the runtime's "image bytes: " prefix (the row has its path)."""
    text = str(exc)
    return text.removeprefix("image bytes: ")


# --- the stages Ray runs -----------------------------------------------------------------------
# Module-level functions and classes: Ray ships them to its workers by name, so every node needs
# this version of mnist-edge installed (the `scale` extra), as it needs Ray.


def prepare_batch(batch: dict, *, spec, prefix: str, mode: str) -> dict:
    """Decode and prepare a batch of image bytes by the manifest input `spec`'s preprocessing (a
    task): path, the model input (zeros on an error row) and the error. In number mode the
    reading needs the model, so the bytes go on to the actors as they are."""
    import numpy as np

    from mnist_edge.runtime.errors import PreprocessError
    from mnist_edge.runtime.preprocess import preparer

    paths = np.array([prefix + str(p) for p in batch["path"]], dtype=object)
    if mode == "number":
        return {"path": paths, "bytes": batch["bytes"]}
    prepare = preparer(spec)
    inputs = np.zeros((len(paths), spec.height, spec.width), np.float32)
    errors = np.full(len(paths), "", dtype=object)  # "" for none: a column of only None loses its type
    for i, data in enumerate(batch["bytes"]):
        try:
            inputs[i] = prepare(data)
        except PreprocessError as exc:
            errors[i] = _reason(exc)
    return {"path": paths, "input": inputs, "error": errors}


def parquet_rows(table, *, prefix: str, image_column: str, named: bool):
    """A Parquet input's rows as (path, bytes): the file's own `path` column when it has one
    (`named`), else FILE#ROW_HASH (Ray's deterministic hash of the file and row position)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    images = table[image_column]
    if pa.types.is_struct(images.type):  # the Hugging Face datasets layout: {bytes, path}
        images = pc.struct_field(images, "bytes")
    if named:
        paths = pc.cast(table[PATH_COLUMN], pa.string())
    else:
        hashes = [f"{h:016x}" for h in table["row_hash"].to_pylist()]
        paths = [f"{prefix}{p}#{h}" for p, h in zip(table["path"].to_pylist(), hashes)]
    return pa.table({"path": pa.array(paths, pa.string()), "bytes": pc.cast(images, pa.binary())})


class PredictRows:
    """One actor of the pool: one Predictor (one onnxruntime thread) for every batch it is given."""

    def __init__(self, model: list, mode: str, min_confidence: float | None = None):
        import ray

        self.predictor = load_shipped(ray.get(model[0]))
        self.mode, self.min_confidence = mode, min_confidence
        self.schema = output_schema(mode)

    def __call__(self, batch: dict):
        return self.digits(batch) if self.mode == "digit" else self.numbers(batch)

    def digits(self, batch: dict):
        import numpy as np
        import pyarrow as pa

        errors = [str(e) or None for e in batch["error"]]
        good = np.array([e is None for e in errors], dtype=bool)
        count, classes = len(errors), len(self.predictor.class_names)
        probabilities = np.zeros((count, classes), np.float32)
        if good.any():
            probabilities[good] = self.predictor.predict_array(np.ascontiguousarray(batch["input"][good]))
        best = probabilities.argmax(axis=1)
        names = np.array(self.predictor.class_names, dtype=object)
        columns = {
            "path": pa.array(list(batch["path"]), pa.string()),
            "digit": pa.array(best.astype(np.int8), mask=~good),
            "label": pa.array(names[best], pa.string(), mask=~good),
            "confidence": pa.array(probabilities[np.arange(count), best], mask=~good),
            "probabilities": pa.array(list(probabilities), pa.list_(pa.float32()), mask=~good),
            "error": pa.array(errors, pa.string()),
        }
        return pa.table(columns, schema=self.schema)

    def numbers(self, batch: dict):
        """Each row's reading by Predictor.read (segmentation needs the model, so it runs here)."""
        import pyarrow as pa

        from mnist_edge.runtime.errors import PreprocessError

        rows = []
        for path, data in zip(batch["path"], batch["bytes"]):
            try:
                reading = self.predictor.read(data, min_confidence=self.min_confidence)
            except PreprocessError as exc:
                rows.append({"path": str(path), "error": _reason(exc)})
                continue
            digits = [
                {"digit": d.digit, "label": d.label, "confidence": d.confidence, "box": list(d.box),
                 "top": [{"label": name, "confidence": p} for name, p in d.top]}
                for d in reading.digits
            ]
            rows.append({"path": str(path), "text": reading.text, "confidence": reading.confidence,
                         "rejected": reading.rejected, "digits": digits, "error": None})
        return pa.Table.from_pylist(rows, schema=self.schema)


def ship_model(predictor) -> dict:
    """What an actor needs to run the same artifact on any node: the manifest's and the artifact's
    bytes, not a path on this machine. The driver's runtime.load has checked them (and the
    export's signature, when a public key is configured); each actor checks the artifact's size
    and sha256 against the manifest again."""
    from mnist_edge.runtime.integrity import read_checked, read_verified

    manifest, artifact = predictor.manifest, predictor.artifact
    shipped = {
        "manifest": json.dumps(manifest.to_dict()).encode(),  # the manifest load checked, not a re-read
        "file": artifact.file,
        "content": read_verified(manifest, artifact),  # refused here if the file changed since
        "signature": predictor.signature,
    }
    if predictor.has_reader:  # the number reader, checked (and its signature) here, shipped as bytes
        predictor.sequence_reader()
        reader = manifest.reader
        shipped["reader"] = read_checked(manifest.root / reader.file, reader.bytes, reader.sha256)
    return shipped


def load_shipped(model: dict):
    """A Predictor (one onnxruntime thread) from ship_model's bytes, with no file written."""
    import hashlib

    from mnist_edge.manifest import manifest_from_dict
    from mnist_edge.runtime.backends import open_session
    from mnist_edge.runtime.errors import IntegrityError
    from mnist_edge.runtime.predictor import Predictor, check_session

    manifest = manifest_from_dict(json.loads(model["manifest"]))
    artifact = manifest.artifact(model["file"])
    content = model["content"]
    if len(content) != artifact.bytes or hashlib.sha256(content).hexdigest() != artifact.sha256:
        raise IntegrityError(f"{artifact.file}: the bytes the actor received do not match the manifest's sha256")
    session = open_session(artifact.engine, content, threads=1, name=artifact.file, format=artifact.format)
    check_session(session, manifest, artifact)
    predictor = Predictor(manifest, artifact, session, signature=model["signature"], threads=1)
    if model.get("reader") is not None:
        predictor.sequence_reader(content=model["reader"])
    return predictor


# --- the dataset -------------------------------------------------------------------------------


def build_dataset(
    inputs: Inputs, predictor, *, mode: str, actors: int, batch_size: int, image_column: str,
    min_confidence: float | None = None,
):
    """The lazy Ray Dataset of output rows (pyarrow tables in `mode`'s schema) for `inputs`."""
    import ray
    import ray.data

    spec = predictor.manifest.input
    parts = []
    for source in inputs.sources.values():
        kwargs = {"fn_kwargs": {"spec": spec, "prefix": source.prefix, "mode": mode}, "batch_size": batch_size}
        if source.images:
            read = ray.data.read_binary_files(source.images, include_paths=True, filesystem=source.filesystem)
            parts.append(read.map_batches(prepare_batch, batch_format="numpy", **kwargs))
        if source.parquet:
            read = _read_parquet(source, image_column)
            kwargs["fn_kwargs"]["prefix"] = ""  # parquet_rows has named the rows already
            parts.append(read.map_batches(prepare_batch, batch_format="numpy", **kwargs))
    dataset = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    return dataset.map_batches(
        PredictRows,
        # The model's bytes go into the object store once, by reference (in a list, so Ray passes the
        # reference itself): a restarted actor fetches them again while the driver holds it.
        fn_constructor_kwargs={"model": [ray.put(ship_model(predictor))], "mode": mode, "min_confidence": min_confidence},
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=ACTOR_CPUS,
        batch_size=batch_size,
        batch_format="numpy",
    )


def _read_parquet(source: Source, image_column: str):
    """read_parquet of the source's files, as (path, bytes) rows. The first file's schema says
    where the bytes are and whether the rows have their own names; a file without the column is
    refused before the job starts."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.data

    first = source.parquet[0]
    try:
        schema = pq.read_schema(first, filesystem=source.filesystem)
    except (OSError, ValueError) as exc:
        raise BatchError(f"{source.prefix}{first}: not a readable Parquet file ({exc})") from exc
    if image_column not in schema.names:
        raise BatchError(
            f"{source.prefix}{first}: no column {image_column!r} of image bytes (columns: {', '.join(schema.names)}); "
            "name it with --image-column"
        )
    kind = schema.field(image_column).type
    if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or _is_image_struct(kind)):
        raise BatchError(
            f"{source.prefix}{first}: column {image_column!r} is {kind}, expected binary image bytes "
            "(or a struct with a 'bytes' field)"
        )
    named = PATH_COLUMN in schema.names and pa.types.is_string(schema.field(PATH_COLUMN).type)
    columns = [image_column, PATH_COLUMN] if named else [image_column, "path", "row_hash"]
    read = ray.data.read_parquet(
        source.parquet, filesystem=source.filesystem, columns=columns, include_paths=not named, include_row_hash=not named
    )
    fn_kwargs = {"prefix": source.prefix, "image_column": image_column, "named": named}
    return read.map_batches(parquet_rows, batch_format="pyarrow", fn_kwargs=fn_kwargs, batch_size=None)


def _is_image_struct(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0


# --- running it ----------------------------------------------------------------------------------


def connect(address: str | None):
    """Join the cluster at `address` (`ray://HOST:PORT`, `HOST:PORT` or `auto`), or start a
    private local Ray for this job (address None: never an existing cluster found by chance)."""
    import logging

    if address is None:
        # A private local Ray listens on the loopback only (Ray's single-machine mode; otherwise Ray
        # binds this machine's network address). Ray reads it when imported, so it is set first.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines would break the progress bar
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the command draws its own bar, one line
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    options = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        options.update(address="local", include_dashboard=False)
    else:
        options.update(address=address)
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        what = f"cannot join the Ray cluster at {address}" if address else "cannot start a local Ray"
        raise BatchError(f"{what}: {exc}") from exc


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def default_actors(cpus: int, mode: str = "digit") -> int:
    """Digit mode: one actor per PREPARE_PER_ACTOR cores, at least one (inference keeps up with
    that many cores preparing, docs/scale.md). Number mode: one per core, as reading a number
    (segmentation with the model) happens in the actors."""
    return max(1, cpus if mode == "number" else cpus // PREPARE_PER_ACTOR)


# --- the output folder ---------------------------------------------------------------------------


def is_batch_output(folder: Path) -> bool:
    """Was `folder` written by `mnist-edge batch` (its marker names this command)?"""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("command") == "mnist-edge batch"


def check_output(folder: Path) -> None:
    """Refuse an output folder the job may not fill: a file, or a non-empty folder this command
    did not write (its files would be mixed with ours, or lost when a later run replaces it)."""
    if folder.exists() and not folder.is_dir():
        raise BatchError(f"--output {folder}: is a file, expected a folder (new, empty, or an earlier batch output)")
    if folder.is_dir() and any(folder.iterdir()) and not is_batch_output(folder):
        raise BatchError(
            f"--output {folder}: not empty and not written by mnist-edge batch (no {MARKER}); "
            "pass a new or empty folder, nothing in this one is touched"
        )
    _remove_leftovers(folder)


def _staging_name(folder: Path, pid: int) -> str:
    return f".{folder.name}.batch-{pid}"


def _remove_leftovers(folder: Path) -> None:
    """Staging folders of runs that were killed (their process is gone)."""
    for leftover in folder.parent.glob(_staging_name(folder, 0).replace("-0", "-*")):
        pid = leftover.name.rsplit("-", 1)[1]
        if pid.isdigit() and not process_alive(int(pid)) and leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def publish(staging: Path, folder: Path) -> None:
    """Put the finished output in place: an earlier batch output is replaced whole (renamed
    aside, then removed), an empty folder is filled, a missing one created."""
    check_output(folder)  # again: the folder may have changed while the job ran
    if not folder.exists():
        os.replace(staging, folder)
    elif is_batch_output(folder):
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:  # empty: keep the user's folder itself, move the files in (the marker last)
        for item in sorted(staging.iterdir(), key=lambda p: p.name == MARKER):
            os.replace(item, folder / item.name)
        staging.rmdir()


class ShardWriter:
    """Rows into part-00000.parquet, part-00001.parquet, ... of SHARD_ROWS rows each."""

    def __init__(self, folder: Path, schema, shard_rows: int = SHARD_ROWS):
        self.folder, self.schema, self.shard_rows = folder, schema, shard_rows
        self.writer, self.in_shard, self.shards = None, 0, []

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        while table.num_rows:
            if self.writer is None:
                self.shards.append(f"part-{len(self.shards):05d}.parquet")
                self.writer = pq.ParquetWriter(self.folder / self.shards[-1], self.schema)
            take = min(table.num_rows, self.shard_rows - self.in_shard)
            self.writer.write_table(table.slice(0, take).cast(self.schema))
            table, self.in_shard = table.slice(take), self.in_shard + take
            if self.in_shard == self.shard_rows:
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer, self.in_shard = None, 0


# --- the job -------------------------------------------------------------------------------------


@dataclass
class Summary:
    rows: int = 0
    errors: int = 0
    seconds: float = 0.0  # from the cluster being ready to the last row written
    startup_seconds: float = 0.0  # starting or joining Ray
    shards: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.rows:,} rows, {self.errors:,} errors, {self.seconds:.1f} s, {self.images_per_second:,.0f} images/s "
            f"(Ray start-up {self.startup_seconds:.1f} s, not counted)"
        )


@dataclass(frozen=True)
class Job:
    model: Path  # an export folder or its manifest
    inputs: tuple[str, ...]
    output: Path
    mode: str = "digit"
    address: str | None = None  # None: a private local Ray
    actors: int | None = None  # None: default_actors(the cluster's CPUs)
    batch_size: int = DEFAULT_BATCH
    image_column: str = IMAGE_COLUMN
    engine: str = formats.DEFAULT_ENGINE
    precision: str = formats.DEFAULT_PRECISION
    min_confidence: float | None = None  # number mode: below it a reading is `rejected` (None: the reader's default)


def run(job: Job, on_rows: Callable[[int, int], None] = lambda done, total: None) -> Summary:
    """Run `job`: every input a row in Parquet shards in job.output. `on_rows(done, total)`
    is told as rows arrive (total: the number of inputs known once listed, files for Parquet
    inputs counted as one until read)."""
    from mnist_edge import runtime

    if job.mode not in MODES:
        raise BatchError(f"unknown mode {job.mode!r}; choose from {', '.join(MODES)}")
    output = Path(job.output).absolute()
    check_output(output)
    predictor = runtime.load(job.model, engine=job.engine, precision=job.precision, threads=1)
    inputs = list_inputs(job.inputs)
    if not inputs.sources and not inputs.refused:
        raise BatchError(f"no images or Parquet files found in {', '.join(job.inputs)}")
    staging = output.parent / _staging_name(output, os.getpid())
    staging.mkdir(parents=True)
    try:
        summary = _run_in_ray(job, inputs, predictor, staging, on_rows)
        _write_marker(staging, job, summary)
        publish(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return summary


def _run_in_ray(job: Job, inputs: Inputs, predictor, staging: Path, on_rows) -> Summary:
    summary = Summary()
    writer = ShardWriter(staging, output_schema(job.mode))
    total = sum(len(s.images) for s in inputs.sources.values()) + len(inputs.refused)
    total += sum(len(s.parquet) for s in inputs.sources.values())  # a Parquet file counts once until read
    if inputs.refused:
        _count(summary, writer, error_table(inputs.refused, job.mode))
        on_rows(summary.rows, max(total, summary.rows))
    started = time.perf_counter()
    if inputs.sources:
        connect(job.address)
        try:
            summary.startup_seconds = time.perf_counter() - started
            started = time.perf_counter()
            actors = job.actors or default_actors(cluster_cpus(), job.mode)
            dataset = build_dataset(
                inputs, predictor, mode=job.mode, actors=actors, batch_size=job.batch_size,
                image_column=job.image_column, min_confidence=job.min_confidence,
            )
            for table in _ray_errors_as_one_line(dataset.iter_batches(batch_size=None, batch_format="pyarrow")):
                _count(summary, writer, table)
                on_rows(summary.rows, max(total, summary.rows))
        finally:
            import ray

            ray.shutdown()
    writer.close()
    summary.seconds = time.perf_counter() - started
    summary.shards = writer.shards
    return summary


def _ray_errors_as_one_line(batches: Iterator) -> Iterator:
    """The batches; a failure inside Ray (a worker without mnist-edge installed, a task out of
    retries) becomes a BatchError naming the first exception in Ray's report, not its pages."""
    import re

    import ray.exceptions

    try:
        yield from batches
    except ray.exceptions.RayError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
        reason = (raised or lines or [type(exc).__name__])[0]
        raise BatchError(f"the Ray job failed: {reason}") from exc


def _count(summary: Summary, writer: ShardWriter, table) -> None:
    writer.write(table)
    summary.rows += table.num_rows
    summary.errors += table.num_rows - table["error"].null_count


def _write_marker(staging: Path, job: Job, summary: Summary) -> None:
    marker = {
        "command": "mnist-edge batch",
        "version": __version__,
        "model": str(Path(job.model).absolute()),
        "mode": job.mode,
        "inputs": list(job.inputs),
        "rows": summary.rows,
        "errors": summary.errors,
        "seconds": round(summary.seconds, 3),
        "startup_seconds": round(summary.startup_seconds, 3),
        "shards": summary.shards,
    }
    atomic_write_text(staging / MARKER, json.dumps(marker, indent=2) + "\n")


def read_rows(folder: str | os.PathLike):
    """Every row of a batch output folder as one pyarrow Table (for tests and small outputs)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    shards = json.loads((folder / MARKER).read_text(encoding="utf-8"))["shards"]
    import pyarrow as pa

    tables = [pq.read_table(folder / shard) for shard in shards]
    return pa.concat_tables(tables) if tables else None
