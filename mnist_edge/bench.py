"""`mnist-edge bench`: how fast and how big each exported artifact is, measured, printed as
tables and written to bench.json. Timings live here, never in unit tests.

For every artifact (and the Keras model when TensorFlow is installed): single-image latency
p50/p99, batch throughput, cold start of a fresh process, size on disk. Also the overhead of
`Predictor.predict_array` over a bare `InferenceSession.run`, the cold start of the
`mnist-edge predict` command, and the install footprint of the runtime vs the training venv.

Preprocessing by input kind (a 28x28 array, a 400x400 canvas drawing, a 1000x1000 scan, a 12 MP
JPEG photo, all made from one MNIST test digit) next to inference, for the current
implementation and the previous one (bench/preprocess_baseline.py, frozen, in the source
checkout), timed in the same run; and `mnist-edge predict` on a folder of PNG files with one
worker process and with every core.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.timing import LATENCY_RUNS, WARMUP_RUNS, percentiles, throughput, time_calls  # noqa: F401

THROUGHPUT_BATCH = 256
COLD_START_RUNS = 5
# Preprocessing: timed runs per input kind (the photo is slow in the previous implementation).
PREPROCESS_RUNS = {"28x28 array": 300, "400x400 drawing": 100, "1000x1000 scan": 30, "12 MP JPEG photo": 7}
PREPROCESS_WARMUP = 2
FOLDER_FILES = 2000  # PNG files in the folder-throughput run
SECTIONS = ("artifacts", "preprocessing", "folder")  # what `mnist-edge bench --only` may pick
BASELINE_PREPROCESS = Path(__file__).resolve().parents[1] / "bench" / "preprocess_baseline.py"


def _run_seconds(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return elapsed


def cold_start(command: list[str], runs: int = COLD_START_RUNS) -> float:
    """Median wall-clock seconds of a fresh process, first run discarded (disk cache)."""
    _run_seconds(command)
    return statistics.median(_run_seconds(command) for _ in range(runs))


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink())


def bench_artifacts(export_dir: Path, images: np.ndarray, digit_file: Path, threads: int) -> list[dict]:
    from mnist_edge import runtime
    from mnist_edge.manifest import read_manifest

    manifest = read_manifest(export_dir)
    single = images[:1]
    batch = images[:THROUGHPUT_BATCH]
    rows = []
    for artifact in manifest.artifacts:
        engine = artifact.engine
        try:
            predictor = runtime.load(export_dir, file=artifact.file, threads=threads)
        except Exception as exc:  # LiteRT missing, for one: say so in the table
            rows.append({"model": manifest.name, "artifact": artifact.file, "error": str(exc)})
            continue
        p50, p99 = time_calls(lambda: predictor.predict_array(single))
        rate = throughput(lambda: predictor.predict_array(batch), len(batch))
        code = (
            "from mnist_edge import runtime; "
            f"p = runtime.load({str(export_dir)!r}, file={artifact.file!r}); p.predict({str(digit_file)!r})"
        )
        rows.append(
            {
                "model": manifest.name,
                "artifact": artifact.file,
                "engine": engine,
                "precision": artifact.precision,
                "bytes": artifact.bytes,
                "test_accuracy": artifact.test_accuracy,
                "latency_p50_ms": round(p50, 4),
                "latency_p99_ms": round(p99, 4),
                "throughput_per_s": round(rate),
                "cold_start_s": round(cold_start([sys.executable, "-c", code]), 3),
            }
        )
    return rows


def load_keras_model(model_dir: Path):
    """The Keras model, TensorFlow imported without its absl and oneDNN start-up lines on the terminal."""
    from mnist_edge.errors import require

    keras = require("keras")
    return keras.models.load_model(model_dir / "model.keras", compile=False)


def bench_keras(model_dir: Path, images: np.ndarray, digit: np.ndarray) -> dict | None:
    """The same figures for the Keras model, when TensorFlow is installed."""
    from mnist_edge import formats
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return None
    model = load_keras_model(model_dir)
    single, batch = images[:1], images[:THROUGHPUT_BATCH]
    p50, p99 = time_calls(lambda: model(single, training=False), runs=300, warmup=20)
    rate = throughput(lambda: model.predict_on_batch(batch), len(batch))
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "digit.npy", digit)
        code = (
            "import os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'; import numpy as np, keras; "
            f"m = keras.models.load_model({str(model_dir / 'model.keras')!r}, compile=False); "
            f"m(np.load({str(Path(tmp) / 'digit.npy')!r})[None], training=False)"
        )
        cold = cold_start([sys.executable, "-c", code], runs=3)
    return {
        "model": model_dir.name,
        "artifact": "model.keras",
        "engine": "keras",
        "precision": formats.SOURCE_PRECISION,
        "bytes": (model_dir / "model.keras").stat().st_size,
        "latency_p50_ms": round(p50, 4),
        "latency_p99_ms": round(p99, 4),
        "throughput_per_s": round(rate),
        "cold_start_s": round(cold, 3),
    }


def bench_overhead(export_dir: Path, images: np.ndarray, threads: int) -> dict:
    """Predictor.predict_array against a bare InferenceSession.run with the same options."""
    import onnxruntime as ort

    from mnist_edge import runtime
    from mnist_edge.runtime.backends import onnx_session_options
    from mnist_edge.runtime.integrity import read_verified

    predictor = runtime.load(export_dir, threads=threads)
    verified = read_verified(predictor.manifest, predictor.artifact)
    bare = ort.InferenceSession(verified, sess_options=onnx_session_options(threads), providers=["CPUExecutionProvider"])
    single = images[:1]
    feed = {bare.get_inputs()[0].name: single}
    bare_p50, _ = time_calls(lambda: bare.run(None, feed), runs=3000)
    ours_p50, _ = time_calls(lambda: predictor.predict_array(single), runs=3000)
    return {
        "model": export_dir.parent.name,
        "bare_session_p50_ms": round(bare_p50, 4),
        "predict_array_p50_ms": round(ours_p50, 4),
        "ratio": round(ours_p50 / bare_p50, 3),
    }


# --- preprocessing and folder throughput ---------------------------------------------------------


def load_baseline_preprocess(path: Path = BASELINE_PREPROCESS):
    """The previous preprocessing module (a frozen copy in the source checkout), or None where
    there is none (an installed package)."""
    if not Path(path).is_file():
        return None
    spec = importlib.util.spec_from_file_location("mnist_edge_preprocess_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def placed_ink(digit: np.ndarray, shape: tuple[int, int], side: int, rng: np.random.Generator) -> np.ndarray:
    """Ink in [0, 1] on a page of `shape` (height, width): the digit scaled to side x side at a random place."""
    from PIL import Image

    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
    height, width = shape
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    ink = np.zeros(shape, np.float32)
    ink[top : top + side, left : left + side] = np.clip(big, 0, 1)
    return ink


def _encoded(array: np.ndarray, format: str, **options) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8)).save(buffer, format, **options)
    return buffer.getvalue()


def drawing_png(digit: np.ndarray, side: int = 400, seed: int = 0) -> bytes:
    """A canvas export: the digit drawn in black on a transparent side x side canvas, so that the
    alpha channel is the ink; PNG."""
    ink = placed_ink(digit, (side, side), side * 3 // 4, np.random.default_rng(seed))
    rgba = np.zeros((side, side, 4), np.float32)
    rgba[..., 3] = ink * 255
    return _encoded(rgba, "PNG")


def scan_png(digit: np.ndarray, side: int = 1000, seed: int = 0) -> bytes:
    """A scan: dark ink on white paper, sensor noise, light falling off across the page; grey PNG."""
    rng = np.random.default_rng(seed)
    ink = placed_ink(digit, (side, side), side * 3 // 5, rng)
    light = np.linspace(240, 215, side, dtype=np.float32)[None, :]
    return _encoded(light * (1 - 0.85 * ink) + 4 * rng.standard_normal((side, side), dtype=np.float32), "PNG")


def photo_jpeg(digit: np.ndarray, size: tuple[int, int] = (3000, 4000), seed: int = 0, quality: int = 90) -> bytes:
    """A phone photo, 12 MP by default (size is height, width): the digit dark on paper that fills
    the frame, the light uneven across it, sensor noise, a warm tint; RGB JPEG."""
    rng = np.random.default_rng(seed)
    height, width = size
    ink = placed_ink(digit, size, int(min(size) * rng.uniform(0.4, 0.8)), rng)
    light = np.linspace(235, 160, width, dtype=np.float32)[None, :] * np.linspace(1, 0.85, height, dtype=np.float32)[:, None]
    grey = light * (1 - 0.8 * ink) + 3 * rng.standard_normal(size, dtype=np.float32)
    return _encoded(np.stack([grey, grey * 0.96, grey * 0.88], axis=-1), "JPEG", quality=quality)


def preprocess_inputs(digit: np.ndarray) -> dict[str, np.ndarray | bytes]:
    """The input kinds of the preprocessing table, made from one MNIST test digit (uint8 28x28)."""
    return {
        "28x28 array": digit,
        "400x400 drawing": drawing_png(digit),
        "1000x1000 scan": scan_png(digit),
        "12 MP JPEG photo": photo_jpeg(digit),
    }


def interleaved_ms(calls: dict, runs: int, warmup: int = PREPROCESS_WARMUP) -> dict[str, float]:
    """Median milliseconds of each call, the calls taking turns run after run, so that a busy
    machine slows them all alike: `<name>` is the calling thread's CPU time (what the work costs,
    and its wall-clock time on a quiet machine), `<name>_wall` the wall-clock time."""
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[int]] = {key: [] for name in calls for key in (name, f"{name}_wall")}
    for _ in range(runs):
        for name, fn in calls.items():
            cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
            fn()
            samples[f"{name}_wall"].append(time.perf_counter_ns() - wall)
            samples[name].append(time.thread_time_ns() - cpu)
    return {key: round(statistics.median(ns) / 1e6, 3) for key, ns in samples.items()}


def _read_and_predict(predictor, preprocess, source):
    """Read, preprocess (with the `preprocess` module given) and predict one image."""
    return predictor.to_prediction(predictor.predict_array(preprocess.to_mnist(source)[np.newaxis])[0])


def bench_preprocessing(predictor, digit: np.ndarray, baseline=None, runs: dict[str, int] = PREPROCESS_RUNS) -> list[dict]:
    """For each input kind, median milliseconds of decoding, of preprocessing (decoding included)
    and of read + preprocess + predict, for the current implementation and, when `baseline` (the
    previous preprocess module) is given, the previous one, timed in turns; and inference alone."""
    from mnist_edge.runtime import preprocess

    ready = preprocess.to_mnist(digit)[np.newaxis]
    inference = interleaved_ms({"inference_ms": lambda: predictor.predict_array(ready)}, LATENCY_RUNS)
    implementations = {"new": preprocess, **({"previous": baseline} if baseline else {})}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, source in preprocess_inputs(digit).items():
            if isinstance(source, bytes):  # read from a file, as `mnist-edge predict` does
                path = Path(tmp) / ("input.jpg" if "JPEG" in kind else "input.png")
                path.write_bytes(source)
                source = path
            calls = {}
            for name, module in implementations.items():
                if isinstance(source, Path):
                    # The current decoder reduces large photos while decoding; the previous one did not.
                    options = {"work_side": module.WORK_SIDE} if hasattr(module, "WORK_SIDE") else {}
                    calls[f"{name}_decode_ms"] = functools.partial(module.load_image, source, **options)
                calls[f"{name}_preprocess_ms"] = functools.partial(module.to_mnist, source)
                calls[f"{name}_end_to_end_ms"] = functools.partial(_read_and_predict, predictor, module, source)
            rows.append({"input": kind, "runs": runs[kind], **inference, **interleaved_ms(calls, runs[kind])})
    return rows


def bench_folder(export_dir: Path, digits: np.ndarray, files: int = FOLDER_FILES, baseline=None) -> list[dict]:
    """Images per second on a folder of `files` PNGs (MNIST test digits as 200x200 dark-on-white
    images): `mnist-edge predict` with one process and with every core (process start and model
    load included), and in-process loops of the current and previous preprocessing with one
    batched inference call (no start-up). With the wall-clock seconds, the CPU seconds of all the
    processes: on a busy machine parallel runs cannot show their speed, their CPU cost still shows."""
    import resource

    from PIL import Image

    from mnist_edge import runtime
    from mnist_edge.runtime.pool import available_cores
    from mnist_edge.runtime import preprocess

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits"
        folder.mkdir()
        for i in range(files):
            Image.fromarray(255 - digits[i % len(digits)]).resize((200, 200)).save(folder / f"{i:05d}.png")
        paths = sorted(folder.iterdir())
        predictor = runtime.load(export_dir)
        loops = {"current preprocessing, in-process loop": preprocess}
        if baseline:
            loops = {"previous preprocessing, in-process loop": baseline, **loops}
        for how, module in loops.items():
            wall, cpu = time.perf_counter(), time.process_time()
            predictor.predict_array(np.stack([module.to_mnist(path) for path in paths]))
            rows.append({"how": how, "processes": 1, "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu})
        for jobs in sorted({1, available_cores()}):
            command = [sys.executable, "-m", "mnist_edge", "predict", "--model", str(export_dir), "--json", "--jobs", str(jobs), str(folder)]
            wall, cpu = time.perf_counter(), children_cpu()
            result = subprocess.run(command, capture_output=True, text=True)
            seconds, cpu_seconds = time.perf_counter() - wall, children_cpu() - cpu
            if result.returncode != 0 or len(result.stdout.splitlines()) != files:
                raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}")
            rows.append({"how": f"`mnist-edge predict --jobs {jobs}`", "processes": jobs, "seconds": seconds, "cpu_seconds": cpu_seconds})
    for row in rows:
        row["files"] = files
        row["images_per_s"] = round(files / row["seconds"])
        row["seconds"], row["cpu_seconds"] = round(row["seconds"], 2), round(row["cpu_seconds"], 2)
    return rows


def bench_data(export_dir: Path, data_dir: str | None):
    """The test set the export's manifest records (found without --data-dir when its fingerprint
    matches), else the usual data sources: the figures here are timings, any MNIST-format data do."""
    from mnist_edge.data import DataError, load_dataset, load_measured_on
    from mnist_edge.manifest import read_manifest

    recorded = read_manifest(export_dir).test_set
    try:
        return load_measured_on(recorded.source, recorded.sha256, data_dir)
    except DataError:
        return load_dataset(data_dir, download=False)
def main_export(exports: list[Path]) -> Path:
    """The export whose inference is timed next to preprocessing: the most accurate model by its
    manifest (the one worth its cost), the first one on a tie."""
    from mnist_edge.manifest import read_manifest

    accuracies = [read_manifest(e).model.test_accuracy for e in exports]
    return exports[accuracies.index(max(accuracies))]


def preprocessing_section(export_dir: Path, dataset, threads: int, baseline, stream) -> dict:
    from mnist_edge import runtime

    print(f"benchmarking preprocessing with {export_dir} ...", file=stream, flush=True)
    predictor = runtime.load(export_dir, threads=threads)
    return {
        "model": f"{export_dir.parent.name}/{predictor.artifact.file}",
        "baseline": str(BASELINE_PREPROCESS) if baseline else None,
        "rows": bench_preprocessing(predictor, dataset.test.images[0], baseline),
    }


def cli_commands(runtime_venv: Path | None) -> dict[str, list[str]]:
    """The `mnist-edge` commands whose cold start is timed: this venv's, and the runtime-only one's."""
    mnist_edge = Path(sys.executable).with_name("mnist-edge")
    commands = {"this venv": [str(mnist_edge)]} if mnist_edge.exists() else {}
    if runtime_venv and (Path(runtime_venv) / "bin" / "mnist-edge").exists():
        commands["runtime-only venv"] = [str(Path(runtime_venv) / "bin" / "mnist-edge")]
    return commands


def artifacts_section(exports: list[Path], dataset, threads: int, runtime_venv: Path | None, results: dict, stream) -> None:
    """Every artifact's latency, throughput, cold start and size, the Keras model's, the runtime's
    overhead and the CLI's cold start, added to `results`."""
    from PIL import Image

    images = dataset.test.images[:THROUGHPUT_BATCH].astype(np.float32) / 255
    with tempfile.TemporaryDirectory() as tmp:
        digit_file = Path(tmp) / "digit.png"
        Image.fromarray(255 - dataset.test.images[0]).resize((200, 200)).save(digit_file)
        for export_dir in exports:
            print(f"benchmarking {export_dir} ...", file=stream, flush=True)
            results["artifacts"] += bench_artifacts(export_dir, images, digit_file, threads)
            keras_row = bench_keras(export_dir.parent, images, dataset.test.images[0].astype(np.float32) / 255)
            if keras_row:
                results["artifacts"].append(keras_row)
            results["overhead"].append(bench_overhead(export_dir, images, threads))
            for where, command in cli_commands(runtime_venv).items():
                seconds = cold_start(command + ["predict", "--model", str(export_dir), str(digit_file)])
                results["cli_cold_start"].append({"model": export_dir.parent.name, "venv": where, "seconds": round(seconds, 3)})


def footprint_section(runtime_venv: Path | None, train_venv: Path | None) -> dict:
    footprint = {}
    for name, venv in (("runtime", runtime_venv), ("train", train_venv)):
        if venv and Path(venv).is_dir():
            footprint[name] = folder_bytes(Path(venv))
    # A venv that reaches its packages through a .pth file (bench/first_prediction.py's clones)
    # is nearly empty on disk: no ratio then.
    if len(footprint) == 2 and footprint["train"] > footprint["runtime"]:
        footprint["ratio"] = round(footprint["runtime"] / footprint["train"], 4)
    return footprint


def run_bench(
    model_root: Path,
    *,
    data_dir: str | None = None,
    threads: int = 1,
    runtime_venv: Path | None = None,
    train_venv: Path | None = None,
    out: Path | None = Path("bench.json"),
    sections: tuple[str, ...] = SECTIONS,
    folder_files: int = FOLDER_FILES,
    stream: TextIO | None = None,
) -> dict:
    """Run the `sections` (all by default) and print their tables."""
    stream = stream or sys.stdout
    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.manifest import find_exports

    exports = find_exports(model_root)
    if not exports:
        raise MnistEdgeError(f"no export under {model_root}; run `mnist-edge pipeline` first")
    dataset = bench_data(exports[0], data_dir)
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "threads": threads,
        "artifacts": [],
        "overhead": [],
        "cli_cold_start": [],
        "footprint": {},
        "preprocessing": {},
        "folder": [],
    }
    main = main_export(exports)
    baseline = load_baseline_preprocess()
    if "preprocessing" in sections:
        results["preprocessing"] = preprocessing_section(main, dataset, threads, baseline, stream)
    if "folder" in sections:
        print(f"benchmarking `mnist-edge predict` on {folder_files} files ...", file=stream, flush=True)
        results["folder"] = bench_folder(main, dataset.test.images, folder_files, baseline)
    if "artifacts" in sections:
        artifacts_section(exports, dataset, threads, runtime_venv, results, stream)
    results["footprint"] = footprint_section(runtime_venv, train_venv)

    print(render_tables(results), file=stream)
    if out:
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}", file=stream)
    return results


def render_tables(results: dict) -> str:
    lines = [f"\nthreads={results['threads']}, {results['machine']['cpu_count']} CPUs, Python {results['machine']['python']}"]
    if results["artifacts"]:
        lines += [
            "",
            "| model | artifact | engine | size KiB | test acc | p50 ms | p99 ms | images/s (batch 256) | cold start s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for r in results["artifacts"]:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['artifact']} | - | - | - | - | - | - | {r['error']} |")
            continue
        acc = f"{r['test_accuracy']:.2%}" if r.get("test_accuracy") is not None else "-"
        lines.append(
            f"| {r['model']} | {r['artifact']} | {r['engine']} | {r['bytes'] / 1024:,.1f} | {acc} | "
            f"{r['latency_p50_ms']:.3f} | {r['latency_p99_ms']:.3f} | {r['throughput_per_s']:,} | {r['cold_start_s']:.2f} |"
        )
    if results["overhead"]:
        lines += ["", "| model | bare InferenceSession.run p50 ms | Predictor.predict_array p50 ms | ratio |", "|---|---|---|---|"]
    lines += [
        f"| {o['model']} | {o['bare_session_p50_ms']:.4f} | {o['predict_array_p50_ms']:.4f} | {o['ratio']:.2f}x |"
        for o in results["overhead"]
    ]
    if results["cli_cold_start"]:
        lines += ["", "| model | `mnist-edge predict` one image, cold | seconds |", "|---|---|---|"]
        lines += [f"| {c['model']} | {c['venv']} | {c['seconds']:.2f} |" for c in results["cli_cold_start"]]
    fp = results["footprint"]
    if fp:
        lines += ["", "| install | size on disk |", "|---|---|"]
        lines += [f"| {name} venv | {size / 1e6:,.0f} MB |" for name, size in fp.items() if name != "ratio"]
        if "ratio" in fp:
            lines.append(f"| runtime / train | {fp['ratio']:.1%} (1/{1 / fp['ratio']:.1f}) |")
    if results["preprocessing"]:
        lines += render_preprocessing(results["preprocessing"])
    if results["folder"]:
        lines += [
            "",
            "| a folder of PNG files | processes | files | seconds | images/s | CPU seconds, all processes |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['how']} | {r['processes']} | {r['files']:,} | {r['seconds']:.2f} | {r['images_per_s']:,} | {r['cpu_seconds']:.2f} |"
            for r in results["folder"]
        ]
    return "\n".join(lines)


def render_preprocessing(section: dict) -> list[str]:
    """The preprocessing table: median ms per input kind, previous and current side by side."""

    def ms(row: dict, key: str) -> str:
        return f"{row[key]:.2f}" if key in row else "-"

    def ratio(row: dict, what: str) -> str:
        if f"previous_{what}_ms" not in row:
            return "-"
        return f"{row[f'previous_{what}_ms'] / row[f'new_{what}_ms']:.1f}x"

    inference = section["rows"][0]["inference_ms"]
    lines = [
        "",
        f"Preprocessing, median CPU ms of the calling thread (wall-clock medians: *_wall in the JSON); "
        f"inference alone, {section['model']}: {inference:.3f} ms. "
        + ("Previous: bench/preprocess_baseline.py, timed in turns with the current one." if section["baseline"] else "No previous implementation here (not a source checkout)."),
        "",
        "| input | decode: previous | decode: now | preprocess (with decode): previous | now | speed-up "
        "| now, beyond decoding | file to prediction: previous | now | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["rows"]:
        beyond = row["new_preprocess_ms"] - row.get("new_decode_ms", 0)
        lines.append(
            f"| {row['input']} | {ms(row, 'previous_decode_ms')} | {ms(row, 'new_decode_ms')} | "
            f"{ms(row, 'previous_preprocess_ms')} | {ms(row, 'new_preprocess_ms')} | {ratio(row, 'preprocess')} | "
            f"{beyond:.2f} | {ms(row, 'previous_end_to_end_ms')} | {ms(row, 'new_end_to_end_ms')} | {ratio(row, 'end_to_end')} |"
        )
    return lines
