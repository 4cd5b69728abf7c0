"""`mnist-edge pipeline`: reuses a trained model and a current export, re-exports a missing one,
verifies everything, and refuses to report success over a damaged export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_edge import formats


def _pipeline(out) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", "pipeline", "--out", str(out), "--models", "mlp"],
        capture_output=True, text=True, timeout=600,
    )


def test_pipeline_reuses_exports_and_verifies(mlp_export, tmp_path):
    artifacts = tmp_path / "artifacts"
    shutil.copytree(mlp_export.parent, artifacts / "mlp")

    result = _pipeline(artifacts)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reusing the trained model" in result.stdout
    assert "export is up to date" in result.stdout
    assert "model.int8.tflite" in result.stdout and "re-verified" in result.stdout

    shutil.rmtree(artifacts / "mlp" / "export")  # a missing export is made again
    result = _pipeline(artifacts)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Published {len(formats.KINDS)} artifacts" in result.stdout
    assert (artifacts / "mlp" / "export" / "manifest.json").is_file()


def test_pipeline_fails_on_a_damaged_export(mlp_export, tmp_path):
    artifacts = tmp_path / "artifacts"
    shutil.copytree(mlp_export.parent, artifacts / "mlp")
    target = artifacts / "mlp" / "export" / "model.tflite"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    result = _pipeline(artifacts)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mnist-edge: error: mlp: verify failed: model.tflite") and "sha256" in last


def test_pipeline_rejects_an_unknown_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "pipeline", "--out", str(tmp_path), "--models", "mlp,resnet"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1 and "unknown model resnet" in result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_in_one_pass(model_dir: Path) -> None:
    """The model folder as one whose recipe reads in one pass: its export then proves every file on
    one pass per image, five times less work. For tests about serving, not about the shifts
    (tests/test_export.py and tests/test_train.py cover those)."""
    metrics = json.loads((model_dir / "metrics.json").read_text())
    metrics["test_time_shifts"] = []
    (model_dir / "metrics.json").write_text(json.dumps(metrics))


def test_serve_starts_the_demo_with_the_first_model_and_picks_up_the_next(mlp_export, trained_cnn, tmp_path, mnist):
    """`pipeline --serve`: the demo answers as soon as the MLP is published, while the CNN is still
    being exported; once the CNN is done the same server predicts with it; then the web app is built
    from both exports and served on its own port; SIGTERM stops everything."""
    import json
    import os
    import signal
    import time
    import urllib.request

    artifacts = tmp_path / "artifacts"
    shutil.copytree(mlp_export.parent, artifacts / "mlp")
    shutil.copytree(trained_cnn, artifacts / "cnn", ignore=shutil.ignore_patterns("export*"))
    _read_in_one_pass(artifacts / "cnn")
    port, web_port = _free_port(), _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    log = (tmp_path / "pipeline.log").open("w")
    site = tmp_path / "site"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "mnist_edge", "pipeline", "--out", str(artifacts), "--serve", "--port", str(port),
            # The browser proofs of the site are tests/test_web.py's job; here: is it built and served.
            "--web-port", str(web_port), "--site", str(site), "--web-proofs", "off",
            # The number reader (20 minutes of training) is tests/test_reader.py's subject, not serving's.
            "--no-reader",
        ],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    web_url = f"http://127.0.0.1:{web_port}/"
    try:
        deadline = time.monotonic() + 900
        while "every model is ready" not in (tmp_path / "pipeline.log").read_text():
            assert process.poll() is None, (tmp_path / "pipeline.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(1)
        output = (tmp_path / "pipeline.log").read_text()
        # The demo was up before the CNN's export began.
        assert output.index("the demo is serving the first model") < output.index("Exporting cnn")
        assert not (artifacts / "pipeline-status.json").exists()

        def predict(model: str):
            body = json.dumps({"data": [None, model, "fp32", "onnxruntime"]}).encode()
            request = urllib.request.Request(f"{url}gradio_api/call/predict_upload", body, {"Content-Type": "application/json"})
            event = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
            stream = urllib.request.urlopen(f"{url}gradio_api/call/predict_upload/{event}", timeout=60).read().decode()
            return json.loads(next(line[5:] for line in stream.splitlines() if line.startswith("data:")))

        # The CNN, published after the demo started, predicts through the same server.
        from gradio_client import Client, handle_file
        from PIL import Image

        seven = tmp_path / "seven.png"
        Image.fromarray(255 - mnist.test.images[0]).resize((140, 140)).save(seven)
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        labels, _, status = client.predict(handle_file(str(seven)), "cnn", "fp32", "onnxruntime", api_name="/predict_upload")
        assert labels["label"] == "7" and "cnn/model.onnx" in status, status
        # No image: the answer names the model's situation without predicting; an unknown model says so.
        assert "Draw a digit first" in predict("cnn")[2]
        assert "unknown model" in predict("resnet")[2]
        # The web app, built from both exports, is served on its own port.
        assert f"serving the demo at {url} and web app at {web_url}" in output
        with urllib.request.urlopen(web_url, timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        models = json.loads(urllib.request.urlopen(f"{web_url}models.json", timeout=10).read())
        assert sorted(m["name"] for m in models["models"]) == ["cnn", "mlp"], models
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    assert process.returncode == 128 + signal.SIGTERM
    time.sleep(1)
    for address in (url, web_url):  # the demo and the web app went down with the pipeline
        with pytest.raises(OSError):
            urllib.request.urlopen(address, timeout=5)


def test_the_demo_picks_up_new_models_and_says_what_is_pending(mlp_export, trained_cnn, tmp_path, mnist):
    import json
    import os

    from mnist_edge.demo.app import DigitDemo
    from mnist_edge.export.exporter import export_model
    from mnist_edge.pipeline import STATUS_FILE

    artifacts = tmp_path / "artifacts"
    shutil.copytree(mlp_export.parent, artifacts / "mlp")
    (artifacts / STATUS_FILE).write_text(json.dumps({"pid": os.getpid(), "pending": ["cnn"], "current": "cnn", "stage": "training"}))
    demo = DigitDemo.from_root(artifacts)
    assert list(demo.models) == ["mlp"] and not demo.refresh()
    assert "Still being made (now training cnn): **cnn**" in demo.pending_notice()
    shutil.copytree(trained_cnn, artifacts / "cnn", ignore=shutil.ignore_patterns("export*"))
    export_model(artifacts / "cnn", families=("onnx",), precisions=("fp32",), dataset=mnist, stream=open(os.devnull, "w"))
    assert demo.refresh() and list(demo.models) == ["cnn", "mlp"]
    assert demo.pending_notice() == ""  # the pending model is here now
    labels, _, status = demo.predict(255 - mnist.test.images[0], "cnn", "fp32", "onnxruntime")
    assert labels is not None and "cnn/model.onnx" in status, status
    (artifacts / STATUS_FILE).write_text(json.dumps({"pid": 999999999, "pending": ["other"], "current": None, "stage": ""}))
    assert demo.pending_notice() == ""  # a pipeline that died leaves no promise behind


_STOP_WHILE_A_SERVER_STARTS = """
import os, signal, subprocess, sys, threading
from mnist_edge import pipeline, termination

termination.install()
start = subprocess.Popen

def a_server_that_never_answers(args, **kwargs):  # stands in for `mnist-edge demo` still loading
    child = start([sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.DEVNULL, **kwargs)
    print(child.pid, flush=True)
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()  # the user stops the pipeline
    return child

pipeline.subprocess.Popen = a_server_that_never_answers
try:
    pipeline.start_server("demo", ["demo"], "http://127.0.0.1:9/", timeout=60)
except termination.Terminated:
    print("stopped", flush=True)
"""


def test_a_stop_while_a_server_starts_stops_the_server_too(tmp_path):
    """A SIGTERM while the pipeline waited for its demo to answer stopped the pipeline and left the
    demo running on its own; start_server now stops it on the way out."""
    import time
    from pathlib import Path

    result = subprocess.run([sys.executable, "-c", _STOP_WHILE_A_SERVER_STARTS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pid, said = result.stdout.split()
    assert said == "stopped"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:  # reaped by init once orphaned
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the server outlived the pipeline"
