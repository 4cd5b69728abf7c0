"""`mnist-edge bench`: how fast and how big each exported artifact is, measured, printed as
tables and written to bench.json. Timings live here, never in unit tests.

For every artifact (and the Keras model when TensorFlow is installed): single-image latency
p50/p99, batch throughput, cold start of a fresh process, size on disk. Also the overhead of
`Predictor.predict_array` over a bare `InferenceSession.run`, the cold start of the
`mnist-edge predict` command, and the install footprint of the runtime vs the training venv.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LATENCY_RUNS = 1000
WARMUP_RUNS = 50
THROUGHPUT_BATCH = 256
THROUGHPUT_SECONDS = 2.0
COLD_START_RUNS = 5


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_calls(fn, runs: int = LATENCY_RUNS, warmup: int = WARMUP_RUNS) -> tuple[float, float]:
    """p50 and p99 of `fn()` in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return _percentiles(samples)


def throughput(fn, batch: int, seconds: float = THROUGHPUT_SECONDS) -> float:
    """Images per second of `fn()` processing `batch` images per call."""
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * batch / (time.perf_counter() - start)


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


def bench_keras(model_dir: Path, images: np.ndarray, digit: np.ndarray) -> dict | None:
    """The same figures for the Keras model, when TensorFlow is installed."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.models.load_model(model_dir / "model.keras", compile=False)
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
        "precision": "fp32",
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


def run_bench(
    model_root: Path,
    *,
    data_dir: str | None = None,
    threads: int = 1,
    runtime_venv: Path | None = None,
    train_venv: Path | None = None,
    out: Path | None = Path("bench.json"),
    stream=sys.stdout,
) -> dict:
    from mnist_edge.data import load_dataset
    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.manifest import find_exports

    exports = find_exports(model_root)
    if not exports:
        raise MnistEdgeError(f"no export under {model_root}; run `mnist-edge pipeline` first")
    dataset = load_dataset(data_dir, download=False)
    images = dataset.test.images[:THROUGHPUT_BATCH].astype(np.float32) / 255

    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "threads": threads,
        "artifacts": [],
        "overhead": [],
        "cli_cold_start": [],
        "footprint": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        digit_file = Path(tmp) / "digit.png"
        from PIL import Image

        Image.fromarray(255 - dataset.test.images[0]).resize((200, 200)).save(digit_file)
        for export_dir in exports:
            print(f"benchmarking {export_dir} ...", file=stream, flush=True)
            results["artifacts"] += bench_artifacts(export_dir, images, digit_file, threads)
            keras_row = bench_keras(export_dir.parent, images, dataset.test.images[0].astype(np.float32) / 255)
            if keras_row:
                results["artifacts"].append(keras_row)
            results["overhead"].append(bench_overhead(export_dir, images, threads))
            mnist_edge = Path(sys.executable).with_name("mnist-edge")
            commands = {"this venv": [str(mnist_edge)]} if mnist_edge.exists() else {}
            if runtime_venv and (Path(runtime_venv) / "bin" / "mnist-edge").exists():
                commands["runtime-only venv"] = [str(Path(runtime_venv) / "bin" / "mnist-edge")]
            for where, command in commands.items():
                seconds = cold_start(command + ["predict", "--model", str(export_dir), str(digit_file)])
                results["cli_cold_start"].append({"model": export_dir.parent.name, "venv": where, "seconds": round(seconds, 3)})
    for name, venv in (("runtime", runtime_venv), ("train", train_venv)):
        if venv and Path(venv).is_dir():
            results["footprint"][name] = folder_bytes(Path(venv))
    if len(results["footprint"]) == 2:
        results["footprint"]["ratio"] = round(results["footprint"]["runtime"] / results["footprint"]["train"], 4)

    print(render_tables(results), file=stream)
    if out:
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}", file=stream)
    return results


def render_tables(results: dict) -> str:
    lines = [
        f"\nthreads={results['threads']}, {results['machine']['cpu_count']} CPUs, Python {results['machine']['python']}",
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
    return "\n".join(lines)
