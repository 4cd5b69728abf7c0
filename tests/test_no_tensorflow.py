"""The runtime in the environment its users have: a virtualenv made with only `pip install .`.

TensorFlow is not importable there; `mnist-edge predict` reads PNG and JPEG files, `verify`
re-checks an export, the runtime tests pass, and the commands that need an extra say which one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# Kept between runs (git-ignored); rebuilt when pyproject.toml changes. The project itself is
# reinstalled every run so the venv always holds the code under test.
VENV = ROOT / ".venv-runtime"


def _bin(name: str) -> Path:
    return VENV / "bin" / name


def _run(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def runtime_venv() -> Path:
    stamp = VENV / ".pyproject-sha256"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text() != digest:
        venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
        # The base install (no extras), plus pytest to run the runtime tests inside it.
        result = _run(_bin("python"), "-m", "pip", "install", "--quiet", str(ROOT), "pytest")
        assert result.returncode == 0, result.stderr[-3000:]
        stamp.write_text(digest)
    else:
        result = _run(_bin("python"), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(ROOT))
        assert result.returncode == 0, result.stderr[-3000:]
    return VENV


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_tensorflow_and_extras_are_absent(runtime_venv):
    result = _run(_bin("python"), "-c", "import tensorflow", env=_env())
    assert result.returncode != 0 and "No module named 'tensorflow'" in result.stderr
    installed = _run(_bin("python"), "-m", "pip", "list", "--format=json", env=_env())
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert {"numpy", "onnxruntime", "pillow", "mnist-edge"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "gradio", "matplotlib", "onnx"}


def test_help_works_and_missing_extras_are_named(runtime_venv):
    result = _run(_bin("mnist-edge"), "--help", env=_env())
    assert result.returncode == 0 and "predict" in result.stdout
    result = _run(_bin("mnist-edge"), "train", "--model", "mlp", env=_env())
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mnist-edge: error: tensorflow is not installed; install the 'train' extra: pip install 'mnist-edge[train]'"
    )


def test_predict_png_and_jpeg_without_tensorflow(runtime_venv, mlp_export, mnist, tmp_path):
    import runtime

    files = []
    for i in range(20):
        image = Image.fromarray(255 - mnist.test.images[i]).resize((140, 140), Image.Resampling.BICUBIC)
        suffix, fmt = (".png", "PNG") if i % 2 else (".jpg", "JPEG")
        image.save(tmp_path / f"{i:02d}{suffix}", format=fmt, quality=90)
        files.append(tmp_path / f"{i:02d}{suffix}")
    result = _run(_bin("mnist-edge"), "predict", "--model", mlp_export, "--json", tmp_path, env=_env())
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == [f.name for f in files]
    # Same answers as the runtime in the full environment.
    direct = runtime.load(mlp_export)
    assert [r["digit"] for r in rows] == [direct.predict(f).digit for f in files]
    assert np.mean([r["digit"] == label for r, label in zip(rows, mnist.test.labels[:20])]) >= 0.8


def test_litert_backend_without_its_extra_is_one_line(runtime_venv, mlp_export, tmp_path):
    image = tmp_path / "blank.png"
    Image.new("L", (28, 28)).save(image)
    result = _run(_bin("mnist-edge"), "predict", "--model", mlp_export, "--backend", "litert", image, env=_env())
    assert result.returncode == 2
    assert result.stderr.strip().endswith("pip install 'mnist-edge[litert]'")


def test_verify_without_tensorflow(runtime_venv, mlp_export, mnist_dir):
    result = _run(_bin("mnist-edge"), "verify", mlp_export, "--backend", "onnx", env=_env(MNIST_DATA_DIR=str(mnist_dir)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == 3 and result.stdout.count("sha ") == 3  # 3 ONNX-family, 3 TFLite
    # Without LiteRT the TFLite artifacts cannot be run: a full verify says so and fails.
    result = _run(_bin("mnist-edge"), "verify", mlp_export, env=_env(MNIST_DATA_DIR=str(mnist_dir)))
    assert result.returncode == 1 and "mnist-edge[litert]" in result.stdout


def test_runtime_tests_pass_without_tensorflow(runtime_venv, mlp_export, mnist_dir):
    """tests/test_runtime.py and tests/test_preprocess.py, run inside the runtime-only venv
    against the export this session made (LiteRT tests deselected: that backend is an extra)."""
    result = _run(
        _bin("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not litert",
        "tests/test_runtime.py", "tests/test_preprocess.py",
        env=_env(MNIST_EDGE_TEST_EXPORT=str(mlp_export), MNIST_DATA_DIR=str(mnist_dir)),
        timeout=900,
    )
    print(result.stdout[-1500:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "error" not in result.stdout.splitlines()[-1]
