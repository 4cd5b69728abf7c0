"""The runtime: predictions equal the exported model's own outputs, real image files work, and
every bad input or damaged model is refused with a clear error.

These tests need only the base install (numpy, onnxruntime, pillow); tests marked `litert` also
need ai-edge-litert. tests/test_no_tensorflow.py runs this file again in a venv without TensorFlow.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge import runtime
from mnist_edge.runtime.errors import (
    ImageTooLargeError,
    IntegrityError,
    InvalidImageError,
    ManifestError,
    ModelLoadError,
    NoDigitError,
)

SAMPLE = 300  # real test digits used for file-based checks


@pytest.fixture(scope="module")
def predictor(mlp_export):
    return runtime.load(mlp_export)


@pytest.fixture(scope="module")
def test_x(mnist):
    return mnist.test.images.astype(np.float32) / 255


def _accuracy(predictions, labels) -> float:
    return float(np.mean([p.digit == label for p, label in zip(predictions, labels)]))


def test_predict_array_equals_a_bare_onnxruntime_session(predictor, mlp_export, test_x):
    import onnxruntime as ort

    bare = ort.InferenceSession(str(mlp_export / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = bare.run(None, {"image": test_x})[0]
    got = predictor.predict_array(test_x)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_accuracy_matches_the_manifest(predictor, mlp_export, mnist, test_x):
    manifest = json.loads((mlp_export / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == "model.onnx")
    accuracy = float((predictor.predict_array(test_x).argmax(1) == mnist.test.labels).mean())
    assert accuracy == pytest.approx(entry["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("precision,file", [("int8", "model.int8.onnx")])
def test_int8_onnx_artifact(mlp_export, mnist, test_x, precision, file):
    predictor = runtime.load(mlp_export, precision=precision)
    assert predictor.artifact.file == file
    accuracy = float((predictor.predict_array(test_x).argmax(1) == mnist.test.labels).mean())
    manifest = json.loads((mlp_export / "manifest.json").read_text())
    assert accuracy == pytest.approx(next(a for a in manifest["artifacts"] if a["file"] == file)["test_accuracy"], abs=1e-6)


def test_ort_mobile_format_loads_and_agrees(mlp_export, predictor, test_x):
    ort_predictor = runtime.load(mlp_export, format="ort")
    assert ort_predictor.artifact.file == "model.ort"
    np.testing.assert_allclose(ort_predictor.predict_array(test_x[:500]), predictor.predict_array(test_x[:500]), atol=1e-5)


@pytest.mark.litert
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_litert_engine_equals_a_bare_interpreter(mlp_export, test_x, precision):
    """The TFLite files have a static batch of one: the bare interpreter runs one image at a time,
    and the runtime's batches must line up with it."""
    from ai_edge_litert.interpreter import Interpreter

    predictor = runtime.load(mlp_export, engine="litert", precision=precision)
    interpreter = Interpreter(model_path=str(mlp_export / predictor.artifact.file))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape_signature"]) == [1, 28, 28]
    x = test_x[:64]
    rows = []
    for image in x:
        feed = image[None]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            feed = np.clip(np.round(feed / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], feed)
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"])[0]
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            raw = (raw.astype(np.float32) - zero) * scale
        rows.append(raw)
    np.testing.assert_allclose(predictor.predict_array(x), np.stack(rows), atol=1e-6)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _as_user_image(digit: np.ndarray, size: int = 200) -> Image.Image:
    """A test digit as a person would give it: dark ink on white paper, scaled up."""
    return Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BICUBIC)


def test_predict_from_png_and_jpeg_files(predictor, mnist, tmp_path):
    labels = mnist.test.labels[:SAMPLE]
    paths = {"png": [], "jpeg": []}
    for i, digit in enumerate(mnist.test.images[:SAMPLE]):
        image = _as_user_image(digit)
        for fmt, suffix in (("png", ".png"), ("jpeg", ".jpg")):
            path = tmp_path / f"{i}{suffix}"
            image.save(path, format=fmt.upper(), quality=85)
            paths[fmt].append(path)
    plain = (predictor.predict_array(mnist.test.images[:SAMPLE].astype(np.float32) / 255).argmax(1) == labels).mean()
    for fmt, files in paths.items():
        accuracy = _accuracy(predictor.predict_batch(files), labels)
        print(f"{fmt}: {accuracy:.3f} (plain test images {plain:.3f})")
        assert accuracy >= plain - 0.03, fmt


def test_predict_accepts_every_input_kind(predictor, mnist):
    digit = mnist.test.images[0]
    expected = predictor.predict(digit)
    for source in (_png(digit), Image.fromarray(digit), digit.astype(np.float32) / 255, io.BytesIO(_png(digit))):
        result = predictor.predict(source)
        assert result.digit == expected.digit
        np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-5)
    assert expected.label == str(expected.digit)
    assert expected.confidence == pytest.approx(float(expected.probabilities.max()))
    assert expected.probabilities.shape == (10,) and expected.probabilities.sum() == pytest.approx(1, abs=1e-5)
    top = expected.top(3)
    assert top[0] == (expected.label, pytest.approx(expected.confidence)) and len(top) == 3
    batch = predictor.predict_batch([digit, mnist.test.images[1]])
    assert [p.digit for p in batch] == [expected.digit, predictor.predict(mnist.test.images[1]).digit]


@pytest.mark.parametrize(
    "bad,error",
    [
        (np.zeros((28, 28), np.float64), InvalidImageError),  # wrong dtype
        (np.zeros((28, 28), np.float32), InvalidImageError),  # no batch axis
        (np.zeros((1, 32, 32), np.float32), InvalidImageError),
        (np.zeros((0, 28, 28), np.float32), InvalidImageError),
        (np.full((1, 28, 28), 255, np.float32), InvalidImageError),  # not scaled to [0, 1]
        (np.full((1, 28, 28), np.nan, np.float32), InvalidImageError),
        ([[0.0] * 28] * 28, InvalidImageError),  # not an array
    ],
)
def test_predict_array_rejects_wrong_inputs(predictor, bad, error):
    with pytest.raises(error):
        predictor.predict_array(bad)


def test_predict_rejects_bad_images(predictor, tmp_path, monkeypatch):
    with pytest.raises(NoDigitError, match="no digit found"):
        predictor.predict(np.full((280, 280), 255, np.uint8))
    with pytest.raises(InvalidImageError):
        predictor.predict(b"this is not an image")
    with pytest.raises(InvalidImageError, match="nothing.png"):
        predictor.predict(tmp_path / "nothing.png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(_png(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8))[:500])
    with pytest.raises(InvalidImageError):
        predictor.predict(truncated)
    with pytest.raises(ImageTooLargeError):  # a limit passed in, lower than the runtime's
        predictor.prepare(np.zeros((200, 200), np.uint8), max_pixels=100 * 100)


# --- damaged exports are refused -----------------------------------------------------------------


@pytest.fixture
def export_copy(mlp_export, tmp_path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(mlp_export, target)
    return target


def test_tampered_model_is_refused(export_copy):
    model = export_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0x01  # one bit in one weight
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.onnx.*sha256"):
        runtime.load(export_copy)
    # The other artifacts are still fine.
    assert runtime.load(export_copy, precision="int8").artifact.file == "model.int8.onnx"


def test_truncated_or_missing_model_is_refused(export_copy):
    (export_copy / "model.onnx").write_bytes((export_copy / "model.onnx").read_bytes()[:1000])
    with pytest.raises(IntegrityError, match="size"):
        runtime.load(export_copy)
    (export_copy / "model.onnx").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        runtime.load(export_copy)


def test_bad_manifests_are_refused(export_copy, tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        runtime.load(tmp_path / "nowhere")
    with pytest.raises(ManifestError, match="no onnx/ort artifact at precision fp16 for onnxruntime"):
        runtime.load(export_copy, precision="fp16")
    manifest = export_copy / "manifest.json"
    data = json.loads(manifest.read_text())
    data["artifacts"][0]["file"] = "../../etc/passwd"
    manifest.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="plain name"):
        runtime.load(export_copy)
    manifest.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        runtime.load(export_copy)


def _edit_manifest(export_dir: Path, change) -> None:
    path = export_dir / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(schema_version="3.0"), "schema_version '3.0' is not supported"),
        (lambda d: d.update(schema_version=1), "schema_version 1 is not supported"),
        (lambda d: d["artifacts"][0].update(bytes="2617"), "artifacts[0] bytes: expected an integer, found str"),
        (lambda d: d["input"].update(shape=[None, 28]), "input shape [None, 28] should be [batch, height, width]"),
        (lambda d: d.pop("class_names"), "missing field 'class_names'"),
        (lambda d: d["input"]["preprocessing"].update(kind="sharpen"), "preprocessing kind 'sharpen' is unknown"),
        (lambda d: d.update(class_names=["a", "b", "c"]), "3 class names but the output has 10 values"),
    ],
    ids=["newer major", "old version", "field type", "input rank", "missing field", "preprocessing", "class names"],
)
def test_manifest_schema_violations_are_one_clear_error(export_copy, change, message):
    _edit_manifest(export_copy, change)
    with pytest.raises(ManifestError) as failure:
        runtime.load(export_copy)
    assert message in str(failure.value) and str(export_copy / "manifest.json") in str(failure.value)


def test_a_newer_minor_version_with_an_unknown_kind_still_loads(export_copy, mnist):
    """A manifest from a newer mnist-edge: extra fields are ignored, an artifact kind this runtime
    does not know is skipped with a note, and the known ones still predict."""

    def newer(data):
        data["schema_version"] = "2.7"
        data["a_field_from_the_future"] = {"anything": 1}
        data["artifacts"][0]["another_new_field"] = True
        data["artifacts"].append({**data["artifacts"][0], "file": "model.webnn", "format": "webnn", "precision": "int4"})

    _edit_manifest(export_copy, newer)
    predictor = runtime.load(export_copy)
    (skipped,) = predictor.manifest.skipped
    assert (skipped.file, skipped.format, skipped.precision) == ("model.webnn", "webnn", "int4")
    assert str(skipped) == "model.webnn: webnn/int4 is not a kind this version of mnist-edge knows; skipped"
    assert "model.webnn" not in {a.file for a in predictor.manifest.artifacts}
    assert predictor.predict(mnist.test.images[0]).digit == 7


def test_manifest_input_spec_that_disagrees_with_the_model_is_refused_at_load(export_copy):
    def wrong(data):
        data["input"]["shape"] = [None, 32, 32]
        data["input"]["name"] = "pixels"
        data["input"]["dtype"] = "float16"

    _edit_manifest(export_copy, wrong)
    with pytest.raises(ModelLoadError) as failure:
        runtime.load(export_copy)
    message = str(failure.value)
    assert message.startswith(f"{export_copy / 'model.onnx'} does not match its manifest: ")
    assert "input is named 'image', the manifest says 'pixels'" in message
    assert "input shape is [batch, 28, 28], the manifest says [batch, 32, 32]" in message
    assert "input dtype is float32, the manifest says float16" in message


def test_the_input_size_comes_from_the_manifest(export_copy, mnist):
    """The runtime's preprocessing and checks follow the manifest's input shape, not a constant."""
    predictor = runtime.load(export_copy)
    assert predictor.input_shape == (28, 28)
    assert predictor.prepare(mnist.test.images[0]).shape == (28, 28)
    with pytest.raises(InvalidImageError, match=r"shape \[N, 28, 28\]"):
        predictor.predict_array(np.zeros((1, 32, 32), np.float32))


def test_artifact_reads_are_bounded(export_copy, tmp_path):
    """A symlink to a device or a huge sparse file is refused before anything is read."""
    model = export_copy / "model.onnx"
    model.unlink()
    model.symlink_to("/dev/zero")
    with pytest.raises(IntegrityError, match="not a regular file"):
        runtime.load(export_copy)
    model.unlink()
    with model.open("wb") as f:
        f.truncate(50 * 1024**3)  # 50 GB, sparse: reading it would exhaust memory
    with pytest.raises(IntegrityError, match=r"size 53687091200 bytes differs from the manifest's"):
        runtime.load(export_copy)


def test_threads_reach_the_session(mlp_export, monkeypatch):
    predictor = runtime.load(mlp_export, threads=2)
    assert predictor.session.session.get_session_options().intra_op_num_threads == 2
    monkeypatch.setenv("MNIST_EDGE_THREADS", "3")
    assert runtime.load(mlp_export).session.session.get_session_options().intra_op_num_threads == 3


@pytest.mark.litert
def test_tampered_litert_file_is_refused(export_copy):
    model = export_copy / "model.int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.int8\.tflite.*sha256"):
        runtime.load(export_copy, engine="litert", precision="int8")


# --- mnist-edge predict --------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_edge", *args], capture_output=True, text=True, timeout=120)


def test_cli_predict_json_on_a_folder_with_a_bad_file(mlp_export, mnist, tmp_path):
    for i in range(5):
        _as_user_image(mnist.test.images[i]).save(tmp_path / f"digit{i}.png")
    _as_user_image(mnist.test.images[5]).convert("RGB").save(tmp_path / "digit5.jpg", quality=90)
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("ignored: not an image file name")
    result = _cli("predict", "--model", str(mlp_export), "--json", str(tmp_path))
    assert result.returncode == 1  # one file failed, the others were still predicted
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 7
    by_name = {Path(r["path"]).name: r for r in rows}
    assert "error" in by_name["broken.png"] and "not a readable image" in by_name["broken.png"]["error"]
    direct = runtime.load(mlp_export)
    for i in range(6):
        row = by_name[f"digit{i}.png" if i < 5 else "digit5.jpg"]
        assert set(row) == {"path", "digit", "label", "confidence", "probabilities"}
        assert len(row["probabilities"]) == 10 and 0 <= row["confidence"] <= 1
        assert row["digit"] == direct.predict(tmp_path / Path(row["path"]).name).digit
    assert "1 of 7 images could not be read" in result.stderr


def test_cli_predict_table(mlp_export, mnist, tmp_path):
    path = tmp_path / "seven.png"
    _as_user_image(mnist.test.images[0]).save(path)  # the first test digit is a 7
    result = _cli("predict", "--model", str(mlp_export.parent), "--precision", "int8", str(path))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert "model.int8.onnx" in header
    assert row.split()[1] == "7"


def test_cli_predict_errors_are_one_line(tmp_path, mlp_export):
    result = _cli("predict", "--model", str(tmp_path), str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mnist-edge: error:")
    result = _cli("predict", "--model", str(mlp_export), str(tmp_path / "empty-folder-that-does-not-exist"))
    assert result.returncode == 1 and "error" in result.stdout + result.stderr


def test_cli_model_may_be_a_model_folder_but_not_an_ambiguous_root(mlp_export, mnist, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(mlp_export, tmp_path / "artifacts" / name / "export")
    image = tmp_path / "digit.png"
    _as_user_image(mnist.test.images[0]).save(image)
    result = _cli("predict", "--model", str(tmp_path / "artifacts"), str(image))
    assert result.returncode == 1 and "several exported models" in result.stderr
    result = _cli("predict", "--model", str(tmp_path / "artifacts" / "a"), "--json", str(image))
    assert result.returncode == 0 and json.loads(result.stdout)["digit"] == 7


def test_cli_predict_a_fifo_among_good_images(mlp_export, mnist, tmp_path):
    """A named pipe would block a reader forever: it is one error line, the good images are read."""
    import os

    for i in range(3):
        _as_user_image(mnist.test.images[i]).save(tmp_path / f"digit{i}.png")
    os.mkfifo(tmp_path / "pipe.png")
    paths = [str(tmp_path / "digit0.png"), str(tmp_path / "pipe.png"), str(tmp_path / "digit1.png"), str(tmp_path / "digit2.png")]
    result = _cli("predict", "--model", str(mlp_export), "--json", *paths)  # a hang fails on the timeout
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["digit0.png", "pipe.png", "digit1.png", "digit2.png"]
    assert rows[1]["error"].endswith("pipe.png: not a regular file (a pipe, device or socket), not an image")
    assert [r["digit"] for r in rows if "digit" in r] == [int(d) for d in mnist.test.labels[:3]]
    assert result.stderr == "mnist-edge: error: 1 of 4 images could not be read\n"


def test_cli_predict_table_fits_long_class_names(export_copy, mnist, tmp_path):
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    _edit_manifest(export_copy, lambda d: d.update(class_names=names))
    for i in range(4):
        _as_user_image(mnist.test.images[i]).save(tmp_path / f"image{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = _cli("predict", "--model", str(export_copy), str(tmp_path))
    header, *rows = result.stdout.rstrip("\n").splitlines()
    assert len(rows) == 5
    confidence_end = header.index("confidence") + len("confidence")
    for row in rows:
        assert row[confidence_end - 1] in "%-", (header, row)  # every confidence ends under its heading
    predicted = [row for row in rows if "error" not in row]
    assert all(any(name in row for name in names) for row in predicted)


@pytest.mark.litert
def test_cli_predict_with_litert_prints_nothing_on_stderr(mlp_export, mnist, tmp_path):
    path = tmp_path / "seven.png"
    _as_user_image(mnist.test.images[0]).save(path)
    result = _cli("predict", "--model", str(mlp_export), "--engine", "litert", "--precision", "int8", str(path))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.splitlines()[1].split()[1] == "7"
