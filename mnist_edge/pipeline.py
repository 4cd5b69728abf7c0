"""The main job: train both models (unless already trained), export them, verify the exports,
and print one summary table. `make run` calls it before starting the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mnist_edge import formats
from mnist_edge.files import sha256_file
from mnist_edge.manifest import EXPORT_DIR, Manifest, ManifestError, read_manifest
from mnist_edge.signature import configured_signing_key, signed_with
from mnist_edge.termination import deferred_stops, on_exit_at_once
from mnist_edge.demo.models import STATUS_FILE  # in the artifacts folder while a pipeline runs: what is still to come


def _export_is_current(model_dir: Path, reader_dir: Path | None = None) -> bool:
    """An export made from exactly this model.keras, with every artifact it lists still present,
    and (with `reader_dir`) the number reader of exactly that folder's reader.keras."""
    from mnist_edge.trainer.reader import MODEL_FILE as READER_FILE
    from mnist_edge.trainer.record import MODEL_FILE

    if not (model_dir / MODEL_FILE).is_file():
        return False
    try:
        manifest = read_manifest(model_dir / EXPORT_DIR)
    except ManifestError:
        return False
    if reader_dir is not None and (
        manifest.reader is None or not (reader_dir / READER_FILE).is_file()
        or manifest.reader.keras_sha256 != sha256_file(reader_dir / READER_FILE)
        or not manifest.path_of(manifest.reader).is_file()
    ):
        return False
    return manifest.model.sha256 == sha256_file(model_dir / MODEL_FILE) and all(
        manifest.path_of(a).is_file() for a in manifest.artifacts
    )


SERVE_TIMEOUT = 120  # seconds the demo may take to answer after it is started
WEB_TIMEOUT = 1800  # seconds the web app may take to build, prove itself in Chromium and answer
COMPARED = ("mlp", "cnn")  # compare.md is written when both are trained and exported
READER_MODEL = "cnn"  # the model whose export carries the number reader (artifacts/reader)
READER_DIR = "reader"


@dataclass(frozen=True)
class Serve:
    """Where `run_pipeline(serve=...)` serves the demo as soon as the first model is published and,
    with a `web_port`, the web app (built from every export) once all are."""

    host: str = "127.0.0.1"
    port: int = 7860
    web_port: int | None = None
    site: Path = Path("site")
    web_proofs: str = "auto"  # mnist-edge web --proofs: auto (where Chromium is), on, off


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
    signing_key: str | os.PathLike | None = None,
    reader: bool = True,
    stream: TextIO | None = None,
) -> list["SummaryRow"]:
    """Train, export and verify each model, in order; return one summary row per model.

    With `reader`, the number reader is trained in out/reader (unless trained) before the CNN is
    exported, and published with the CNN's export (export/reader.py proves it first).

    With a signing key (`signing_key`, else $MNIST_EDGE_SIGNING_KEY) every export is signed before
    it is published; an existing export is reused only if that key signed it.

    With `serve`, the demo starts as soon as the first model is published (it picks up the later
    ones by itself) and the pipeline waits for it once everything is done, until Ctrl+C."""
    stream = stream or sys.stdout
    from mnist_edge.data import load_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(data_dir)
    status = PipelineStatus(out, models)
    rows, servers = [], []

    def stop_servers():  # if an export exits at once on SIGTERM (mnist_edge/termination.py)
        for server in servers:
            server.process.terminate()
        status.remove()

    with on_exit_at_once(stop_servers):
        try:
            for i, name in enumerate(models):
                rows.append(
                    build_model(
                        out / name, name, dataset, retrain=retrain, seed=seed, status=status, stream=stream,
                        signing_key=signing_key, reader_dir=out / READER_DIR if reader and name == READER_MODEL else None,
                    )
                )
                status.done(name)
                if serve and not servers:
                    to_make = [
                        n for n in models[i + 1:]
                        if retrain or not _export_is_current(out / n, out / READER_DIR if reader and n == READER_MODEL else None)
                    ]
                    start_demo(out, serve, stream, name, to_make, started=servers)  # in `servers` from its start
            status.remove()
            print_summary(rows, stream)
            if all(_export_is_current(out / name) for name in COMPARED):
                from mnist_edge.trainer.compare import write_comparison

                write_comparison(*(out / name for name in COMPARED), out, dataset=dataset, stream=stream)
            if servers:
                if serve.web_port:
                    start_web(out, serve, stream, started=servers)
                where = " and ".join(f"{s.what} at {s.url}" for s in servers)
                print(f"mnist-edge: every model is ready; serving the {where} (Ctrl+C to stop)", file=stream, flush=True)
                servers[0].process.wait()
        finally:
            status.remove()
            for server in servers:
                server.stop()
    return rows


def build_model(
    model_dir: Path, name: str, dataset, *, retrain: bool, seed: int, status: PipelineStatus, stream, signing_key=None,
    reader_dir: Path | None = None,
):
    """Train (unless trained), export (unless current) and verify one model; with `reader_dir`,
    train the number reader there (unless trained) and publish it with the export."""
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
    if reader_dir is not None:
        from mnist_edge.trainer.reader import MODEL_FILE as READER_FILE, train_reader

        if not (reader_dir / READER_FILE).is_file():
            status.update(name, "training the number reader")
            train_reader(reader_dir, data_dir=dataset.source, stream=stream)
        else:
            print(f"{name}: reusing the number reader in {reader_dir}", file=stream)
    signing_key = configured_signing_key(signing_key)
    if _export_is_current(model_dir, reader_dir) and (signing_key is None or signed_with(model_dir / EXPORT_DIR, signing_key)):
        print(f"{name}: export is up to date with model.keras; not exporting again", file=stream)
    else:  # with a signing key, an export not signed by it is made again, never signed as found
        status.update(name, "exporting")
        export_model(model_dir, dataset=dataset, stream=stream, signing_key=signing_key, reader=reader_dir)
    status.update(name, "verifying")
    checks = verify_export(model_dir / EXPORT_DIR, data_dir=dataset.source)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise VerifyFailed(f"{name}: verify failed: " + "; ".join(f"{c.file}: {c.detail}" for c in failed))
    return SummaryRow(name, read_training_metrics(model_dir), read_manifest(model_dir / EXPORT_DIR))


@dataclass
class Server:
    """A server the pipeline started in a process of its own."""

    what: str  # "demo", "web app": for messages
    process: "subprocess.Popen"
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # both close their server on SIGTERM, as on Ctrl+C
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(what: str, command: list[str], url: str, timeout: float, started: list | None = None) -> Server:
    """Run `mnist-edge <command>` in a process of its own and return once `url` answers; whatever it
    prints on stderr later is passed on. One MnistEdgeError if it exits or stays silent. The server
    is in `started` from its first moment to a failed start (the caller's list of what to stop)."""
    import threading
    import time
    import urllib.request

    from mnist_edge.errors import MnistEdgeError

    server = None
    try:  # Ctrl+C or SIGTERM while it starts: the server goes too, never left running on its own
        with deferred_stops():  # not between the fork and `server` knowing the process
            process = subprocess.Popen(
                [sys.executable, "-m", "mnist_edge", *command], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            server = Server(what, process, url)
            if started is not None:
                started.append(server)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                lines = process.stderr.read().strip().splitlines()
                raise MnistEdgeError(f"the {what} did not start: {lines[-1] if lines else f'exit code {process.returncode}'}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise MnistEdgeError(f"the {what} did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.5)
    except BaseException:
        if server is not None:
            server.stop()
            if started is not None:
                started.remove(server)
        raise

    def relay():  # whatever it prints later goes to our stderr (and never fills the pipe)
        for line in process.stderr:
            sys.stderr.write(line)

    threading.Thread(target=relay, daemon=True).start()
    return server


def start_demo(
    out: Path, serve: Serve, stream, first: str = "", to_make: list[str] | tuple = (), started: list | None = None
) -> Server:
    """`mnist-edge demo` on the artifacts folder; returns once it answers (in `started` as start_server says)."""
    command = ["demo", "--model", str(out), "--host", serve.host, "--port", str(serve.port)]
    server = start_server("demo", command, f"http://{serve.host}:{serve.port}/", SERVE_TIMEOUT, started)
    print(demo_started_line(server.url, first, to_make), file=stream, flush=True)
    return server


def demo_started_line(url: str, first: str, to_make: list[str] | tuple) -> str:
    """What the pipeline says when the demo answers: 'while the others are made' only when some
    are still to be made (a second run with every export current makes none)."""
    if not to_make:
        return f"mnist-edge: the demo is serving at {url}"
    model = f"the first model ({first})" if first else "the first model"
    return f"mnist-edge: the demo is serving {model} at {url} while {', '.join(to_make)} {'is' if len(to_make) == 1 else 'are'} made"


def start_web(out: Path, serve: Serve, stream, started: list | None = None) -> Server | None:
    """`mnist-edge web` on every export: builds the site (proving it in Chromium where there is one)
    and serves it. A web app that cannot be built is one line on stderr; the demo keeps serving."""
    from mnist_edge.errors import MnistEdgeError

    print(f"mnist-edge: building the web app in {serve.site}/ (the demo keeps serving)", file=stream, flush=True)
    command = [
        "web", str(out), "--out", str(serve.site), "--proofs", serve.web_proofs,
        "--serve", "--host", serve.host, "--port", str(serve.web_port),
    ]
    try:
        return start_server("web app", command, f"http://{serve.host}:{serve.web_port}/", WEB_TIMEOUT, started)
    except MnistEdgeError as exc:
        print(f"mnist-edge: error: {exc}", file=sys.stderr, flush=True)
        return None


@dataclass(frozen=True)
class SummaryRow:
    model: str
    metrics: dict  # metrics.json of the trained model
    manifest: Manifest


def read_training_metrics(model_dir: Path) -> dict:
    import json

    from mnist_edge.trainer.record import METRICS_FILE

    return json.loads((model_dir / METRICS_FILE).read_text())


def print_summary(rows: list[SummaryRow], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    print("", file=stream)
    print(
        f"{'model':<5} {'artifact':<18} {'precision':<9} {'size KiB':>9} {'accuracy':>9} {'Δ vs Keras':>10} "
        f"{'agreement':>9}",
        file=stream,
    )
    for row in rows:
        metrics = row.metrics
        print(
            f"{row.model:<5} {'model.keras':<18} {formats.SOURCE_PRECISION:<9} {'':>9} {metrics['test_accuracy']:>9.2%} {'':>10} {'':>9}"
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
        reader = row.manifest.reader
        if reader is not None:
            proof = reader.proof
            print(
                f"{'':<5} {reader.file:<18} {'':<9} {reader.bytes / 1024:>9.1f}   fields read whole: "
                f"{proof.combined['all']:.1%} with it, {proof.digits['all']:.1%} digit by digit ({proof.fields:,} fields)",
                file=stream,
            )
    print("\nEvery artifact passed its parity checks and was re-verified from its files.", file=stream)
