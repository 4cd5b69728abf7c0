"""The microcontroller artifact and the tflite-micro engine, end to end on a tiny real model: the
export writes the C++ files with the exact op resolver and a measured arena and proves them in
TFLM's own interpreter on all 10,000 test images (against Keras and LiteRT's run of the same
file); `verify`, `predict`, `runtime.load` and the demo's menus run it; a too-small arena is a
clear error, never a crash; the generated files and docs/micro/main.cc compile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge import formats, runtime
from mnist_edge.manifest import read_manifest

pytest.importorskip("tflite_micro", reason="the micro extra (tflite-micro) is not installed")

ROOT = Path(__file__).resolve().parents[1]
MAIN_CC = ROOT / "docs" / "micro" / "main.cc"
TFLM_INTERFACE = ROOT / "docs" / "micro" / "tflm_interface"
MICRO = next(k for k in formats.KINDS if k.engine == "tflite-micro")


@pytest.fixture(scope="module")
def tiny_export(mnist, tmp_path_factory) -> Path:
    """A 784-32-10 MLP named "tiny", trained for two epochs on 10,000 real images, exported as the
    microcontroller kind only: its TFLM proof on the whole test set takes a second or two."""
    keras = pytest.importorskip("keras")
    from mnist_edge.data import scale_images
    from mnist_edge.export.exporter import export_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(28, 28), name="image")
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(hidden), name="tiny")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(scale_images(mnist.train.images[:10000]), mnist.train.labels[:10000], epochs=2, verbose=0)
    model_dir = tmp_path_factory.mktemp("micro") / "tiny"
    model_dir.mkdir()
    model.save(model_dir / "model.keras")
    export_model(model_dir, families=(MICRO.family,), dataset=mnist, stream=open(os.devnull, "w"))
    return model_dir / "export"


def _flatbuffer(export_dir: Path) -> bytes:
    from mnist_edge.runtime.micro import flatbuffer_from_source

    return flatbuffer_from_source((export_dir / MICRO.file).read_bytes())


def test_export_publishes_the_c_files_with_the_exact_resolver_and_a_measured_arena(tiny_export):
    from tflite_micro import runtime as tflm

    from mnist_edge.export.micro import operators
    from mnist_edge.runtime.micro import probe_arena

    artifact = read_manifest(tiny_export).artifact(MICRO.file)
    details = artifact.details
    flatbuffer = _flatbuffer(tiny_export)
    # The proofs: TFLM against Keras (int8 rules) and against LiteRT on the same flatbuffer.
    keras_proof, litert_proof = artifact.proofs
    assert (keras_proof.reference, litert_proof.reference) == ("keras", "litert")
    assert keras_proof.images == litert_proof.images == 10000 and artifact.passed
    assert litert_proof.argmax_agreement >= 0.999 and keras_proof.accuracy_delta >= -0.003
    # What the manifest records.
    ops = operators(tflm, tflm.convert_bytearray_to_object(flatbuffer))
    assert details["operators"] == list(ops) == ["RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert details["flash_bytes"] == len(flatbuffer)
    assert details["macs_per_image"] == 784 * 32 + 32 * 10
    assert details["tflite_micro"] == __import__("tflite_micro").__version__
    assert [c.file for c in artifact.companions] == ["model_micro.h", "model_micro_ops.h"]
    # One Add per operator, and a resolver sized for exactly that many.
    resolver = (tiny_export / "model_micro_ops.h").read_text()
    assert "tflite::MicroMutableOpResolver<kTinyOperatorCount>" in resolver
    assert "constexpr unsigned int kTinyOperatorCount = 3;" in resolver
    assert [line.split("resolver.")[1].split("(")[0] for line in resolver.splitlines() if "resolver.Add" in line] == [
        "AddReshape", "AddFullyConnected", "AddSoftmax"
    ]
    # The arena: the measured minimum runs, 16 bytes less does not; the header's size has the margin.
    measured, arena = details["arena_measured_bytes"], details["arena_bytes"]
    assert probe_arena(flatbuffer, measured).ok and not probe_arena(flatbuffer, measured - 16).ok
    assert arena >= measured * 1.25 and f"kTinyTensorArenaSize = {arena};" in (tiny_export / "model_micro.h").read_text()
    assert "alignas(16) const unsigned char g_tiny_model_data[]" in (tiny_export / MICRO.file).read_text()


def test_a_too_small_arena_is_refused_with_a_clear_error_not_a_crash(tiny_export):
    from mnist_edge.runtime.micro import MicroSession

    content = (tiny_export / MICRO.file).read_bytes()
    for arena in (64, read_manifest(tiny_export).artifact(MICRO.file).details["arena_measured_bytes"] - 16):
        with pytest.raises(runtime.ModelLoadError, match=rf"cannot allocate and run the model in a {arena:,}-byte tensor arena"):
            MicroSession(content, name="tiny", settings={"arena_bytes": arena})
    # This process survived TFLM's crash on 64 bytes; the recorded arena runs the model here too.
    predictor = runtime.load(tiny_export, engine="tflite-micro")
    assert predictor.session.arena_bytes == read_manifest(tiny_export).artifact(MICRO.file).details["arena_bytes"]


def test_verify_predict_and_a_tampered_header(tiny_export, mnist, tmp_path):
    from mnist_edge.export.verify import verify_export

    (check,) = verify_export(tiny_export, data_dir=mnist.source)
    assert (check.file, check.status) == (MICRO.file, "ok"), check.detail
    index = next(i for i in range(100) if mnist.test.labels[i] == 7)
    Image.fromarray(255 - mnist.test.images[index]).resize((84, 84)).save(tmp_path / "seven.png")
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "predict", str(tmp_path / "seven.png"), "--model", str(tiny_export),
         "--engine", "tflite-micro", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert '"digit": 7' in result.stdout
    copy = tmp_path / "export"
    shutil.copytree(tiny_export, copy)
    header = copy / "model_micro.h"
    header.write_text(header.read_text().replace("TensorArenaSize = ", "TensorArenaSize = 1"))
    with pytest.raises(runtime.IntegrityError, match="model_micro.h"):
        runtime.load(copy, engine="tflite-micro")


def test_the_cli_plan_verify_and_demo_menus_pick_the_kind_up(tiny_export, mnist):
    from mnist_edge.cli import build_parser
    from mnist_edge.demo.app import DigitDemo
    from mnist_edge.export.exporter import plan_artifacts

    parser = build_parser()
    for argv in (
        ["predict", "x.png", "--model", str(tiny_export), "--engine", MICRO.engine],
        ["evaluate", str(tiny_export), "--data", "digits", "--engine", MICRO.engine],
        ["verify", str(tiny_export), "--engine", MICRO.engine],
        ["export", "artifacts/cnn", "--formats", MICRO.family],
    ):
        args = parser.parse_args(argv)  # an unknown choice would exit
        assert getattr(args, "engine", MICRO.engine) == MICRO.engine
    assert MICRO in plan_artifacts(formats.families(), formats.PRECISIONS)
    assert plan_artifacts((MICRO.family,), ("int8",)) == (MICRO,)
    demo = DigitDemo.from_root(tiny_export)
    assert demo.models["tiny"].precisions == {MICRO.engine: ("int8",)}
    index = next(i for i in range(100) if mnist.test.labels[i] == 7)
    labels, _, status = demo.predict(mnist.test.images[index], "tiny", "int8", MICRO.engine)
    assert max(labels, key=labels.get) == "7" and "TFLite Micro" in status


def test_the_generated_files_and_main_cc_compile(tiny_export, tmp_path):
    """The model source compiles into the exact flatbuffer, 16-byte aligned; main.cc and the
    resolver type-check against docs/micro/tflm_interface (declarations only, NOT TFLM itself)."""
    from mnist_edge.export.micro import c_header, c_source, resolver_header

    gxx = shutil.which("g++") or pytest.skip("no g++ on this machine")
    flatbuffer = _flatbuffer(tiny_export)
    details = read_manifest(tiny_export).artifact(MICRO.file).details
    # main.cc is written for the CNN: the same generator under the CNN's names.
    (tmp_path / "model_micro.cc").write_text(c_source(flatbuffer, "cnn", "model.int8.tflite"))
    (tmp_path / "model_micro.h").write_text(
        c_header("cnn", len(flatbuffer), details["arena_bytes"], details["arena_measured_bytes"],
                 {"input": (1, 28, 28), "output": (1, 10)})
    )
    (tmp_path / "model_micro_ops.h").write_text(resolver_header("cnn", tuple(details["operators"])))
    (tmp_path / "dump.cc").write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_micro.h"\n'
        "int main() {\n  if (reinterpret_cast<std::uintptr_t>(g_cnn_model_data) % 16 != 0) return 2;\n"
        "  std::fwrite(g_cnn_model_data, 1, g_cnn_model_data_len, stdout);\n  return 0;\n}\n"
    )
    flags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}", f"-I{TFLM_INTERFACE}"]
    built = subprocess.run([gxx, *flags, str(tmp_path / "dump.cc"), str(tmp_path / "model_micro.cc"), "-o", str(tmp_path / "dump")],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert subprocess.run([str(tmp_path / "dump")], capture_output=True, timeout=60).stdout == flatbuffer
    checked = subprocess.run([gxx, *flags, "-fsyntax-only", str(MAIN_CC)], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr
