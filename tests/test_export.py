"""Export: every format converts and passes parity on a small trained model, broken artifacts
are caught, and a failed export leaves the previous good one untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.parity import (
    AccuracyDropError,
    ArgmaxAgreementError,
    AtolError,
    ShapeError,
    SizeError,
    Thresholds,
    check,
    compare,
)
from mnist_edge.files import sha256_file

EXPECTED_FILES = {
    "model.onnx": ("onnx", "fp32"),
    "model.int8.onnx": ("onnx", "int8"),
    "model.ort": ("ort", "fp32"),
    "model.tflite": ("tflite", "fp32"),
    "model.fp16.tflite": ("tflite", "fp16"),
    "model.int8.tflite": ("tflite", "int8"),
}


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def test_every_artifact_is_published_with_its_measured_parity(mlp_export, mnist):
    manifest = json.loads((mlp_export / "manifest.json").read_text())
    by_file = {a["file"]: a for a in manifest["artifacts"]}
    assert set(by_file) == set(EXPECTED_FILES)
    for file, (fmt, precision) in EXPECTED_FILES.items():
        entry = by_file[file]
        path = mlp_export / file
        assert (entry["format"], entry["precision"]) == (fmt, precision)
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == sha256_file(path)
        assert entry["passed"] is True and entry["failure"] is None
        assert 0.85 < entry["test_accuracy"] <= 1
        for key in ("accuracy_delta", "argmax_agreement", "max_abs_diff", "mean_abs_diff", "changed_predictions"):
            assert key in entry["parity"], (file, key)
    # fp32 artifacts match Keras exactly in class and within 1e-4 in probability.
    for file in ("model.onnx", "model.ort", "model.tflite"):
        assert by_file[file]["parity"]["argmax_agreement"] == 1.0
        assert by_file[file]["parity"]["max_abs_diff"] <= 1e-4
    # The int8 ONNX MLP is small and nearly as accurate.
    int8 = by_file["model.int8.onnx"]
    assert int8["bytes"] <= 0.35 * by_file["model.onnx"]["bytes"]
    assert manifest["model"]["test_accuracy"] - int8["test_accuracy"] <= 0.003

    assert manifest["input"] == {
        "name": "image", "shape": [None, 28, 28], "dtype": "float32", "range": [0.0, 1.0],
        "preprocessing": manifest["input"]["preprocessing"],
    }
    assert manifest["class_names"] == [str(d) for d in range(10)]
    assert manifest["test_set"]["images"] == 10000
    assert manifest["model"]["sha256"] == sha256_file(mlp_export.parent / "model.keras")
    assert {"tensorflow-cpu", "onnxruntime", "tf2onnx", "onnx", "ai-edge-litert"} <= set(manifest["libraries"]) | {"tensorflow-cpu"}

    parity = (mlp_export / "parity.md").read_text()
    for file in EXPECTED_FILES:
        assert f"`{file}`" in parity
    assert "FAIL" not in parity
    # The figures in the table are the manifest's.
    assert f"{by_file['model.int8.onnx']['test_accuracy']:.2%}" in parity


def test_onnx_graph_contract(mlp_export):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(mlp_export / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(str(mlp_export / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == "image" and inp.type == "tensor(float)"
    assert inp.shape[1:] == [28, 28] and not isinstance(inp.shape[0], int)  # dynamic batch
    assert out.name == "probabilities" and out.shape[1:] == [10]
    for batch in (1, 7):
        y = session.run(None, {"image": np.zeros((batch, 28, 28), np.float32)})[0]
        assert y.shape == (batch, 10)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    # QDQ int8: quantize/dequantize pairs and int8 weights in the graph.
    int8 = onnx.load(str(mlp_export / "model.int8.onnx"))
    ops = {node.op_type for node in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in int8.graph.initializer)


def test_tflite_uses_builtin_ops_only_and_int8_io(mlp_export):
    from ai_edge_litert.interpreter import Interpreter

    for file in ("model.tflite", "model.fp16.tflite", "model.int8.tflite"):
        interpreter = Interpreter(model_path=str(mlp_export / file))
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any("Flex" in op or op == "CUSTOM" for op in ops), (file, ops)
    interpreter = Interpreter(model_path=str(mlp_export / "model.int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def test_cnn_exports_and_passes_parity(trained_cnn, mnist):
    from export.exporter import export_model

    manifest = export_model(trained_cnn, dataset=mnist, stream=open("/dev/null", "w"))
    assert all(a["passed"] for a in manifest["artifacts"])
    assert {a["file"] for a in manifest["artifacts"]} == set(EXPECTED_FILES)
    assert (trained_cnn / "export" / "manifest.json").is_file()


# --- parity checks catch broken artifacts --------------------------------------------------------


def _reference(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10)) * 4
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities.astype(np.float32), probabilities.argmax(axis=1)


def test_artifact_with_wrong_weights_fails_parity(trained_mlp, mnist, tmp_path):
    """A real converted model whose weights were damaged: parity names the check and the figures."""
    import keras

    from export.convert import to_onnx
    from runtime.backends import open_session

    model = keras.models.load_model(trained_mlp / "model.keras", compile=False)
    x = mnist.test.images.astype(np.float32) / 255
    reference = model.predict(x, verbose=0)
    weights = model.get_weights()
    weights[-2] = weights[-2] * 1.01  # a 1% error in the last layer: barely visible, still wrong
    model.set_weights(weights)
    path = to_onnx(model, tmp_path / "model.onnx")
    candidate = open_session("onnx", path.read_bytes()).run(x)
    report = compare(reference, candidate, mnist.test.labels)
    with pytest.raises((AtolError, ArgmaxAgreementError)) as failure:
        check(report, "fp32", Thresholds(), "model.onnx")
    assert "model.onnx" in str(failure.value)
    assert f"{report.max_abs_diff:.3g}" in str(failure.value) or "agreement" in str(failure.value)


def test_each_check_raises_its_own_error_with_the_figures():
    reference, labels = _reference()
    nudged = reference + 2e-4
    with pytest.raises(AtolError, match=r"max \|delta p\| 0.0002 exceeds the tolerance 0.0001"):
        check(compare(reference, nudged, labels), "fp32", Thresholds(), "a.onnx")

    swapped = reference.copy()
    swapped[:20] = swapped[:20, ::-1]  # 20 images change class
    with pytest.raises(ArgmaxAgreementError, match=r"20 of 1000"):
        check(compare(reference, swapped, labels), "fp16", Thresholds(), "a.tflite")
    with pytest.raises(AccuracyDropError, match=r"2.00 points"):
        check(compare(reference, swapped, labels), "int8", Thresholds(), "a.int8.onnx")
    with pytest.raises(SizeError, match="50.0% of the fp32 size"):
        check(compare(reference, reference, labels, size_ratio=0.5), "int8", Thresholds(), "a.int8.onnx")
    with pytest.raises(ShapeError):
        compare(reference, reference[:, :9], labels)
    broken = reference.copy()
    broken[0, 0] = np.nan
    with pytest.raises(ShapeError, match="non-finite"):
        compare(reference, broken, labels)
    # The same figures pass with overridden limits.
    check(compare(reference, nudged, labels), "fp32", Thresholds(fp32_max_abs_diff=1e-3), "a.onnx")


def test_failed_export_leaves_the_previous_export_in_place(mlp_export, trained_mlp, tmp_path):
    """Export a copy with an impossible int8 limit: rejected, and the old export is byte-identical."""
    if not (trained_mlp / "export").is_dir():
        pytest.fail("needs the mlp_export fixture made in this session")
    model_dir = tmp_path / "mlp"
    shutil.copytree(trained_mlp, model_dir)
    before = _snapshot(model_dir / "export")

    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "export", str(model_dir), "--formats", "onnx", "--precisions", "int8",
         "--int8-max-accuracy-drop", "-1"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("mnist-edge: error:")]
    assert len(error_lines) == 1, result.stderr[-2000:]
    assert "model.int8.onnx" in error_lines[0] and "points below Keras" in error_lines[0]
    assert "previous export left in place" in error_lines[0]
    assert _snapshot(model_dir / "export") == before
    rejected = json.loads((model_dir / "export.rejected" / "manifest.json").read_text())
    assert rejected["artifacts"][0]["passed"] is False
    assert not list(model_dir.glob(".export-staging-*"))


def test_export_without_a_trained_model_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "export", str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("mnist-edge: error:") and "no trained model" in lines[-1]


# --- verify ------------------------------------------------------------------------------------


def _verify(export_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", "verify", str(export_dir), *extra],
        capture_output=True, text=True, timeout=300,
    )


def test_verify_passes_a_good_export(mlp_export):
    result = _verify(mlp_export)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok  ") == len(EXPECTED_FILES)


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete", "manifest_accuracy"])
def test_verify_catches_a_damaged_export(mlp_export, tmp_path, damage):
    export_dir = tmp_path / "export"
    shutil.copytree(mlp_export, export_dir)
    target = export_dir / "model.int8.onnx"
    if damage == "flip_byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "delete":
        target.unlink()
    else:  # the file is intact but the manifest claims a better accuracy than it has
        manifest = json.loads((export_dir / "manifest.json").read_text())
        entry = next(a for a in manifest["artifacts"] if a["file"] == "model.int8.onnx")
        entry["test_accuracy"] = round(entry["test_accuracy"] + 0.01, 6)
        (export_dir / "manifest.json").write_text(json.dumps(manifest))
    result = _verify(export_dir)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "model.int8.onnx" in failed[0], result.stdout
    assert "model.int8.onnx" in result.stderr


def test_verify_runs_without_tensorflow(mlp_export):
    """verify with TensorFlow made unimportable: it needs the runtime dependencies only."""
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'tf2onnx'):\n"
        "    sys.modules[name] = None  # any import of these now raises ImportError\n"
        "from mnist_edge.cli import main\n"
        f"code = main(['verify', {str(mlp_export)!r}])\n"
        "assert not any(m.startswith(('tensorflow', 'keras')) and sys.modules[m] is not None for m in sys.modules)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failing_converter_is_one_error_quoting_its_own_output(capfd):
    import os

    from export.convert import ConversionError, converting

    with pytest.raises(ConversionError) as failure:
        with converting("TFLite conversion (int8)"):
            os.write(1, b"noise the user does not need\n")  # what C++ code prints
            os.write(2, b"error: 'tfl.custom' op is neither a custom op nor a flex op\n")
            raise ValueError("converter raised")
    message = str(failure.value)
    assert message.startswith("TFLite conversion (int8) failed: converter raised")
    assert "neither a custom op nor a flex op" in message
    print("after")  # the real stdout is back
    assert capfd.readouterr().out == "after\n"
