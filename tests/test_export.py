"""Export: every kind converts and passes parity on a small trained model, the figures are
recomputed here independently of the exporter, broken artifacts and failed converters are caught
(every failure listed), and a failed, killed or interrupted export leaves the previous one alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_edge import formats
from mnist_edge.export.parity import (
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
from mnist_edge.manifest import read_manifest

EXPECTED_FILES = {
    "model.onnx": ("onnx", "fp32", "onnxruntime"),
    "model.int8.onnx": ("onnx", "int8", "onnxruntime"),
    "model.ort": ("ort", "fp32", "onnxruntime"),
    "model.tflite": ("tflite", "fp32", "litert"),
    "model.fp16.tflite": ("tflite", "fp16", "litert"),
    "model.int8.tflite": ("tflite", "int8", "litert"),
    "model_micro.cc": ("tflm", "int8", "tflite-micro"),
}
# TFLite Micro's reference kernels take about 3 ms per image for the CNN (30 s for the test set):
# the CNN test below leaves the microcontroller kind out; tests/test_micro.py proves it on a tiny model.
SLOW_FAMILY = "micro"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


def _cli(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def test_every_artifact_is_published_with_its_measured_parity(mlp_export):
    raw = json.loads((mlp_export / "manifest.json").read_text())
    manifest = read_manifest(mlp_export)
    by_file = {a.file: a for a in manifest.artifacts}
    assert set(by_file) == set(EXPECTED_FILES)
    for file, (fmt, precision, engine) in EXPECTED_FILES.items():
        entry = by_file[file]
        path = mlp_export / file
        assert (entry.format, entry.precision, entry.engine) == (fmt, precision, engine)
        assert entry.bytes == path.stat().st_size
        assert entry.sha256 == sha256_file(path)
        assert entry.batch == formats.kind(file).batch
        assert 0.85 < entry.test_accuracy <= 1
        assert entry.parity.images == 10000 and entry.parity.reference == "keras"
        assert entry.passed  # every proof, the one against LiteRT's run of the same file too
    # fp32 artifacts match Keras exactly in class and within 1e-4 in probability.
    for file in ("model.onnx", "model.ort", "model.tflite"):
        assert by_file[file].parity.argmax_agreement == 1.0
        assert by_file[file].parity.max_abs_diff <= 1e-4
    # Quantized files are small and nearly as accurate; their size ratio is the measured one.
    for file, reference in (("model.int8.onnx", "model.onnx"), ("model.int8.tflite", "model.tflite")):
        int8 = by_file[file]
        assert int8.size_ratio == pytest.approx(int8.bytes / by_file[reference].bytes, abs=1e-4)
        assert int8.size_ratio <= 0.35
        assert manifest.model.test_accuracy - int8.test_accuracy <= 0.003
    # TFLite files have a static batch of one (mobile delegates, LiteRT.js); ONNX any batch.
    assert raw["input"]["shape"] == [None, 28, 28] and raw["output"]["shape"] == [None, 10]
    assert [a["batch"] for a in raw["artifacts"] if a["format"] == "tflite"] == [1, 1, 1]

    assert raw["input"]["name"] == "image" and raw["input"]["dtype"] == "float32"
    assert raw["input"]["range"] == [0.0, 1.0]
    assert raw["input"]["preprocessing"]["kind"] == "digit" and raw["input"]["preprocessing"]["box"] == 20
    assert raw["output"]["name"] == "probabilities"
    assert raw["class_names"] == [str(d) for d in range(10)]
    assert raw["test_set"]["images"] == 10000
    assert raw["model"]["sha256"] == sha256_file(mlp_export.parent / "model.keras")
    libraries = set(raw["libraries"])
    assert {"keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy"} <= libraries
    assert {"tensorflow-cpu", "tensorflow"} & libraries

    parity = (mlp_export / "parity.md").read_text()
    for file, entry in by_file.items():
        row = next(line for line in parity.splitlines() if line.startswith(f"| `{file}`"))
        assert f"{entry.test_accuracy:.2%}" in row and row.endswith("| pass |")


def test_parity_recomputed_independently(mlp_export, trained_mlp, mnist):
    """Keras and each artifact run here by the bare engines (not the exporter's code) on the same
    test images: the manifest's agreement and accuracy figures are what they measure."""
    import keras
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    x = mnist.test.images.astype(np.float32) / 255
    labels = mnist.test.labels
    reference = keras.models.load_model(trained_mlp / "model.keras", compile=False).predict(x, verbose=0)

    def bare_onnx(path: Path) -> np.ndarray:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

    def bare_tflite(path: Path) -> np.ndarray:
        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        rows = []
        for image in x:  # batch of one, as the file says
            feed = image[None]
            if inp["dtype"] == np.int8:
                scale, zero = inp["quantization"]
                feed = np.clip(np.round(feed / scale + zero), -128, 127).astype(np.int8)
            interpreter.set_tensor(inp["index"], feed)
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])
            if out["dtype"] == np.int8:
                scale, zero = out["quantization"]
                y = (y.astype(np.float32) - zero) * scale
            rows.append(y[0])
        return np.stack(rows)

    def bare_micro(path: Path, arena: int) -> np.ndarray:
        """The C array's bytes (read here with a regex, not the runtime's parser) in TFLite Micro."""
        import re

        from tflite_micro import runtime as tflm

        body = path.read_text().split("= {", 1)[1].split("};", 1)[0]
        interpreter = tflm.Interpreter.from_bytes(bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body)), arena_size=arena)
        inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)
        scale, zero = inp["quantization_parameters"]["scales"][0], inp["quantization_parameters"]["zero_points"][0]
        rows = []
        for image in np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8):
            interpreter.set_input(image[None], 0)
            interpreter.invoke()
            rows.append(interpreter.get_output(0)[0])
        scale, zero = out["quantization_parameters"]["scales"][0], out["quantization_parameters"]["zero_points"][0]
        return (np.stack(rows).astype(np.float32) - zero) * scale

    manifest = read_manifest(mlp_export)
    for artifact in manifest.artifacts:
        path = mlp_export / artifact.file
        if artifact.format == "tflite":
            candidate = bare_tflite(path)
        elif artifact.details and "arena_bytes" in artifact.details:
            candidate = bare_micro(path, artifact.details["arena_bytes"])
        else:
            candidate = bare_onnx(path)
        agreement = float((candidate.argmax(1) == reference.argmax(1)).mean())
        accuracy = float((candidate.argmax(1) == labels).mean())
        print(f"\n{artifact.file}: agreement {agreement:.4%}, accuracy {accuracy:.4%}")
        assert agreement == pytest.approx(artifact.parity.argmax_agreement, abs=1e-4), artifact.file
        assert accuracy == pytest.approx(artifact.test_accuracy, abs=1e-4), artifact.file
        assert float(np.abs(candidate - reference).max()) == pytest.approx(artifact.parity.max_abs_diff, rel=0.05, abs=1e-6)


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


def test_tflite_uses_builtin_ops_only_static_batch_and_int8_io(mlp_export):
    from ai_edge_litert.interpreter import Interpreter

    for file in ("model.tflite", "model.fp16.tflite", "model.int8.tflite"):
        interpreter = Interpreter(model_path=str(mlp_export / file))
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any("Flex" in op or op == "CUSTOM" for op in ops), (file, ops)
        assert list(interpreter.get_input_details()[0]["shape_signature"]) == [1, 28, 28], file
    interpreter = Interpreter(model_path=str(mlp_export / "model.int8.tflite"))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8


def test_cnn_exports_and_passes_parity(trained_cnn, mnist):
    from mnist_edge.export.exporter import export_model

    families = tuple(f for f in formats.families() if f != SLOW_FAMILY)
    manifest = export_model(trained_cnn, families=families, dataset=mnist, stream=open(os.devnull, "w"))
    assert {a.file for a in manifest.artifacts} == {k.file for k in formats.plan(families, formats.PRECISIONS)}
    on_disk = read_manifest(trained_cnn / "export")
    assert on_disk == manifest  # what was returned is what was written
    for a in on_disk.artifacts:
        assert a.parity.argmax_agreement >= (1.0 if a.precision == "fp32" else 0.995), a.file


def test_the_shifts_are_in_the_exported_graph_and_one_pass_exports_the_network_alone(trained_cnn, mnist, tmp_path):
    """The default CNN reads with test-time shifts: its export holds them (the manifest's Keras
    accuracy is the shifted one, and in onnxruntime the file equals the mean of the one-pass file
    over the moved copies); `one_pass` exports the network alone."""
    from mnist_edge import runtime
    from mnist_edge.export.exporter import export_model

    metrics = json.loads((trained_cnn / "metrics.json").read_text())
    shifts = [tuple(s) for s in metrics["test_time_shifts"]]
    assert len(shifts) == 4
    quiet = open(os.devnull, "w")
    exports = {}
    for one_pass in (False, True):
        model_dir = tmp_path / ("one-pass" if one_pass else "shifted") / "cnn"
        shutil.copytree(trained_cnn, model_dir, ignore=shutil.ignore_patterns("export*"))
        manifest = export_model(model_dir, families=("onnx",), precisions=("fp32",), dataset=mnist, one_pass=one_pass, stream=quiet)
        exports[one_pass] = runtime.load(model_dir / "export", file="model.onnx")
        expected = metrics["test_accuracy_one_pass"] if one_pass else metrics["test_accuracy"]
        assert manifest.model.test_accuracy == pytest.approx(expected, abs=1e-4)
        assert ("--one-pass" in manifest.model.accuracy_is) == one_pass  # the manifest says how it reads
        assert manifest.artifact("model.onnx").parity.argmax_agreement == 1.0

    images = mnist.test.images[:200].astype(np.float32) / 255
    images[:, :, 0] = 0.7  # ink on the frame's edge: a move must fill with background, not wrap round

    def moved(dy, dx):
        return np.pad(images, ((0, 0), (1, 1), (1, 1)))[:, 1 - dy:29 - dy, 1 - dx:29 - dx]

    one = exports[True].predict_array
    expected = np.mean([one(images)] + [one(moved(*s)) for s in shifts], axis=0)
    np.testing.assert_allclose(exports[False].predict_array(images), expected, atol=1e-5)
    np.testing.assert_allclose(exports[False].predict_array(images[:1]), expected[:1], atol=1e-5)


# --- the registry drives the plan and the command line ----------------------------------------


def test_a_new_artifact_kind_reaches_the_cli_and_the_plan(monkeypatch):
    import contextlib
    import io

    from mnist_edge.cli import build_parser
    from mnist_edge.export.exporter import plan_artifacts

    dummy = formats.ArtifactKind(
        "model.dummy", "dummy", "dummyfamily", "int8", "onnxruntime", "tests.test_export:no_converter"
    )
    monkeypatch.setattr(formats, "KINDS", formats.KINDS + (dummy,))
    # Built before stdout is redirected: several subcommand modules bind sys.stdout as a default.
    parser = build_parser()
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(out):
        parser.parse_args(["export", "--help"])  # the real command line's help, as a person asks for it
    help_text = out.getvalue()
    assert exit_info.value.code == 0
    assert "dummyfamily" in help_text and "model.dummy" in help_text
    assert plan_artifacts(("dummyfamily",), ("int8",)) == (dummy,)
    assert dummy in plan_artifacts(tuple(formats.families()), formats.PRECISIONS)


def test_formats_precisions_and_engines_are_listed_in_one_module():
    """Only mnist_edge/formats.py spells out the list of precisions, formats or engines: a sequence
    literal naming two or more of them anywhere else is a second registry."""
    import ast

    names = {*formats.PRECISIONS, *formats.formats(), *formats.ENGINES}
    root = Path(__file__).resolve().parents[1]
    offenders = []
    sources = [p for part in ("mnist_edge", "trainer", "export", "runtime", "demo") for p in (root / part).rglob("*.py")]
    for path in sources:
        if path.name == "formats.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                literals = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                if len(literals & names) >= 2:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not offenders, offenders


# --- parity checks catch broken artifacts --------------------------------------------------------


def _reference(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10)) * 4
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probabilities.astype(np.float32), probabilities.argmax(axis=1)


def test_artifact_with_wrong_weights_fails_parity(trained_mlp, mnist, tmp_path):
    """A real converted model whose weights were damaged: parity names the check and the figure."""
    import keras

    from mnist_edge.export.convert import ConversionJob, convert
    from mnist_edge.runtime.backends import open_session

    model = keras.models.load_model(trained_mlp / "model.keras", compile=False)
    x = mnist.test.images.astype(np.float32) / 255
    reference = model.predict(x, verbose=0)
    weights = model.get_weights()
    weights[-2] = weights[-2] * 1.01  # a 1% error in the last layer: barely visible, still wrong
    model.set_weights(weights)
    job = ConversionJob(model, x[:10], 17, scratch=tmp_path)
    path = convert(job, formats.kind("model.onnx"), tmp_path / "model.onnx")
    candidate = open_session("onnxruntime", path.read_bytes(), format="onnx").run(x)
    report = compare(reference, candidate, mnist.test.labels)
    failures = check(report, "fp32", Thresholds(), "model.onnx")
    atol = [f for f in failures if isinstance(f, AtolError)]
    assert len(atol) == 1 and report.max_abs_diff > 1e-4
    assert str(atol[0]).startswith(f"model.onnx: max |delta p| {report.max_abs_diff:.3g} exceeds the tolerance 0.0001")


def test_each_check_reports_its_own_error_with_the_figures():
    reference, labels = _reference()
    nudged = reference + 2e-4
    (failure,) = check(compare(reference, nudged, labels), "fp32", Thresholds(), "a.onnx")
    assert isinstance(failure, AtolError) and "max |delta p| 0.0002 exceeds the tolerance 0.0001" in str(failure)

    swapped = reference.copy()
    swapped[:20] = swapped[:20, ::-1]  # 20 images change class
    (failure,) = check(compare(reference, swapped, labels), "fp16", Thresholds(), "a.tflite")
    assert isinstance(failure, ArgmaxAgreementError) and "20 of 1000" in str(failure)
    # int8: every failed check is reported, not only the first.
    failures = check(compare(reference, swapped, labels, size_ratio=0.5), "int8", Thresholds(), "a.int8.onnx")
    assert [type(f) for f in failures] == [AccuracyDropError, ArgmaxAgreementError, SizeError]
    assert "2.00 points" in str(failures[0]) and "50.0% of the fp32 size" in str(failures[2])
    with pytest.raises(ShapeError):
        compare(reference, reference[:, :9], labels)
    broken = reference.copy()
    broken[0, 0] = np.nan
    with pytest.raises(ShapeError, match="non-finite"):
        compare(reference, broken, labels)
    # The same figures pass with overridden limits.
    assert check(compare(reference, nudged, labels), "fp32", Thresholds(fp32_max_abs_diff=1e-3), "a.onnx") == []


# --- a failed export keeps the previous one -------------------------------------------------------


@pytest.fixture
def model_copy(mlp_export, trained_mlp, tmp_path) -> Path:
    """A copy of the trained MLP folder, with its published export."""
    model_dir = tmp_path / "mlp"
    shutil.copytree(trained_mlp, model_dir)
    assert (model_dir / "export" / "manifest.json").is_file()
    return model_dir


def test_failed_export_leaves_the_previous_export_in_place(model_copy):
    """An impossible int8 limit: rejected with one line, and the old export is byte-identical."""
    before = _snapshot(model_copy / "export")
    result = _cli("export", str(model_copy), "--formats", "onnx", "--precisions", "int8", "--int8-max-accuracy-drop", "-1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr[-2000:]  # nothing but the error line
    line = result.stderr.strip()
    assert line.startswith("mnist-edge: error: export rejected, previous export left in place")
    assert "model.int8.onnx" in line and "points below the reference" in line
    assert _snapshot(model_copy / "export") == before
    rejected = read_manifest(model_copy / "export.rejected")
    assert [a.parity.passed for a in rejected.artifacts] == [False]
    assert "**FAIL**" in (model_copy / "export.rejected" / "parity.md").read_text()
    assert not list(model_copy.glob(".export-staging-*"))


def test_a_converter_that_raises_is_listed_and_the_previous_export_kept(model_copy, mnist, monkeypatch):
    from mnist_edge.export import convert
    from mnist_edge.export.exporter import export_model
    from mnist_edge.export.publish import ExportFailed

    def broken(job, kind, path):
        raise convert.ConversionError("the ORT tool crashed")

    monkeypatch.setattr(convert, "to_ort", broken)
    before = _snapshot(model_copy / "export")
    with pytest.raises(ExportFailed) as failure:
        export_model(model_copy, families=("onnx",), precisions=("fp32",), dataset=mnist, stream=open(os.devnull, "w"))
    assert failure.value.failures == ["model.ort: the ORT tool crashed"]
    assert _snapshot(model_copy / "export") == before
    parity = (model_copy / "export.rejected" / "parity.md").read_text()
    assert "model.ort: the ORT tool crashed" in parity and "`model.onnx`" in parity


def test_leftovers_of_a_killed_export_are_cleaned(model_copy, mnist):
    from mnist_edge.export.exporter import export_model

    stale = model_copy / ".export-staging-999999999-abc"  # no such process
    (stale / ".scratch").mkdir(parents=True)
    mine = model_copy / f".export-staging-{os.getpid()}-live"  # a running export's: kept
    mine.mkdir()
    export_model(model_copy, families=("onnx",), precisions=("fp32",), dataset=mnist, stream=open(os.devnull, "w"))
    assert not stale.exists() and mine.exists()
    assert {a.file for a in read_manifest(model_copy / "export").artifacts} == {"model.onnx", "model.ort"}

    # Killed between the two renames of a publish: the previous export is put back.
    os.replace(model_copy / "export", model_copy / "export.previous")
    from mnist_edge.export.publish import clean_leftovers

    clean_leftovers(model_copy)
    assert (model_copy / "export" / "manifest.json").is_file() and not (model_copy / "export.previous").exists()


def test_sigterm_stops_an_export_cleanly(model_copy):
    before = _snapshot(model_copy / "export")
    process = subprocess.Popen(
        [sys.executable, "-m", "mnist_edge", "export", str(model_copy)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    while not list(model_copy.glob(".export-staging-*")):  # wait until it is converting
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == ["mnist-edge: terminated; the previous export is unchanged"]
    assert not list(model_copy.glob(".export-staging-*"))
    assert _snapshot(model_copy / "export") == before


_EXIT_AT_ONCE = """
import os, signal, sys, time
from pathlib import Path
from mnist_edge import termination
from mnist_edge.quiet import captured_output

termination.install()
marks = Path(sys.argv[1])
with termination.on_exit_at_once(lambda: (marks / "outer").touch()):
    with captured_output():  # as while a converter runs: fd 2 points elsewhere
        with termination.exit_at_once(lambda: (marks / "inner").touch()):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            (marks / "went-on").touch()
"""


_STOP_WHILE_STAGING = """
import os, signal, sys, tempfile
from pathlib import Path
from mnist_edge import termination
from mnist_edge.export import publish

termination.install()
model_dir = Path(sys.argv[1])
make_folder = tempfile.mkdtemp

def mkdtemp_then_stop(*args, **kwargs):  # the stop lands right after the folder exists
    folder = make_folder(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
    return folder

tempfile.mkdtemp = mkdtemp_then_stop
for step in ("check_target", "staging"):
    try:
        publish.check_target(model_dir) if step == "check_target" else publish.Staging(model_dir).__enter__()
        print(step, "went on")
    except termination.Terminated:
        print(step, "stopped", sorted(p.name for p in model_dir.iterdir()))
"""


def test_a_stop_while_the_staging_folder_is_made_leaves_nothing(tmp_path):
    """The CI failure this answers: a SIGTERM landing between mkdtemp and the code that records the
    folder (the writability probe, Staging.__enter__) left a .export-staging-* folder behind."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    result = subprocess.run([sys.executable, "-c", _STOP_WHILE_STAGING, str(model_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["check_target stopped []", "staging stopped []"]


def test_a_signal_inside_a_converter_zone_cleans_up_and_exits_at_once(tmp_path):
    """What an export relies on: no exception raised into the converters, every cleanup run (the
    innermost first), the one line on the real stderr although fd 2 was captured, exit 143."""
    result = subprocess.run([sys.executable, "-c", _EXIT_AT_ONCE, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr.strip().splitlines() == ["mnist-edge: terminated"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inner", "outer"]


# --- data errors and the data the model was trained on --------------------------------------------


@pytest.mark.parametrize("command", ["export", "verify", "pipeline"])
def test_bad_data_is_exit_code_2_with_one_line(command, model_copy, tmp_path):
    target = {"export": [str(model_copy)], "verify": [str(model_copy / "export")], "pipeline": ["--out", str(tmp_path)]}
    result = _cli(command, *target[command], "--data-dir", str(tmp_path / "nowhere"), timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"mnist-edge: error: {tmp_path / 'nowhere'}: data folder does not exist"]


def test_export_refuses_data_the_model_was_not_trained_on(model_copy):
    if not FASHION.is_dir():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    result = _cli("export", str(model_copy), "--data-dir", str(FASHION), timeout=300)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("mnist-edge: error: ") and "was trained on the data set at" in line
    assert str(FASHION) in line and "--data-dir" in line and line.count("\n") == 0


def test_export_without_a_trained_model_is_one_clear_line(tmp_path):
    result = _cli("export", str(tmp_path / "nothing"), timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mnist-edge: error: {tmp_path / 'nothing' / 'model.keras'}: no trained model here; "
        f"run `mnist-edge train --model <name> --out {tmp_path}`"
    ]


# --- verify ------------------------------------------------------------------------------------


def _verify(export_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return _cli("verify", str(export_dir), *extra, timeout=300)


def test_verify_passes_a_good_export_and_prints_nothing_else(mlp_export):
    result = _verify(mlp_export)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == len(EXPECTED_FILES)
    assert result.stderr == ""  # no native library chatter


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("flip_byte", "sha256"),
        ("truncate", "size"),
        ("delete", "missing"),
        ("manifest_accuracy", "differs from the manifest's"),
        ("sha_correct_garbage", "onnxruntime cannot load it"),
    ],
)
def test_verify_catches_a_damaged_export(mlp_export, tmp_path, damage, reason):
    export_dir = tmp_path / "export"
    shutil.copytree(mlp_export, export_dir)
    target = export_dir / "model.int8.onnx"
    manifest_file = export_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == "model.int8.onnx")
    if damage == "flip_byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-100])
    elif damage == "delete":
        target.unlink()
    elif damage == "manifest_accuracy":  # the file is intact but the manifest claims better
        entry["test_accuracy"] = round(entry["test_accuracy"] + 0.01, 6)
    else:  # bytes that are not a model, with a manifest that vouches for them
        target.write_bytes(b"not an onnx model" * 100)
        entry["bytes"], entry["sha256"] = target.stat().st_size, sha256_file(target)
    manifest_file.write_text(json.dumps(manifest))
    result = _verify(export_dir)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "model.int8.onnx" in failed[0], result.stdout
    assert reason in failed[0]
    assert result.stderr.strip() == "mnist-edge: error: verify failed for model.int8.onnx"


def test_verify_tolerance_flag(mlp_export, tmp_path):
    export_dir = tmp_path / "export"
    shutil.copytree(mlp_export, export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    entry = next(a for a in manifest["artifacts"] if a["file"] == "model.onnx")
    entry["test_accuracy"] = round(entry["test_accuracy"] + 0.001, 6)  # 10 images better than measured
    (export_dir / "manifest.json").write_text(json.dumps(manifest))
    assert _verify(export_dir, "--engine", "onnxruntime").returncode == 1
    assert _verify(export_dir, "--engine", "onnxruntime", "--tolerance", "0.002").returncode == 0


def test_verify_refuses_another_test_set(mlp_export):
    if not FASHION.is_dir():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    result = _verify(mlp_export, "--data-dir", str(FASHION))
    assert result.returncode == 1
    assert "is not the one this export was measured on" in result.stderr and result.stderr.count("\n") == 1


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
    from mnist_edge.export.convert import ConversionError, converting

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
