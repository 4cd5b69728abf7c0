"""The runtime where its users have it: a virtualenv with only the wheel's base install.

The wheel is built once per test session from this checkout (no build isolation, nothing fetched);
the venv is kept between runs and rebuilt when pyproject.toml changes, and the fresh wheel is
reinstalled into it every session without touching the package index. Everything runs from a
neutral working folder, so what is imported is the installed package, never the source tree.
TensorFlow is not importable there; `mnist-edge predict` reads PNG and JPEG files, `verify`
re-checks an export, the runtime tests pass, and the commands that need an extra say which one.
"""

from __future__ import annotations

import hashlib
import shutil
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge import formats

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-runtime"  # git-ignored


def _bin(name: str) -> Path:
    return VENV / "bin" / name


@pytest.fixture(scope="module")
def neutral_dir(tmp_path_factory) -> Path:
    """A working folder with nothing importable in it."""
    return tmp_path_factory.mktemp("elsewhere")


def _run(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would pack stale files left there
    result = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, ROOT,
        cwd=out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (out / "build.log").write_text(result.stdout + result.stderr)  # read by the test of warnings
    (path,) = out.glob("mnist_edge-*.whl")
    return path


@pytest.fixture(scope="module")
def runtime_venv(wheel) -> Path:
    stamp = VENV / ".pyproject-sha256"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text() != digest:
        venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
        # The base install's dependencies (no extras), plus pytest to run the runtime tests inside it.
        result = _run(_bin("python"), "-m", "pip", "install", "--quiet", wheel, "pytest")
        assert result.returncode == 0, result.stderr[-3000:]
        stamp.write_text(digest)
    result = _run(_bin("python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--force-reinstall", wheel)
    assert result.returncode == 0, result.stderr[-3000:]
    return VENV


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_the_wheel_installs_one_import_root(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"mnist_edge", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top
    for part in ("trainer", "export", "runtime", "demo", "cli"):
        assert f"mnist_edge/{part}/__init__.py" in names, part


def test_the_wheel_builds_without_warnings_and_ships_the_web_app(wheel):
    """`pip install -e .` and the wheel build printed three setuptools BuildBackendWarning banners
    (the web app's folders, importable but not listed as packages); its files must still ship."""
    log = (wheel.parent / "build.log").read_text()
    assert "Warning" not in log, log[-3000:]
    names = zipfile.ZipFile(wheel).namelist()
    for file in ("index.html", "package-lock.json", "js/page.js", "proof/proof.js"):
        assert f"mnist_edge/demo/web/{file}" in names, file


def test_generic_names_are_not_importable_and_the_runtime_is(runtime_venv, neutral_dir):
    for name in ("trainer", "runtime", "export", "demo"):
        result = _run(_bin("python"), "-c", f"import {name}", env=_env(), cwd=neutral_dir)
        assert result.returncode != 0 and f"No module named '{name}'" in result.stderr, name
    result = _run(
        _bin("python"), "-c", "from mnist_edge import runtime; print(runtime.__file__)", env=_env(), cwd=neutral_dir
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(VENV)), result.stdout


def test_tensorflow_and_extras_are_absent(runtime_venv, neutral_dir):
    result = _run(_bin("python"), "-c", "import tensorflow", env=_env(), cwd=neutral_dir)
    assert result.returncode != 0 and "No module named 'tensorflow'" in result.stderr
    installed = _run(_bin("python"), "-m", "pip", "list", "--format=json", env=_env())
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert {"numpy", "onnxruntime", "pillow", "mnist-edge"} <= names
    assert not names & {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "gradio", "matplotlib", "onnx", "ray", "pyarrow"}


def test_help_works_and_missing_extras_are_named(runtime_venv, neutral_dir):
    result = _run(_bin("mnist-edge"), "--help", env=_env(), cwd=neutral_dir)
    assert result.returncode == 0 and "predict" in result.stdout
    result = _run(_bin("mnist-edge"), "train", "--model", "mlp", env=_env(), cwd=neutral_dir)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mnist-edge: error: tensorflow is not installed; install the 'train' extra: pip install 'mnist-edge[train]'"
    )
    result = _run(_bin("mnist-edge"), "batch", "--model", "m", "in", "--output", "out", env=_env(), cwd=neutral_dir)
    assert result.returncode == 2 and not (neutral_dir / "out").exists()
    assert result.stderr.strip() == (
        "mnist-edge: error: ray is not installed; install the 'scale' extra: pip install 'mnist-edge[scale]'"
    )


def test_predict_png_and_jpeg_without_tensorflow(runtime_venv, mlp_export, mnist, tmp_path, neutral_dir):
    from mnist_edge import runtime

    files = []
    for i in range(20):
        image = Image.fromarray(255 - mnist.test.images[i]).resize((140, 140), Image.Resampling.BICUBIC)
        suffix, fmt = (".png", "PNG") if i % 2 else (".jpg", "JPEG")
        image.save(tmp_path / f"{i:02d}{suffix}", format=fmt, quality=90)
        files.append(tmp_path / f"{i:02d}{suffix}")
    result = _run(_bin("mnist-edge"), "predict", "--model", mlp_export, "--json", tmp_path, env=_env(), cwd=neutral_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == [f.name for f in files]
    # Same answers as the runtime in the full environment.
    direct = runtime.load(mlp_export)
    assert [r["digit"] for r in rows] == [direct.predict(f).digit for f in files]
    assert np.mean([r["digit"] == label for r, label in zip(rows, mnist.test.labels[:20])]) >= 0.8


def test_litert_engine_without_its_extra_is_one_line(runtime_venv, mlp_export, tmp_path, neutral_dir):
    image = tmp_path / "blank.png"
    Image.new("L", (28, 28)).save(image)
    result = _run(
        _bin("mnist-edge"), "predict", "--model", mlp_export, "--engine", "litert", image, env=_env(), cwd=neutral_dir
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mnist-edge: error: ai_edge_litert is not installed; install the 'litert' extra: pip install 'mnist-edge[litert]'"
    )


def test_verify_without_tensorflow(runtime_venv, mlp_export, mnist_dir, neutral_dir):
    env = _env(MNIST_DATA_DIR=str(mnist_dir))
    result = _run(_bin("mnist-edge"), "verify", mlp_export, "--engine", "onnxruntime", env=env, cwd=neutral_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = [line.split()[0] for line in result.stdout.splitlines()[:-1]]
    # The onnxruntime files are run, the others (TFLite) checksummed: as many of each as the registry has.
    assert sorted(statuses) == sorted("ok" if k.engine == "onnxruntime" else "sha256" for k in formats.KINDS)
    # Without LiteRT the TFLite artifacts cannot be run: a full verify says so and fails.
    result = _run(_bin("mnist-edge"), "verify", mlp_export, env=env, cwd=neutral_dir)
    assert result.returncode == 1 and "mnist-edge[litert]" in result.stdout


def test_runtime_tests_pass_without_tensorflow(runtime_venv, mlp_export, mnist_dir, neutral_dir):
    """tests/test_runtime.py and tests/test_preprocess.py, run inside the runtime-only venv against
    the installed package and the export this session made (LiteRT tests deselected: that engine
    is an extra)."""
    result = _run(
        _bin("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not litert", "--rootdir", ROOT,
        ROOT / "tests" / "test_runtime.py", ROOT / "tests" / "test_preprocess.py",
        env=_env(MNIST_EDGE_TEST_EXPORT=str(mlp_export), MNIST_DATA_DIR=str(mnist_dir), MNIST_EDGE_EXPECT_INSTALLED=str(VENV)),
        cwd=neutral_dir,
        timeout=900,
    )
    print(result.stdout[-1500:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "error" not in summary and "skipped" not in summary


def test_read_and_verify_with_the_number_reader_without_tensorflow(runtime_venv, reader_export, mnist, mnist_dir, tmp_path, neutral_dir):
    """The number reader is runtime only: `read` uses it and `verify` re-reads its proof's fields,
    where TensorFlow cannot be imported; the readings equal the full environment's."""
    from mnist_edge import runtime
    from mnist_edge.fields import make_fields

    fields = list(make_fields(mnist.test.images, mnist.test.labels, 6, seed=5))
    for k, f in enumerate(fields):
        (tmp_path / f"{k}.png").write_bytes(f.image)
    env = _env(MNIST_DATA_DIR=str(mnist_dir))
    result = _run(_bin("mnist-edge"), "read", "--model", reader_export, "--json", tmp_path, env=env, cwd=neutral_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    direct = runtime.load(reader_export)
    assert [(r["text"], r["reader"]) for r in rows] == [
        (reading.text, reading.reader) for reading in (direct.read(tmp_path / f"{k}.png") for k in range(len(fields)))
    ]
    result = _run(_bin("mnist-edge"), "verify", reader_export, env=env, cwd=neutral_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(line.startswith("ok") and "reader.onnx" in line and "reading reproduced" in line for line in result.stdout.splitlines())
