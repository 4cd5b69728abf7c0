"""The overfitting experiment: the same MLP, the same split and seed, trained three ways (no
dropout and no augmentation; dropout; dropout and augmentation), to show what each does to the
gap between what the network knows about its training images and about images it never saw.

    run_overfitting(dataset, Path("artifacts/experiments/overfitting"))
    # -> experiment.md, overfitting.png, overfitting.json

Keras's own training figures are taken while dropout and augmentation are on, which flatters the
regularised runs (their training loss looks worse than what the network knows). So after each
epoch the network is also measured, in inference mode, on a fixed set of its training images
without augmentation: the "clean" training figures, comparable across the three runs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.data import IMAGE_SIZE, NUM_CLASSES, Dataset, scale_images, split_train_validation
from mnist_edge.errors import require
from mnist_edge.files import atomic_write_text
from mnist_edge.trainer.analysis import LOSS_EPSILON, loss_and_accuracy
from mnist_edge.trainer.train import DEFAULT_SEED, TrainConfig, fit_model, predict_probabilities

CLEAN_TRAIN_IMAGES = 10_000  # training images measured after each epoch, without dropout or augmentation
RESULT_FILE = "overfitting.json"
FIGURE_FILE = "overfitting.png"
REPORT_FILE = "experiment.md"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    dropout: float | None  # None: the model's default
    augment: bool


VARIANTS = (
    Variant("plain", "no dropout, no augmentation", 0.0, False),
    Variant("dropout", "dropout", None, False),
    Variant("dropout_augment", "dropout + augmentation", None, True),
)


def mlp_default(option: str):
    """What build_mlp uses for `option` (dropout, hidden_units) unless told otherwise."""
    import inspect

    from mnist_edge.trainer.models import build_mlp

    return inspect.signature(build_mlp).parameters[option].default


def clean_training_images(dataset: Dataset, config: TrainConfig, count: int = CLEAN_TRAIN_IMAGES):
    """The first `count` images of the split fit_model trains on (same limit, fraction and seed)."""
    fit_split, _ = split_train_validation(dataset.train.head(config.limit), config.validation_fraction, config.seed)
    return scale_images(fit_split.images[:count]), np.asarray(fit_split.labels[:count], np.int64)


def clean_tracker(images: np.ndarray, labels: np.ndarray):
    """A Keras callback measuring the model on `images` in inference mode after every epoch."""
    keras = require("keras")

    class CleanTraining(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses: list[float] = []
            self.accuracies: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            probabilities = np.concatenate(
                [keras.ops.convert_to_numpy(self.model(images[i : i + 1024], training=False)) for i in range(0, len(images), 1024)]
            )
            loss, accuracy = loss_and_accuracy(probabilities.astype(np.float64), labels)
            self.losses.append(loss)
            self.accuracies.append(accuracy)

    return CleanTraining()


def run_variant(dataset: Dataset, variant: Variant, *, epochs: int | None, limit: int | None, seed: int, stream) -> dict:
    """Train the MLP one way; its per-epoch curves and the figures of the table."""
    config = TrainConfig(model="mlp", epochs=epochs, limit=limit, seed=seed, augment=variant.augment, dropout=variant.dropout)
    clean_images, clean_labels = clean_training_images(dataset, config.resolved())
    tracker = clean_tracker(clean_images, clean_labels)
    print(f"\n== {variant.label} ==", file=stream, flush=True)
    model, history, seconds, best_epoch, resolved = fit_model(dataset, config, stream=stream, extra_callbacks=[tracker])
    history["clean_loss"], history["clean_accuracy"] = tracker.losses, tracker.accuracies
    test_loss, test_accuracy = loss_and_accuracy(
        predict_probabilities(model, dataset.test.images).astype(np.float64), np.asarray(dataset.test.labels, np.int64)
    )
    return {
        "key": variant.key,
        "label": variant.label,
        "dropout": float(mlp_default("dropout")) if variant.dropout is None else variant.dropout,
        "augment": variant.augment,
        "history": history,
        "figures": summarise(history, best_epoch, test_loss, test_accuracy, seconds),
        "epochs_planned": resolved.epochs,
        "clean_train_images": len(clean_labels),
    }


def summarise(history: dict, best_epoch: int, test_loss: float, test_accuracy: float, seconds: float) -> dict:
    """The table's figures for one run: the gaps at the last epoch (clean training figures against
    validation), where validation loss turned, how far it rose after, and the test figures of the
    kept (best-epoch) weights."""
    last = len(history["val_loss"]) - 1
    turn = best_epoch - 1  # where validation loss was lowest: the weights fit_model kept
    return {
        "epochs_run": last + 1,
        "turn_epoch": turn + 1,
        "best_epoch": best_epoch,
        "min_val_loss": round(history["val_loss"][turn], 4),
        "last_val_loss": round(history["val_loss"][last], 4),
        "val_loss_rise": round((history["val_loss"][last] - history["val_loss"][turn]) / max(history["val_loss"][turn], LOSS_EPSILON), 4),
        "last_clean_train_loss": round(history["clean_loss"][last], 4),
        "last_clean_train_accuracy": round(history["clean_accuracy"][last], 4),
        "last_val_accuracy": round(history["val_accuracy"][last], 4),
        "accuracy_gap": round(history["clean_accuracy"][last] - history["val_accuracy"][last], 4),
        "loss_gap": round(history["val_loss"][last] - history["clean_loss"][last], 4),
        "test_accuracy": round(test_accuracy, 4),
        "test_loss": round(test_loss, 4),
        "train_seconds": round(seconds, 1),
    }


def run_overfitting(
    dataset: Dataset,
    out: Path,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    seed: int = DEFAULT_SEED,
    stream: TextIO | None = None,
) -> dict:
    """Train the three variants and write experiment.md, overfitting.png and overfitting.json in `out`."""
    stream = stream or sys.stdout
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [run_variant(dataset, v, epochs=epochs, limit=limit, seed=seed, stream=stream) for v in VARIANTS]
    result = {
        "seed": seed,
        "epochs": runs[0]["epochs_planned"],
        "limit": limit,
        "train_images": len(dataset.train.head(limit)),
        "clean_train_images": runs[0]["clean_train_images"],
        "data_source": dataset.source,
        "runs": runs,
    }
    plot_overfitting(runs, out / FIGURE_FILE)
    atomic_write_text(out / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / REPORT_FILE, render_experiment(result))
    print(f"\n{render_table(runs)}\n\nwrote {out / REPORT_FILE}, {out / FIGURE_FILE} and {out / RESULT_FILE}", file=stream)
    return result


# --- the figure and the report ---------------------------------------------------------------------


def plot_overfitting(runs: list[dict], path: Path) -> None:
    """Loss (top) and accuracy (bottom) per epoch for each run, side by side on shared axes."""
    from mnist_edge.trainer.report import save_figure, subplots

    fig, axes = subplots(2, len(runs), figsize=(4.2 * len(runs), 7), sharex=True, sharey="row", squeeze=False)
    for column, run in enumerate(runs):
        history, figures = run["history"], run["figures"]
        epochs = np.arange(1, len(history["loss"]) + 1)
        for ax, key, clean_key, title in (
            (axes[0, column], "loss", "clean_loss", "loss"),
            (axes[1, column], "accuracy", "clean_accuracy", "accuracy"),
        ):
            ax.plot(epochs, history[clean_key], "-", color="tab:blue", label="training images (measured clean)")
            ax.plot(epochs, history[key], ":", color="tab:blue", alpha=0.6, label="training, as Keras logs it (dropout/augmentation on)")
            ax.plot(epochs, history[f"val_{key}"], "-", color="tab:orange", label="validation images")
            ax.axvline(figures["turn_epoch"], color="grey", linestyle="--", linewidth=1, label=f"validation loss lowest (epoch {figures['turn_epoch']})")
            ax.grid(alpha=0.3)
            ax.set_title(f"{run['label']}: {title}", fontsize=9)
        axes[1, column].set_xlabel("epoch")
        if column == 0:
            axes[0, 0].set_ylabel("cross-entropy loss")
            axes[1, 0].set_ylabel("accuracy")
    axes[0, 0].set_yscale("log")
    axes[1, 0].set_ylim(max(0.9, min(min(r["history"]["val_accuracy"]) for r in runs) - 0.005), 1.0005)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.suptitle("The same MLP trained three ways (same split, same seed); dashed: lowest validation loss", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.legend(handles[:3], labels[:3], loc="lower center", ncol=3, fontsize=8)
    save_figure(fig, path)


def render_table(runs: list[dict]) -> str:
    lines = [
        "| run | epochs run | val loss lowest at epoch | val loss: lowest → last | train − val accuracy at the end | "
        "val − train loss at the end | test accuracy | test loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        f = run["figures"]
        lines.append(
            f"| {run['label']} | {f['epochs_run']} | {f['turn_epoch']} | {f['min_val_loss']:.4f} → {f['last_val_loss']:.4f} "
            f"({f['val_loss_rise']:+.0%}) | {f['accuracy_gap'] * 100:+.2f} points | {f['loss_gap']:+.4f} | "
            f"{f['test_accuracy']:.2%} | {f['test_loss']:.4f} |"
        )
    return "\n".join(lines)


def describe_run(run: dict) -> str:
    """What one run's curves show, in plain words, from its figures."""
    f = run["figures"]
    if f["turn_epoch"] == f["epochs_run"]:
        turn = f"validation loss was still falling at the last epoch ({f['epochs_run']}): no sign of overfitting yet"
    else:
        turn = (
            f"validation loss was lowest at epoch {f['turn_epoch']} ({f['min_val_loss']:.4f}) and then rose "
            f"{f['val_loss_rise']:.0%} by epoch {f['epochs_run']}"
        )
        if f["val_loss_rise"] > 0.1:
            turn += ": after that the network kept fitting its training images while getting worse on new ones"
    stopped = ""
    if f["epochs_run"] < run["epochs_planned"]:
        stopped = f" Early stopping ended the run after epoch {f['epochs_run']} of {run['epochs_planned']}."
    return (
        f"**{run['label']}**: at the end the network got {f['last_clean_train_accuracy']:.2%} of its training images "
        f"right against {f['last_val_accuracy']:.2%} of the validation images, a gap of {f['accuracy_gap'] * 100:.2f} "
        f"points (training loss {f['last_clean_train_loss']:.4f}, validation loss {f['last_val_loss']:.4f}); "
        f"{turn}.{stopped}"
    )


def compare_runs(runs: list[dict]) -> list[str]:
    """Sentences comparing the runs: which one overfits least, which one tests best."""
    by_gap = sorted(runs, key=lambda r: r["figures"]["loss_gap"])
    by_test = sorted(runs, key=lambda r: -r["figures"]["test_accuracy"])
    plain = runs[0]["figures"]
    best = by_test[0]
    sentences = [
        f"The smallest gap between validation and training loss at the end is **{by_gap[0]['label']}** "
        f"({by_gap[0]['figures']['loss_gap']:+.4f}), the largest **{by_gap[-1]['label']}** "
        f"({by_gap[-1]['figures']['loss_gap']:+.4f}).",
        f"The best test accuracy is **{best['label']}** ({best['figures']['test_accuracy']:.2%})"
        + (f"; without dropout or augmentation it is {plain['test_accuracy']:.2%}." if best is not runs[0] else "."),
    ]
    for run in runs[1:]:
        f = run["figures"]
        narrower = "narrower" if f["loss_gap"] < plain["loss_gap"] else "not narrower"
        sentences.append(
            f"With {run['label']} the loss gap is {narrower} than without ({f['loss_gap']:+.4f} against "
            f"{plain['loss_gap']:+.4f}), and test accuracy moves by {(f['test_accuracy'] - plain['test_accuracy']) * 100:+.2f} points."
        )
    return sentences


def render_experiment(result: dict) -> str:
    runs = result["runs"]
    rate = max(run["dropout"] for run in runs)
    layers = " → ".join(str(n) for n in (IMAGE_SIZE * IMAGE_SIZE, *mlp_default("hidden_units"), NUM_CLASSES))
    limit = f"the first {result['train_images']:,}" if result["limit"] else f"all {result['train_images']:,}"
    return "\n".join(
        [
            "# Overfitting: what dropout and augmentation do",
            "",
            f"The MLP ({layers}) trained three times on {limit} MNIST training images (10% held out for "
            f"validation), up to {result['epochs']} epochs, seed {result['seed']}, the same split each time, "
            "with early stopping on the validation loss (the kept weights are those of the epoch where validation loss "
            "was lowest; the test figures are theirs).",
            "",
            "![train and validation curves of the three runs](overfitting.png)",
            "",
            render_table(runs),
            "",
            f"Training figures in the table and as solid lines are measured after each epoch on {result['clean_train_images']:,} "
            "training images with dropout and augmentation switched off, so the three runs are compared on equal "
            "terms; the dotted lines are what Keras logs during the epoch, with dropout and augmentation on.",
            "",
            "## What the curves say",
            "",
            *[f"- {describe_run(run)}" for run in runs],
            "",
            *compare_runs(runs),
            "",
            "**Overfitting** is the network learning its training images rather than digits: training loss keeps "
            "falling while validation loss stops falling and turns upward, and the gap between them grows. "
            f"**Dropout** switches off a random {rate:.0%} of the hidden units at each training step, so no unit can rely "
            "on another to memorise an image; **augmentation** shows every image slightly rotated, zoomed and shifted "
            "each time, so its exact pixels can't be memorised either. Both are switched off when the network is "
            "used, which is why the dotted curves (taken with them on) can look worse than the solid ones.",
            "",
        ]
    )
