"""The model must be what its manifest says, and the runtime must prepare images the way the
model was trained: checked at load against real onnxruntime sessions of crafted models, and end
to end with a Fashion-MNIST model whose images are not digits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge import runtime
from mnist_edge.files import sha256_file
from mnist_edge.runtime.errors import ModelLoadError, ModelOutputError

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_IMAGES = 300


def _onnx_model(classes: int, *, nan: bool = False) -> bytes:
    """image [N, 28, 28] -> probabilities [N, classes]: flatten, one dense layer, softmax
    (optionally multiplied by NaN first)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(784, classes)).astype(np.float32) * 0.01
    nodes = [
        helper.make_node("Flatten", ["image"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
    ]
    initializers = [numpy_helper.from_array(weights, "weights")]
    if nan:
        initializers.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
        nodes.append(helper.make_node("Mul", ["logits", "nan"], ["broken"]))
    nodes.append(helper.make_node("Softmax", ["broken" if nan else "logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "crafted",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def export_copy(mlp_export, tmp_path) -> Path:
    target = tmp_path / "export"
    shutil.copytree(mlp_export, target)
    return target


def _swap_model(export_dir: Path, content: bytes, edit=None) -> None:
    """Replace model.onnx with `content` and make the manifest vouch for it (sha256 and size)."""
    (export_dir / "model.onnx").write_bytes(content)
    path = export_dir / "manifest.json"
    data = json.loads(path.read_text())
    entry = next(a for a in data["artifacts"] if a["file"] == "model.onnx")
    entry["bytes"], entry["sha256"] = len(content), sha256_file(export_dir / "model.onnx")
    if edit:
        edit(data)
    path.write_text(json.dumps(data))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_edge", *args], capture_output=True, text=True, timeout=300)


def test_a_model_with_fewer_outputs_than_classes_is_refused_at_load(export_copy, mnist, tmp_path):
    _swap_model(export_copy, _onnx_model(3))
    with pytest.raises(ModelLoadError, match=r"output shape is \[batch, 3\], the manifest says \[batch, 10\]"):
        runtime.load(export_copy)
    image = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.test.images[0]).save(image)
    result = _cli("predict", "--model", str(export_copy), str(image))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "does not match its manifest" in result.stderr


def test_three_class_names_over_a_ten_output_model_is_refused(export_copy):
    def three_classes(data):
        data["class_names"] = ["a", "b", "c"]
        data["output"]["shape"] = [None, 3]

    _swap_model(export_copy, (export_copy / "model.onnx").read_bytes(), three_classes)
    with pytest.raises(ModelLoadError, match=r"output shape is \[batch, 10\], the manifest says \[batch, 3\]"):
        runtime.load(export_copy)


def test_nan_probabilities_are_an_error_not_a_prediction(export_copy, mnist, tmp_path):
    _swap_model(export_copy, _onnx_model(10, nan=True))
    predictor = runtime.load(export_copy)  # the contract holds; the numbers are broken
    with pytest.raises(ModelOutputError, match="NaN or infinite probabilities for 1 of 1 inputs"):
        predictor.predict(mnist.test.images[0])
    image = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.test.images[0]).save(image)
    result = _cli("predict", "--model", str(export_copy), str(image))
    assert result.returncode == 1 and "nan%" not in result.stdout
    assert result.stderr.strip().splitlines() == [
        f"mnist-edge: error: model.onnx: the model returned NaN or infinite probabilities for 1 of 1 inputs; "
        "the model file is broken"
    ]


# --- a data set that is not digits ------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_export(tmp_path_factory):
    if not FASHION.is_dir():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    from mnist_edge.data import load_dataset
    from mnist_edge.export.exporter import export_model
    from mnist_edge.trainer.train import TrainConfig, train

    dataset = load_dataset(FASHION, class_names=FASHION_NAMES)
    out = tmp_path_factory.mktemp("fashion")
    metrics = train(dataset, TrainConfig(model="mlp", epochs=3, limit=10000), out, stream=open(os.devnull, "w"))
    assert metrics["preprocessing"] == "plain"  # not digits: no crop, no centring
    export_model(out / "mlp", families=("onnx",), precisions=("fp32",), stream=open(os.devnull, "w"))
    return out / "mlp" / "export", dataset


def test_fashion_predictions_from_files_match_the_arrays(fashion_export, tmp_path):
    """300 Fashion-MNIST test images saved as 28x28 PNGs: `mnist-edge predict` (which prepares
    images the way the manifest says) agrees with predict_array on the same pixels."""
    export_dir, dataset = fashion_export
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["input"]["preprocessing"]["kind"] == "plain"
    assert manifest["class_names"] == list(FASHION_NAMES)
    images, labels = dataset.test.images[:FASHION_IMAGES], dataset.test.labels[:FASHION_IMAGES]
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i:03d}.png")
    result = _cli("predict", "--model", str(export_dir), "--json", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == FASHION_IMAGES and not [r for r in rows if "error" in r]
    from_files = np.array([r["digit"] for r in rows])
    from_arrays = runtime.load(export_dir).predict_array(images.astype(np.float32) / 255).argmax(1)
    accuracy_files, accuracy_arrays = (from_files == labels).mean(), (from_arrays == labels).mean()
    print(f"\nFashion-MNIST, {FASHION_IMAGES} PNGs: predict {accuracy_files:.1%}, predict_array {accuracy_arrays:.1%}")
    assert abs(accuracy_files - accuracy_arrays) <= 0.01
    assert accuracy_arrays > 0.6
    assert [r["label"] for r in rows[:3]] == [FASHION_NAMES[i] for i in from_files[:3]]
