"""The main job: train both models (unless already trained), export them, verify the exports,
and print one summary table. `make run` calls it before starting the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_edge.files import sha256_file
from mnist_edge.manifest import EXPORT_DIR, Manifest, ManifestError, read_manifest


def _export_is_current(model_dir: Path) -> bool:
    """An export made from exactly this model.keras, with every artifact it lists still present."""
    from mnist_edge.trainer.record import MODEL_FILE

    if not (model_dir / MODEL_FILE).is_file():
        return False
    try:
        manifest = read_manifest(model_dir / EXPORT_DIR)
    except ManifestError:
        return False
    return manifest.model.sha256 == sha256_file(model_dir / MODEL_FILE) and all(
        manifest.path_of(a).is_file() for a in manifest.artifacts
    )


STATUS_FILE = "pipeline-status.json"  # in the artifacts folder while a pipeline runs: what is still to come
SERVE_TIMEOUT = 120  # seconds the demo may take to answer after it is started
COMPARED = ("mlp", "cnn")  # compare.md is written when both are trained and exported


@dataclass(frozen=True)
class Serve:
    """Where `run_pipeline(serve=...)` serves the demo as soon as the first model is published."""

    host: str = "127.0.0.1"
    port: int = 7860


class PipelineStatus:
    """artifacts/pipeline-status.json: the models still to come, read by the demo to tell visitors
    that a better model is on its way. Removed when the pipeline ends, however it ends."""

    def __init__(self, out: Path, models: tuple[str, ...]):
        self.path = out / STATUS_FILE
        self.pending = list(models)
        self.current: str | None = None
        self.stage = ""

    def update(self, model: str, stage: str) -> None:
        self.current, self.stage = model, stage
        self._write()

    def done(self, model: str) -> None:
        self.pending.remove(model)
        self.current, self.stage = None, ""
        self._write()

    def _write(self) -> None:
        import json

        from mnist_edge.files import atomic_write_text

        status = {"pid": os.getpid(), "pending": self.pending, "current": self.current, "stage": self.stage}
        atomic_write_text(self.path, json.dumps(status) + "\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def run_pipeline(
    out: str | os.PathLike = "artifacts",
    *,
    models: tuple[str, ...] = ("mlp", "cnn"),
    retrain: bool = False,
    data_dir: str | os.PathLike | None = None,
    seed: int = 42,
    serve: Serve | None = None,
    stream=sys.stdout,
) -> list["SummaryRow"]:
    """Train, export and verify each model, in order; return one summary row per model.

    With `serve`, the demo starts as soon as the first model is published (it picks up the later
    ones by itself) and the pipeline waits for it once everything is done, until Ctrl+C."""
    from mnist_edge.data import load_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(data_dir)
    status = PipelineStatus(out, models)
    rows, server = [], None
    try:
        for name in models:
            rows.append(build_model(out / name, name, dataset, retrain=retrain, seed=seed, status=status, stream=stream))
            status.done(name)
            if serve and server is None:
                server = start_demo(out, serve, stream)
        status.remove()
        print_summary(rows, stream)
        if all(_export_is_current(out / name) for name in COMPARED):
            from mnist_edge.trainer.compare import write_comparison

            write_comparison(*(out / name for name in COMPARED), out, dataset=dataset, stream=stream)
        if server:
            print(f"mnist-edge: every model is ready; the demo keeps serving at {server.url} (Ctrl+C to stop)", file=stream)
            server.process.wait()
    finally:
        status.remove()
        if server:
            server.stop()
    return rows


def build_model(model_dir: Path, name: str, dataset, *, retrain: bool, seed: int, status: PipelineStatus, stream):
    """Train (unless trained), export (unless current) and verify one model."""
    from mnist_edge.export.exporter import export_model
    from mnist_edge.export.verify import VerifyFailed, verify_export
    from mnist_edge.trainer.record import MODEL_FILE
    from mnist_edge.trainer.train import TrainConfig, train

    if retrain or not (model_dir / MODEL_FILE).is_file():
        status.update(name, "training")
        train(dataset, TrainConfig(model=name, seed=seed), model_dir.parent, stream=stream)
    else:
        print(f"{name}: reusing the trained model in {model_dir} (--retrain to train again)", file=stream)
        if "calibration" not in read_training_metrics(model_dir):  # a report from before the maps and calibration
            from mnist_edge.trainer.report import refresh_report

            print(f"{name}: writing its report again with attribution maps and calibration", file=stream, flush=True)
            refresh_report(model_dir, dataset)
    if _export_is_current(model_dir):
        print(f"{name}: export is up to date with model.keras; not exporting again", file=stream)
    else:
        status.update(name, "exporting")
        export_model(model_dir, dataset=dataset, stream=stream)
    status.update(name, "verifying")
    checks = verify_export(model_dir / EXPORT_DIR, data_dir=dataset.source)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerifyFailed(f"{name}: verify failed: " + "; ".join(f"{c.file}: {c.detail}" for c in failed))
    return SummaryRow(name, read_training_metrics(model_dir), read_manifest(model_dir / EXPORT_DIR))


@dataclass
class DemoServer:
    process: "subprocess.Popen"
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # the demo closes its server on SIGTERM, as on Ctrl+C
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_demo(out: Path, serve: Serve, stream) -> DemoServer:
    """`mnist-edge demo` on the artifacts folder, in a process of its own; returns once it answers."""
    import time
    import urllib.request

    from mnist_edge.errors import MnistEdgeError

    command = [sys.executable, "-m", "mnist_edge", "demo", "--model", str(out), "--host", serve.host, "--port", str(serve.port)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://{serve.host}:{serve.port}/"
    deadline = time.monotonic() + SERVE_TIMEOUT
    while True:
        if process.poll() is not None:
            lines = process.stderr.read().strip().splitlines()
            raise MnistEdgeError(f"the demo did not start: {lines[-1] if lines else f'exit code {process.returncode}'}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            DemoServer(process, url).stop()
            raise MnistEdgeError(f"the demo did not answer on {url} within {SERVE_TIMEOUT} s")
        time.sleep(0.5)
    import threading

    def relay():  # whatever the demo prints later goes to our stderr (and never fills the pipe)
        for line in process.stderr:
            sys.stderr.write(line)

    threading.Thread(target=relay, daemon=True).start()
    print(f"mnist-edge: the demo is serving the first model at {url} while the others are made", file=stream, flush=True)
    return DemoServer(process, url)


@dataclass(frozen=True)
class SummaryRow:
    model: str
    metrics: dict  # metrics.json of the trained model
    manifest: Manifest


def read_training_metrics(model_dir: Path) -> dict:
    import json

    from mnist_edge.trainer.record import METRICS_FILE

    return json.loads((model_dir / METRICS_FILE).read_text())


def print_summary(rows: list[SummaryRow], stream=sys.stdout) -> None:
    print("", file=stream)
    print(
        f"{'model':<5} {'artifact':<18} {'precision':<9} {'size KiB':>9} {'accuracy':>9} {'Δ vs Keras':>10} "
        f"{'agreement':>9}",
        file=stream,
    )
    for row in rows:
        metrics = row.metrics
        print(
            f"{row.model:<5} {'model.keras':<18} {'fp32':<9} {'':>9} {metrics['test_accuracy']:>9.2%} {'':>10} {'':>9}"
            f"   ({metrics['params']:,} params, {metrics['epochs_run']} epochs, {metrics['train_seconds']:.0f}s)",
            file=stream,
        )
        for a in row.manifest.artifacts:
            p = a.parity
            print(
                f"{'':<5} {a.file:<18} {a.precision:<9} {a.bytes / 1024:>9.1f} {p.test_accuracy:>9.2%} "
                f"{p.accuracy_delta * 100:>+9.2f}p {p.argmax_agreement:>9.2%}",
                file=stream,
            )
    print("\nEvery artifact passed its parity checks and was re-verified from its files.", file=stream)
