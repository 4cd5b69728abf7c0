"""Training on real MNIST slices: the models learn, and every report file is written and honest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mnist_edge.trainer.analysis import analyse, confusion_matrix, overfitting

REPORT_FILES = ("model.keras", "history.json", "metrics.json", "curves.png", "confusion.png", "misclassified.png", "report.md")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_short_fit_writes_every_file_and_learns(name, request, mnist):
    model_dir = request.getfixturevalue(f"trained_{name}")
    for file in REPORT_FILES:
        path = model_dir / file
        assert path.is_file() and path.stat().st_size > 0, f"{file} missing or empty"
    for picture in ("curves.png", "confusion.png", "misclassified.png"):
        assert (model_dir / picture).read_bytes()[:8] == PNG_MAGIC

    metrics = json.loads((model_dir / "metrics.json").read_text())
    # A few epochs on a few thousand images: far above chance (10%), measured on all 10,000 test images.
    assert metrics["test_accuracy"] > 0.85
    assert metrics["test_images"] == 10000
    for key in ("test_loss", "params", "train_seconds", "epochs_run", "best_epoch", "per_class",
                "confusion_matrix", "most_confused", "overfitting"):
        assert key in metrics, key
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.trace(matrix) / 10000 == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    assert matrix.sum(axis=1).tolist() == mnist.test.class_counts().tolist()
    assert len(metrics["per_class"]) == 10
    assert all(0 <= c["f1"] <= 1 for c in metrics["per_class"])
    assert "verdict" in metrics["overfitting"] and metrics["overfitting"]["verdict"]

    history = json.loads((model_dir / "history.json").read_text())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert len(history[key]) == metrics["epochs_run"], key
    assert 1 <= metrics["best_epoch"] <= metrics["epochs_run"]
    assert history["val_loss"][metrics["best_epoch"] - 1] == min(history["val_loss"])
    assert history["learning_rate"][-1] < history["learning_rate"][0]  # the schedule decays

    report = (model_dir / "report.md").read_text()
    for picture in ("curves.png", "confusion.png", "misclassified.png"):
        assert f"]({picture})" in report
    assert f"{metrics['test_accuracy']:.2%}" in report
    assert "Confident mistakes" in report and "Ambiguous mistakes" in report


def test_saved_model_reproduces_the_reported_accuracy(trained_mlp, mnist):
    import keras

    model = keras.models.load_model(trained_mlp / "model.keras", compile=False)
    probabilities = model.predict(mnist.test.images.astype(np.float32) / 255, verbose=0)
    metrics = json.loads((trained_mlp / "metrics.json").read_text())
    assert (probabilities.argmax(1) == mnist.test.labels).mean() == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)


def _moved(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images moved dy rows down and dx columns right, zero-filled (written independently of the model code)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = images[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_test_time_shifts_read_the_mean_of_the_moved_copies_with_one_set_of_weights(trained_cnn, mnist):
    import keras

    from mnist_edge.trainer.models import SHIFTS_4, require_shifts, with_test_time_shifts

    model = keras.models.load_model(trained_cnn / "model.keras", compile=False)
    shifted = with_test_time_shifts(model, SHIFTS_4)
    assert with_test_time_shifts(model, ()) is model
    assert shifted.input_shape == (None, 28, 28) and shifted.output_shape == (None, 10)
    assert shifted.count_params() == model.count_params()  # the copies share the weights
    # Digits that touch the frame's edge, so that a move that wrapped round (np.roll) would differ.
    images = mnist.test.images[:300].astype(np.float32) / 255
    images[:, 0, :] = images[:, :, -1] = 0.5
    expected = np.mean([model.predict(images, verbose=0)] + [model.predict(_moved(images, *s), verbose=0) for s in SHIFTS_4], axis=0)
    got = shifted.predict(images, verbose=0)
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_allclose(shifted.predict(images[:1], verbose=0), expected[:1], atol=2e-6)  # batch of one
    assert not np.allclose(got, model.predict(images, verbose=0), atol=1e-3)  # the moves do change the reading
    for bad in ([(0, 0)], [(2, 0)], [(1, 0), (1, 0)], [(1,)], "up"):
        with pytest.raises(ValueError, match="test-time shifts"):
            require_shifts(bad)


def test_metrics_give_the_shifted_reading_and_the_network_alone(trained_cnn, mnist):
    import keras

    from mnist_edge.trainer.models import recipe_of, with_test_time_shifts
    from mnist_edge.trainer.record import read_record

    metrics = json.loads((trained_cnn / "metrics.json").read_text())
    shifts = recipe_of("cnn").test_time_shifts
    assert shifts and metrics["test_time_shifts"] == [list(s) for s in shifts]
    assert read_record(trained_cnn).test_time_shifts == shifts
    model = keras.models.load_model(trained_cnn / "model.keras", compile=False)
    images = mnist.test.images.astype(np.float32) / 255
    alone = (model.predict(images, verbose=0).argmax(1) == mnist.test.labels).mean()
    read = (with_test_time_shifts(model, shifts).predict(images, verbose=0).argmax(1) == mnist.test.labels).mean()
    assert metrics["test_accuracy"] == pytest.approx(read, abs=1e-4)
    assert metrics["test_accuracy_one_pass"] == pytest.approx(alone, abs=1e-6)


def test_a_record_with_malformed_shifts_is_a_clear_error(trained_cnn, tmp_path):
    from mnist_edge.errors import MnistEdgeError
    from mnist_edge.trainer.record import read_record

    metrics = json.loads((trained_cnn / "metrics.json").read_text())
    for bad in ([[5, 0]], [[0, 0]], "left", [[1, 0, 2]]):
        (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "test_time_shifts": bad}))
        with pytest.raises(MnistEdgeError, match=r"metrics.json: test-time shifts must be"):
            read_record(tmp_path)


def test_models_fit_their_size_budget():
    from mnist_edge.trainer.models import build_cnn, build_cnn_v1, build_mlp

    cnn = build_cnn()
    assert cnn.count_params() <= 150_000
    assert any(type(layer).__name__ == "BatchNormalization" for layer in cnn.layers)
    for model in (cnn, build_mlp()):
        assert model.input_shape == (None, 28, 28) and model.output_shape == (None, 10)
        assert model.layers[0].name == "image" and model.layers[-1].name == "probabilities"
        assert model.layers[-1].activation.__name__ == "softmax"
    assert [type(layer).__name__ for layer in build_mlp().layers].count("Dropout") >= 1
    assert build_cnn_v1().count_params() == 131_754  # the previous design, kept for side-by-side benchmarks


def test_only_the_current_models_are_offered():
    from mnist_edge.cli.train import MODEL_CHOICES
    from mnist_edge.trainer.models import MODEL_NAMES, RECIPES

    assert MODEL_NAMES == MODEL_CHOICES == ("mlp", "cnn")
    assert "cnn_v1" in RECIPES  # trainable by name (bench/accuracy.py --previous), not offered


def test_one_cycle_schedule_warms_up_then_decays():
    from mnist_edge.trainer.train import MIN_LR_FRACTION, WARMUP_START_FRACTION, one_cycle_schedule

    peak, steps = 3e-3, 1000
    lr = one_cycle_schedule(peak, steps, warmup_fraction=0.2)
    values = np.array([float(lr(step)) for step in range(steps + 1)])
    assert values[0] == pytest.approx(peak * WARMUP_START_FRACTION)
    assert values.argmax() == 200 and values.max() == pytest.approx(peak)
    assert np.all(np.diff(values[:201]) > 0) and np.all(np.diff(values[200:]) < 0)
    assert values[-1] == pytest.approx(peak * MIN_LR_FRACTION)
    plain = one_cycle_schedule(peak, steps, warmup_fraction=0.0)
    assert float(plain(0)) == pytest.approx(peak) and float(plain(steps)) == pytest.approx(peak * MIN_LR_FRACTION)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_training_is_reproducible_with_a_seed(name, mnist):
    """Bit for bit: same seed, same augmented batches, same deterministic kernels, same weights."""
    from mnist_edge.trainer.train import TrainConfig, fit_model

    runs = []
    for _ in range(2):
        config = TrainConfig(model=name, epochs=1, limit=2000, seed=7)
        model, history, *_ = fit_model(mnist, config, stream=open(os.devnull, "w"))
        runs.append((history["loss"][0], [w.copy() for w in model.get_weights()]))
    assert runs[0][0] == runs[1][0]
    for first, second in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(first, second)
    other, history, *_ = fit_model(mnist, TrainConfig(model=name, epochs=1, limit=2000, seed=8), stream=open(os.devnull, "w"))
    assert history["loss"][0] != runs[0][0]  # the seed matters: the check above is not vacuous


def test_analysis_on_known_numbers():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.array(
        [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.05, 0.9, 0.05], [0.1, 0.85, 0.05], [0.45, 0.1, 0.45]]
    )
    history = {"loss": [1.0, 0.5, 0.3], "accuracy": [0.9, 0.95, 0.99], "val_loss": [0.9, 0.6, 0.8], "val_accuracy": [0.91, 0.95, 0.94]}
    result = analyse(probabilities, labels, history, ["a", "b", "c"])
    assert result["test_accuracy"] == 0.6
    assert confusion_matrix(labels, probabilities.argmax(1), 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert result["per_class"][1] == {"class": "b", "precision": round(2 / 3, 4), "recall": 1.0, "f1": 0.8, "support": 2}
    assert result["most_confused"][0]["count"] == 1
    assert result["mistakes"]["count"] == 2
    assert result["mistakes"]["confident_count"] == 0  # 0.7 and 0.45 are below 0.9
    assert result["mistakes"]["ambiguous_count"] == 1  # the 0.45 / 0.45 tie
    worst = result["mistakes"]["worst"]
    assert [w["index"] for w in worst] == [1, 4]  # most confident mistake first
    assert result["test_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.9, 0.85, 0.45])), abs=1e-4)
    over = overfitting(history)
    assert over["best_epoch"]["epoch"] == 2 and over["last_epoch"]["epoch"] == 3
    assert over["verdict"].startswith("overfitting after epoch 2")


def test_overfitting_verdicts():
    steady = {"loss": [0.5, 0.3], "accuracy": [0.9, 0.95], "val_loss": [0.4, 0.25], "val_accuracy": [0.92, 0.96]}
    assert overfitting(steady)["verdict"].startswith("no overfitting")
    gap = {"loss": [0.5, 0.1], "accuracy": [0.9, 0.995], "val_loss": [0.4, 0.3], "val_accuracy": [0.92, 0.95]}
    assert overfitting(gap)["verdict"].startswith("some overfitting")
    weak = {"loss": [2.0, 1.8], "accuracy": [0.3, 0.4], "val_loss": [1.9, 1.7], "val_accuracy": [0.35, 0.45]}
    assert overfitting(weak)["verdict"].startswith("underfitting")


def test_fashion_mnist_trains_through_the_cli(tmp_path):
    """Any 28x28, 10-class IDX set works: Debian's Fashion-MNIST, with its class names."""
    from pathlib import Path

    fashion = Path("/usr/share/datasets/fashion-mnist")
    if not fashion.is_dir():
        pytest.fail("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist")
    names = "T-shirt,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
    result = subprocess.run(
        [sys.executable, "-m", "mnist_edge", "train", "--model", "mlp", "--epochs", "2", "--limit", "4000",
         "--data-dir", str(fashion), "--class-names", names, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch   1/2" in result.stdout and "epoch   2/2" in result.stdout  # one progress line per epoch
    metrics = json.loads((tmp_path / "mlp" / "metrics.json").read_text())
    assert metrics["class_names"] == names.split(",")
    assert metrics["test_accuracy"] > 0.6
    report = (tmp_path / "mlp" / "report.md").read_text()
    assert "Ankle boot" in report or "Shirt" in report


def test_weight_averaging_ends_the_fit_with_the_average_of_the_steps(mnist, monkeypatch):
    """Recipe.ema_momentum: the model that fit_model returns (and train() saves and exports) holds
    the moving average of the weights after each step, not the last step's weights. The averaged run
    follows the same raw trajectory as the plain one (same seed), so the average is recomputed here
    from the plain run's weights after every step."""
    import dataclasses

    import keras

    from mnist_edge.trainer.models import ARCHITECTURES, DEFAULT_RECIPE
    from mnist_edge.trainer.train import TrainConfig, fit_model, uses_ema

    class StepWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append([v.numpy().copy() for v in self.model.trainable_variables])

    config = TrainConfig(model="mlp", epochs=2, limit=2000, seed=5)  # 14 steps an epoch
    recorder = StepWeights()
    plain, *_ = fit_model(mnist, config, stream=open(os.devnull, "w"), extra_callbacks=[recorder])
    assert not plain.optimizer.use_ema  # the MLP's recipe does not average

    momentum = 0.5
    recipes = ARCHITECTURES["mlp"].recipes
    monkeypatch.setitem(recipes, DEFAULT_RECIPE, dataclasses.replace(recipes[DEFAULT_RECIPE], ema_momentum=momentum))
    averaged, history, _, best_epoch, _ = fit_model(mnist, config, stream=open(os.devnull, "w"))
    assert averaged.optimizer.use_ema and best_epoch == 2  # early stopping keeps the last epoch's average

    expected = recorder.steps[0]
    for step in recorder.steps[1:]:
        expected = [momentum * a + (1 - momentum) * w for a, w in zip(expected, step)]
    for got, average, last in zip(averaged.trainable_variables, expected, recorder.steps[-1]):
        np.testing.assert_allclose(got.numpy(), average, atol=1e-5)
        assert not np.allclose(average, last, atol=1e-5)  # the average is not the last step: the check can fail

    assert uses_ema(0.999, 7000) and not uses_ema(0.999, 6999)  # a short run trains without averaging
    assert not uses_ema(0.0, 10**6)


def test_smoothed_labels_are_recalibrated_by_a_temperature_folded_into_the_last_layer(mnist, monkeypatch):
    """Recipe.label_smoothing: smoothed targets cap the softmax near 1 - smoothing; the temperature
    fitted on the validation split and folded into the last layer's weights lifts that cap, leaves
    every argmax as it was and lowers the validation loss (it is chosen to)."""
    import dataclasses

    from mnist_edge.data import scale_images, split_train_validation
    from mnist_edge.trainer.models import ARCHITECTURES, DEFAULT_RECIPE
    from mnist_edge.trainer.train import TrainConfig, fit_model, fold_temperature

    recipes = ARCHITECTURES["mlp"].recipes
    monkeypatch.setitem(recipes, DEFAULT_RECIPE, dataclasses.replace(recipes[DEFAULT_RECIPE], label_smoothing=0.2))
    config = TrainConfig(model="mlp", epochs=3, limit=3000, seed=3)
    model, *_ = fit_model(mnist, config, stream=open(os.devnull, "w"))
    _, validation = split_train_validation(mnist.train.head(3000), config.validation_fraction, config.seed)
    images, labels = scale_images(validation.images), validation.labels

    def val_loss(probabilities):
        return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels])))

    folded = model.predict(images, verbose=0)
    assert folded.max() > 0.9  # smoothing 0.2 alone caps the top answer near 0.8
    last = model.get_layer("probabilities")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 1.5, bias * 1.5])  # any other temperature: a worse validation loss, the same argmax
    other = model.predict(images, verbose=0)
    assert (other.argmax(axis=1) == folded.argmax(axis=1)).all() and val_loss(folded) < val_loss(other)
    assert fold_temperature(model, images, labels) == pytest.approx(1.5, rel=0.01)  # it finds the change back
