"""Why the model decides what it does: attribution maps (training side, integrated gradients) and
occlusion maps (runtime side) point where the answer is known; the maps are read back in words;
McNemar's test and the calibration error match hand-computed cases; the report, compare.md and
the overfitting experiment are written from real (small) runs.

Models here are tiny: hand-built ones whose output depends on one region of the image, and the
session's small trained MLP/CNN. Timings are printed, never asserted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_edge.trainer.calibration import bin_index, calibration_summary, coverage_table, expected_calibration_error
from mnist_edge.trainer.compare import chi_square_1dof_p, exact_binomial_p, mcnemar
from mnist_edge.trainer.explain import Evidence, describe_mistake, read_evidence

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIZE = 28
REGION = (slice(3, 11), slice(4, 12))  # rows 3-10, columns 4-11: the top left of the image
TARGET = 3


def region_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[REGION] = 1
    return mask


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Chebyshev distance of every pixel to the nearest True pixel of `mask`."""
    points = np.indices(mask.shape).reshape(2, -1).T
    return np.abs(points[:, None, :] - np.argwhere(mask)[None]).max(axis=2).min(axis=1).reshape(mask.shape)


def share_inside(attribution: np.ndarray, mask: np.ndarray) -> float:
    magnitude = np.abs(attribution)
    return float(magnitude[mask > 0].sum() / magnitude.sum())


def ink_everywhere(seed: int = 0) -> np.ndarray:
    """An image with ink (>= 0.5) on every pixel, so any region can matter."""
    return np.random.default_rng(seed).uniform(0.5, 1.0, (SIZE, SIZE)).astype(np.float32)


# --- training side: integrated gradients on Keras models built by hand ---------------------------


def region_keras_model(*, hidden: int | None = 16, weight: float = 1.0):
    """A Keras model whose class scores depend only on the pixels in REGION: with `hidden`, a
    ReLU layer whose weights outside REGION are zero; without, class TARGET's logit is `weight`
    times the sum of REGION's pixels and every other logit is 0."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(SIZE, SIZE), name="image")
    x = keras.layers.Flatten()(inputs)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    mask = region_mask().reshape(-1, 1)
    if hidden:
        kernel, bias = model.get_layer("hidden").get_weights()
        model.get_layer("hidden").set_weights([kernel * mask, bias])
    else:
        kernel = np.zeros((SIZE * SIZE, 10), np.float32)
        kernel[:, TARGET] = weight * mask[:, 0]
        model.get_layer("probabilities").set_weights([kernel, np.zeros(10, np.float32)])
    return model


def test_integrated_gradients_point_at_the_only_region_that_matters():
    from mnist_edge.trainer.explain import class_scores, integrated_gradients

    model = region_keras_model()
    scores = class_scores(model)
    image = ink_everywhere()
    for target in (TARGET, 7):
        attribution = integrated_gradients(scores, image, target)
        assert attribution.shape == (SIZE, SIZE) and np.abs(attribution).sum() > 0
        assert share_inside(attribution, region_mask()) > 0.999
        # Completeness: the map adds up to score(x) minus the mean score of the black and white references.
        score = lambda x: float(np.asarray(scores(np.asarray(x, np.float32)[None]))[0, target])  # noqa: E731
        expected = score(image) - (score(np.zeros_like(image)) + score(np.ones_like(image))) / 2
        assert attribution.sum() == pytest.approx(expected, rel=0.02, abs=1e-3)


def test_the_class_score_is_the_logit_not_the_saturated_probability():
    from mnist_edge.trainer.explain import class_scores

    model = region_keras_model(hidden=None, weight=2.0)
    image = ink_everywhere()
    logits = np.asarray(class_scores(model)(image[None]))[0]
    # 64 pixels of ink between 0.5 and 1 times 2: a logit far past where softmax saturates.
    assert logits[TARGET] == pytest.approx(2 * image[REGION].sum(), rel=1e-5)
    assert np.allclose(np.delete(logits, TARGET), 0)


def test_maps_are_read_back_in_words():
    """Missing ink counts too: with a white reference, empty pixels where the class wants none
    carry evidence for it, and the words say where and on what."""
    from mnist_edge.trainer.explain import class_scores, integrated_gradients

    image = np.zeros((SIZE, SIZE), np.float32)
    image[2:26, 2] = image[2:26, 25] = image[2, 2:26] = image[25, 2:26] = 1.0  # a square frame of ink
    image[6:9, 5:12] = 1.0  # a stroke inside REGION (top left)
    for weight, where, kind in ((1.0, "top left", "in the strokes"), (-1.0, "top left", "in empty space")):
        model = region_keras_model(hidden=None, weight=weight)
        attribution = integrated_gradients(class_scores(model), image, TARGET)
        evidence = read_evidence(image, attribution)
        # weight +1: ink in REGION is the evidence; weight -1: the class wants no ink there, so
        # REGION's empty pixels are.
        assert evidence.where == where and evidence.kind.startswith(kind), evidence

    centre = np.zeros((SIZE, SIZE))
    centre[12:16, 12:16] = 1.0  # evidence in the empty middle of the frame
    assert read_evidence(image, centre) == Evidence("centre", 0.0, 16.0)
    bottom_right = np.zeros((SIZE, SIZE))
    bottom_right[25, 21:26] = bottom_right[21:26, 25] = 1.0  # along the frame's corner
    found = read_evidence(image, bottom_right)
    assert found.where == "bottom right" and found.kind == "in the strokes"
    assert read_evidence(image, -centre).where == "nowhere"

    sentence = describe_mistake("9", "4", Evidence("top", 0.1, 10.0), Evidence("top", 0.0, 5.0), Evidence("left", 0.9, 1.0))
    assert sentence == (
        "The evidence for 4 is strongest at the top of the digit, in empty space, where there is no ink; "
        "the strongest evidence against 9 is at the top, in empty space, where there is no ink; "
        "little spoke for 9 (10% of the evidence for 4)."
    )


# --- runtime side: occlusion through an exported model built by hand ------------------------------


def write_region_export(folder: Path, mask: np.ndarray, target: int = TARGET) -> Path:
    """An export folder (model.onnx + manifest.json) of a hand-built ONNX model: class `target`'s
    logit is half the sum of the image's pixels under `mask`, every other logit 0."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mnist_edge.data import DIGIT_NAMES
    from mnist_edge.files import sha256_file
    from mnist_edge.manifest import (
        SCHEMA_VERSION, Artifact, DataInfo, InputSpec, Manifest, ModelInfo, OutputSpec, Proof, write_manifest,
    )

    weights = np.zeros((1, 10), np.float32)
    weights[0, target] = 0.5
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["image", "mask"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axes"], ["ink"], keepdims=0),
            helper.make_node("Unsqueeze", ["ink", "last"], ["ink_column"]),
            helper.make_node("MatMul", ["ink_column", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "region",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [
            numpy_helper.from_array(mask.astype(np.float32), "mask"),
            numpy_helper.from_array(np.array([1, 2], np.int64), "axes"),
            numpy_helper.from_array(np.array([1], np.int64), "last"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    proof = Proof("onnxruntime", "hand-built", 0, 0.0, 0.0, 1.0, 0, 0.0, 0.0, True)
    size, digest = (folder / "model.onnx").stat().st_size, sha256_file(folder / "model.onnx")
    artifact = Artifact("model.onnx", "onnx", "fp32", "onnxruntime", size, digest, None, False, 0.0, None, 0.0, (proof,))
    manifest = Manifest(
        SCHEMA_VERSION, "2026-01-01T00:00:00Z", {}, {}, {}, ModelInfo("region", "model.keras", "0" * 64, 1, 0.0),
        InputSpec.for_images("image", SIZE, SIZE, "digit"), OutputSpec("probabilities", (None, 10), "float32"),
        DIGIT_NAMES, DataInfo("none", 0, "0" * 64), {}, {}, 17, (artifact,),
    )
    write_manifest(folder, manifest)
    return folder


def test_occlusion_map_points_at_the_only_region_that_matters(tmp_path):
    from mnist_edge import runtime
    from mnist_edge.runtime.explain import occlusion_map

    mask = region_mask()
    predictor = runtime.load(write_region_export(tmp_path / "export", mask))
    image = ink_everywhere()
    heat = occlusion_map(predictor, image)
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
    assert predictor.predict_array(image[None])[0].argmax() == TARGET  # the default target is the answer
    assert heat[REGION].min() > 0  # every pixel of the region supported the answer
    reach = np.zeros_like(mask)
    reach[0:14, 2:14] = 1  # the pixels of the 4x4 squares (every 2 pixels) that overlap the region
    assert np.all(heat[reach == 0] == 0)
    # The squares straddling the region's edge blur it, yet its 64 pixels, 38% of the 168 within
    # reach, hold most of the map, and the strongest pixels are inside.
    assert share_inside(heat, mask) > 0.6
    assert mask[np.unravel_index(heat.argmax(), heat.shape)] == 1
    # Another class: covering the region takes evidence from class 3 and so gives some to class 5.
    assert heat.sum() > 0 and occlusion_map(predictor, image, target=5)[REGION].max() < 0

    empty = np.zeros((SIZE, SIZE), np.float32)
    empty[20:24, 20:24] = 1.0  # ink only where the model does not look: nothing matters
    assert np.all(occlusion_map(predictor, empty) == 0)
    with pytest.raises(runtime.InvalidImageError, match=r"shape \[28, 28\]"):
        occlusion_map(predictor, np.zeros((1, SIZE, SIZE), np.float32))


@pytest.mark.litert
def test_occlusion_map_is_the_same_through_every_engine(mlp_export, mnist):
    """One batched call works for a LiteRT artifact with a static batch of 1 too: the session
    loops, and the map equals onnxruntime's."""
    import time

    from mnist_edge import runtime
    from mnist_edge.runtime.explain import occlusion_map

    x = mnist.test.images[0].astype(np.float32) / 255
    maps, timings = {}, {}
    for engine, precision in (("onnxruntime", "fp32"), ("litert", "fp32")):
        predictor = runtime.load(mlp_export, engine=engine, precision=precision)
        start = time.perf_counter()
        maps[engine] = occlusion_map(predictor, x)
        timings[engine] = (time.perf_counter() - start) * 1000
    assert runtime.load(mlp_export, engine="litert").artifact.batch == 1
    assert np.abs(maps["onnxruntime"]).max() > 0.05
    np.testing.assert_allclose(maps["litert"], maps["onnxruntime"], atol=1e-3)
    heat = maps["onnxruntime"]
    distance = distance_to(x > 0)
    assert np.all(heat[distance > 3] == 0)  # no 4x4 square around these pixels holds any ink
    assert distance[np.unravel_index(heat.argmax(), heat.shape)] <= 1  # the answer rests on the strokes
    print("\nocclusion map of one digit (small MLP): " + ", ".join(f"{e} {t:.1f} ms" for e, t in timings.items()))


# --- McNemar and calibration: hand-computed cases ----------------------------------------------------


def test_mcnemar_matches_hand_computed_cases():
    # 13 discordant images split 10 / 3: exact two-sided binomial,
    # 2 * (C(13,0) + C(13,1) + C(13,2) + C(13,3)) / 2^13 = 2 * (1 + 13 + 78 + 286) / 8192.
    small = mcnemar(10, 3)
    assert small["method"] == "exact binomial"
    assert small["p_value"] == pytest.approx(756 / 8192)
    assert mcnemar(3, 10)["p_value"] == small["p_value"]
    assert exact_binomial_p(6, 12) == 1.0  # an even split is no evidence at all
    # 42 discordant images split 30 / 12: chi-square with continuity correction, (|30 - 12| - 1)^2 / 42.
    large = mcnemar(30, 12)
    assert large["method"] == "chi-square with continuity correction"
    assert large["statistic"] == pytest.approx(289 / 42)
    # Textbook critical values of chi-square with one degree of freedom: 3.841 for 5%, 6.635 for 1%.
    assert chi_square_1dof_p(3.841458820694124) == pytest.approx(0.05, rel=1e-6)
    assert chi_square_1dof_p(6.634896601021214) == pytest.approx(0.01, rel=1e-6)
    assert 0.005 < large["p_value"] < 0.01  # 6.88 lies just past the 1% point
    assert mcnemar(0, 0)["p_value"] == 1.0


def test_ece_of_a_calibrated_set_is_about_zero_and_of_a_miscalibrated_one_is_not():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.1, 1.0, 200_000)
    calibrated = rng.uniform(size=confidence.size) < confidence  # right with exactly the stated chance
    assert expected_calibration_error(confidence, calibrated) < 0.005
    overconfident = rng.uniform(size=confidence.size) < confidence - 0.2  # 20 points less often right
    assert expected_calibration_error(confidence, overconfident) == pytest.approx(0.2, abs=0.02)

    # By hand: two answers at 0.95 (one right) and two at 0.55 (both right), each pair half the set:
    # 0.5 * |0.95 - 0.5| + 0.5 * |0.55 - 1.0| = 0.45.
    assert expected_calibration_error([0.95, 0.95, 0.55, 0.55], [True, False, True, True]) == pytest.approx(0.45)
    # Bin edges: bin i holds (i/15, (i+1)/15]; 1.0 is in the last bin, 1/15 in the first.
    assert bin_index(np.array([0.0, 1 / 15, 1 / 15 + 1e-9, 0.5, 1.0])).tolist() == [0, 0, 1, 7, 14]


def test_rejecting_doubtful_answers_trades_coverage_for_accuracy():
    confidence = np.array([0.99, 0.98, 0.97, 0.8, 0.6, 0.55])
    correct = np.array([True, True, True, False, True, False])
    rows = {r["threshold"]: r for r in coverage_table(confidence, correct, thresholds=(0.5, 0.7, 0.9, 0.999))}
    assert rows[0.5]["coverage"] == 1.0 and rows[0.5]["accuracy"] == pytest.approx(4 / 6)
    assert rows[0.7] == {
        "threshold": 0.7, "coverage": pytest.approx(4 / 6), "accuracy": 0.75, "rejected": 2,
        "mistakes_rejected": 1, "correct_rejected": 1, "mistakes": 2,
    }
    assert rows[0.9]["accuracy"] == 1.0 and rows[0.9]["mistakes_rejected"] == 2
    assert rows[0.999]["coverage"] == 0.0 and rows[0.999]["accuracy"] is None

    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    summary = calibration_summary(probabilities, np.array([0, 0, 0]))
    assert summary["accuracy"] == pytest.approx(2 / 3) and summary["mean_confidence"] == pytest.approx(2.3 / 3)
    assert sum(b["count"] for b in summary["bins"]) == 3 and summary["bins_count"] == 15


# --- the report of a trained model ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_report_has_maps_calibration_and_the_random_grid(name, request, mnist):
    import keras

    from mnist_edge.trainer.explain import EXPLAINED_MISTAKES

    model_dir = request.getfixturevalue(f"trained_{name}")
    for picture in ("mistakes_explained.png", "reliability.png", "random_predictions.png"):
        assert (model_dir / picture).read_bytes()[:8] == PNG_MAGIC, picture
    metrics = json.loads((model_dir / "metrics.json").read_text())
    report = (model_dir / "report.md").read_text()

    # The calibration figures are the test set's: recomputed here from the saved model, read as its
    # export reads it (with its recipe's test-time shifts, if any).
    from mnist_edge.trainer.models import with_test_time_shifts
    from mnist_edge.trainer.record import read_record

    model = with_test_time_shifts(
        keras.models.load_model(model_dir / "model.keras", compile=False), read_record(model_dir).test_time_shifts
    )
    probabilities = model.predict(mnist.test.images.astype(np.float32) / 255, verbose=0)
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == mnist.test.labels
    ece = expected_calibration_error(confidence, correct)
    assert metrics["calibration"]["ece"] == pytest.approx(ece, abs=1e-5)
    assert f"**{metrics['calibration']['ece']:.4f}**" in report and "15 equal-width" in report
    assert sum(b["count"] for b in metrics["calibration"]["bins"]) == len(mnist.test)

    # The random grid: seeded, right ones really right, wrong ones really wrong.
    shown = metrics["sample"]["images"]
    assert len({item["index"] for item in shown}) == len(shown) == 32
    for item in shown:
        assert item["correct"] == bool(correct[item["index"]])
        assert item["predicted"] == str(probabilities[item["index"]].argmax())

    # One line per explained mistake, in the order of the worst mistakes, each read from its maps.
    worst = metrics["mistakes"]["worst"][:EXPLAINED_MISTAKES]
    assert "## Why it went wrong" in report and "integrated gradients" in report and "Grad-CAM" in report
    listed = [line for line in report.splitlines() if line.startswith("- **#")]
    assert [int(line[5:].split(",")[0]) for line in listed] == [item["index"] for item in worst]
    assert all("The evidence for" in line or "No pixel pushed" in line for line in listed)


def test_refresh_report_rewrites_an_old_model_folder(trained_mlp, mnist, tmp_path):
    """A model folder from before the maps (no calibration in metrics.json) gets the new report,
    its model and history untouched; the pipeline does this for models it reuses."""
    from mnist_edge.trainer.report import refresh_report

    folder = tmp_path / "mlp"
    shutil.copytree(trained_mlp, folder, ignore=shutil.ignore_patterns("export*"))
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("calibration", "sample"):
        del metrics[key]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    for picture in ("mistakes_explained.png", "reliability.png", "random_predictions.png"):
        (folder / picture).unlink()
    before = (folder / "model.keras").read_bytes()
    refreshed = refresh_report(folder, mnist)
    assert refreshed["calibration"] == json.loads((trained_mlp / "metrics.json").read_text())["calibration"]
    assert (folder / "mistakes_explained.png").is_file() and (folder / "model.keras").read_bytes() == before
    assert (folder / "report.md").read_text() == (trained_mlp / "report.md").read_text()


# --- MLP vs CNN ---------------------------------------------------------------------------------------


def test_compare_writes_the_paired_figures_and_mcnemar(mlp_export, trained_cnn, mnist, tmp_path):
    import os

    from mnist_edge import runtime
    from mnist_edge.export.exporter import export_model
    from mnist_edge.trainer.compare import write_comparison

    artifacts = tmp_path / "artifacts"
    shutil.copytree(mlp_export.parent, artifacts / "mlp")
    shutil.copytree(trained_cnn, artifacts / "cnn", ignore=shutil.ignore_patterns("export*"))
    with open(os.devnull, "w") as quiet:
        export_model(artifacts / "cnn", families=("onnx",), precisions=("fp32",), dataset=mnist, stream=quiet)
        result = write_comparison(artifacts / "mlp", artifacts / "cnn", dataset=mnist, stream=quiet)

    x = mnist.test.images.astype(np.float32) / 255
    right = {
        name: runtime.load(artifacts / name / "export").predict_array(x).argmax(axis=1) == mnist.test.labels
        for name in ("mlp", "cnn")
    }
    only_mlp, only_cnn = int((right["mlp"] & ~right["cnn"]).sum()), int((~right["mlp"] & right["cnn"]).sum())
    assert (result["mcnemar"]["first_only"], result["mcnemar"]["second_only"]) == (only_mlp, only_cnn)
    assert result["both_right"] == int((right["mlp"] & right["cnn"]).sum())
    assert result["mcnemar"]["p_value"] == mcnemar(only_mlp, only_cnn)["p_value"]
    mlp_side, cnn_side = result["sides"]
    assert mlp_side["export_accuracy"] == pytest.approx(right["mlp"].mean())
    assert cnn_side["artifacts"]["model.onnx"] == (artifacts / "cnn" / "export" / "model.onnx").stat().st_size
    assert "measured by compare" in mlp_side["latency_source"]  # no bench.json here

    text = (artifacts / "compare.md").read_text()
    assert f"**{only_mlp} only the mlp gets right**" in text and f"**{only_cnn} only the cnn gets right**" in text
    assert f"**{result['mcnemar']['p_value']:.3g}**" in text and "McNemar" in text
    assert (artifacts / "compare_disagreements.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((artifacts / "compare.json").read_text()) == json.loads(json.dumps(result))

    # Latency from the bench's figures when they are there (and only for what the bench measured).
    from mnist_edge.trainer.compare import bench_latency, find_bench

    bench = {"threads": 1, "artifacts": [{"model": "mlp", "artifact": "model.onnx", "latency_p50_ms": 0.123}]}
    (artifacts / "bench.json").write_text(json.dumps(bench))
    found, path = find_bench(None, artifacts)
    assert found == bench and path == artifacts / "bench.json"
    latency, source = bench_latency(found, "mlp", "model.onnx", path)
    assert latency == 0.123 and str(path) in source
    assert bench_latency(found, "cnn", "model.onnx", path) == (None, "")


def test_compare_errors_are_one_line(trained_mlp, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "compare", str(trained_mlp), str(tmp_path / "nothing")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"mnist-edge: error: {tmp_path / 'nothing'}: not a trained model folder (no metrics.json); "
        "train it first with mnist-edge train"
    )


# --- the overfitting experiment ---------------------------------------------------------------------


def test_dropout_reaches_the_model(mnist):
    import io

    from mnist_edge.trainer.train import TrainConfig, fit_model

    for dropout, rates in ((0.0, [0.0, 0.0]), (0.5, [0.5, 0.5])):
        model, *_, config = fit_model(mnist, TrainConfig(model="mlp", epochs=1, limit=600, dropout=dropout), stream=io.StringIO())
        assert [layer.rate for layer in model.layers if "dropout" in layer.name] == rates
        assert config.dropout == dropout


def test_overfitting_experiment_runs_with_one_command(tmp_path):
    out = tmp_path / "overfitting"
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "experiment", "overfitting", "--epochs", "3", "--limit", "2000",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "overfitting.json").read_text())
    runs = data["runs"]
    assert [(r["dropout"], r["augment"]) for r in runs] == [(0.0, False), (0.3, False), (0.3, True)]
    for run in runs:
        history, figures = run["history"], run["figures"]
        assert len(history["clean_loss"]) == len(history["val_loss"]) == figures["epochs_run"] <= 3
        assert figures["turn_epoch"] == int(np.argmin(history["val_loss"])) + 1
        assert figures["accuracy_gap"] == pytest.approx(history["clean_accuracy"][-1] - history["val_accuracy"][-1], abs=1e-4)
        assert 0.5 < figures["test_accuracy"] <= 1
    assert (out / "overfitting.png").read_bytes()[:8] == PNG_MAGIC
    report = (out / "experiment.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| ") and "%" in line]
    assert [line.split(" | ")[0][2:] for line in table] == ["no dropout, no augmentation", "dropout", "dropout + augmentation"]
    for run in runs:
        assert f"{run['figures']['test_accuracy']:.2%}" in report
    assert "| dropout + augmentation |" in result.stdout  # the table is printed too


# --- the demo's "what the model looked at" overlay ---------------------------------------------------

from test_demo import (  # noqa: E402, F401  (model_root and server are fixtures: one demo server for this module)
    CHROMIUM, CHROMIUM_ARGS, SEVEN, draw_lines, model_root, server, sketch_value, top_label,
)


def red_pixels(overlay: np.ndarray) -> np.ndarray:
    """Where the overlay says "the model relied on this": clearly red."""
    rgb = overlay[..., :3].astype(int)
    return (rgb[..., 0] > 150) & (rgb[..., 0] > rgb[..., 1] + 80) & (rgb[..., 0] > rgb[..., 2] + 80)


def near_ink(overlay: np.ndarray, model_input: np.ndarray) -> None:
    """The overlay (224x224, 8x8 screen pixels per model pixel) is red on or right next to the
    strokes of the model input, and nowhere far from them."""
    red = red_pixels(overlay)[::8, ::8]
    distance = distance_to(model_input[::8, ::8] > 64)
    assert red.any(), "no red in the overlay"
    assert np.all(distance[red] <= 3)  # a 4x4 square reaches 3 pixels past the ink, no further
    assert np.mean(distance[red] <= 1) > 0.5, distance[red]


def test_demo_explains_a_drawing_through_every_engine(model_root):
    from mnist_edge.demo.app import DigitDemo

    demo = DigitDemo.from_root(model_root)
    drawing = sketch_value(draw_lines(SEVEN))
    for engine, precision in (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("litert", "fp32")):
        labels, model_input, _ = demo.predict(drawing, "mlp", precision, engine)
        overlay, caption = demo.explain(drawing, "mlp", precision, engine)
        assert overlay.shape == (224, 224, 3) and overlay.dtype == np.uint8
        assert "lowers the probability of **7**" in caption and "ms" in caption, caption
        near_ink(overlay, model_input)
        assert top_label(labels) == "7"
        print(f"\n{engine} {precision}: {caption}")
    assert demo.explain(None, "mlp", "fp32", "onnxruntime") == (None, "")
    blank = sketch_value(np.zeros((400, 400, 4), np.uint8))
    assert demo.explain(blank, "mlp", "fp32", "onnxruntime") == (None, "")  # predict's status says why
    assert demo.explain(drawing, "resnet", "fp32", "onnxruntime") == (None, "")


def test_api_returns_the_overlay_of_a_drawing(server, tmp_path):
    from gradio_client import Client, handle_file
    from PIL import Image

    drawing = tmp_path / "seven.png"
    Image.fromarray(sketch_value(draw_lines(SEVEN))["composite"]).save(drawing)
    value = {"background": None, "layers": [], "composite": handle_file(str(drawing)), "id": None}
    client = Client(server, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "downloads"))
    try:
        assert "/explain_drawing" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        labels, model_input, status = client.predict(value, "mlp", "fp32", "onnxruntime", api_name="/predict_drawing")
        overlay, caption = client.predict(value, "mlp", "fp32", "onnxruntime", api_name="/explain_drawing")
        assert labels["label"] == "7", status
        assert "lowers the probability of **7**" in caption and "one batched call of model.onnx" in caption, caption
        near_ink(np.asarray(Image.open(overlay)), np.asarray(Image.open(model_input).convert("L")))
        # LiteRT's static batch-1 artifact explains the same drawing, looping inside its session.
        _, caption = client.predict(value, "mlp", "fp32", "litert", api_name="/explain_drawing")
        assert "run one image at a time by LiteRT" in caption, caption
        # Nothing drawn: no overlay, and the server keeps serving.
        empty = {"background": None, "layers": [], "composite": None, "id": None}
        assert client.predict(empty, "mlp", "fp32", "onnxruntime", api_name="/explain_drawing") == (None, "")
        print(f"\nAPI overlay: {caption}")
    finally:
        client.close()


@pytest.mark.browser
def test_browser_shows_the_overlay_next_to_the_model_input(server, test_artifacts_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium`")
    from io import BytesIO

    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(server, wait_until="load")
            brush = page.locator("#sketch button[aria-label='Brush']")
            expect(brush).to_be_visible(timeout=30_000)
            page.wait_for_timeout(500)  # the canvas finishes setting up after the toolbar shows
            box = page.locator("#sketch canvas").first.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            brush.click()
            points = [(-80, -100), (80, -100), (-10, 110)]  # a 7, as tests/test_demo.py draws it
            page.mouse.move(x + points[0][0], y + points[0][1])
            page.mouse.down()
            for px, py in points[1:]:
                page.mouse.move(x + px, y + py, steps=20)
            page.mouse.up()

            expect(page.locator("#prediction [data-testid='label-output-value']")).to_have_text("7", timeout=20_000)
            caption = page.locator("#looked-at-caption")
            expect(caption).to_contain_text("lowers the probability of 7", timeout=20_000)
            expect(caption).to_contain_text("one batched call of model.onnx")
            images = {}
            for name in ("model-input", "looked-at"):
                source = page.locator(f"#{name} img").get_attribute("src")
                images[name] = np.asarray(Image.open(BytesIO(page.request.get(source).body())))
            near_ink(images["looked-at"], images["model-input"][..., 0] if images["model-input"].ndim == 3 else images["model-input"])
            # Side by side: the overlay sits to the right of the model input, level with it.
            left, right = (page.locator(f"#{name}").bounding_box() for name in ("model-input", "looked-at"))
            assert right["x"] >= left["x"] + left["width"] - 1 and abs(right["y"] - left["y"]) < 5
            print(f"\nbrowser: {caption.inner_text()}")
            page.screenshot(path=str(test_artifacts_dir / "demo-overlay.png"), full_page=True)
        finally:
            browser.close()
