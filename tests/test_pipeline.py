"""`mnist-edge pipeline`: reuses a trained model and a current export, re-exports a missing one,
verifies everything, and refuses to report success over a damaged export."""

from __future__ import annotations

import shutil
import subprocess
import sys


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
    assert "Published 6 artifacts" in result.stdout
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
