"""Draw the training curves, the confusion matrix and the worst mistakes, and write report.md."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mnist_edge.errors import require
from mnist_edge.files import atomic_write_bytes, atomic_write_text

# Why the usual MNIST pairs get confused, in the words a person would use.
DIGIT_PAIR_REASONS = {
    frozenset("49"): "a 4 with a closed top and a 9 with a straight stem are drawn with the same strokes",
    frozenset("35"): "3 and 5 share their lower bowl; only the top stroke tells them apart",
    frozenset("27"): "a 7 with a crossbar or a curled foot reads as a 2",
    frozenset("17"): "a 1 with a serif at the top is a short-armed 7",
    frozenset("38"): "a 3 whose left ends nearly close becomes an 8",
    frozenset("58"): "a 5 with a closed lower loop looks like an 8",
    frozenset("56"): "a 5 with a closed bowl is a 6 with a flat top",
    frozenset("06"): "a 6 with a long curled top closes into a 0",
    frozenset("79"): "a 9 with a small, flat loop is a 7 with a stroke across it",
    frozenset("89"): "an 8 with a thin lower loop collapses to a 9",
    frozenset("23"): "a 2 with a rounded base and a curled top resembles a 3",
    frozenset("26"): "a 2 with a looped base is read as a 6",
    frozenset("46"): "an open 4 with a curved stem looks like a 6",
    frozenset("02"): "a 2 drawn in one round movement can close like a 0",
    frozenset("18"): "a slanted, narrow 8 leaves little more than a 1's stroke",
}


def _plt():
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # no screen: draw into files
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _plt()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_curves(history: dict, best_epoch: int, path: Path) -> None:
    plt = _plt()
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, history[key], "o-", label="train", markersize=3)
        ax.plot(epochs, history[f"val_{key}"], "o-", label="validation", markersize=3)
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training vs validation (training figures taken with dropout/augmentation on)", fontsize=9)
    _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names, path: Path) -> None:
    plt = _plt()
    matrix = np.asarray(matrix)
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)  # colour the mistakes; the diagonal would drown them out
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(errors, cmap="Reds")
    fig.colorbar(image, ax=ax, label="mistakes (diagonal not coloured)")
    n = len(class_names)
    for t in range(n):
        for p in range(n):
            if matrix[t, p]:
                colour = "black" if t == p or errors[t, p] < errors.max() * 0.6 else "white"
                weight = "bold" if t == p else "normal"
                ax.text(p, t, str(matrix[t, p]), ha="center", va="center", fontsize=7, color=colour, weight=weight)
    ax.set_xticks(range(n), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    _save(fig, path)


def plot_misclassified(images: np.ndarray, worst: list[dict], path: Path, columns: int = 8) -> None:
    plt = _plt()
    count = max(1, len(worst))
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.4, rows * 1.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, item in zip(axes.flat, worst):
        ax.imshow(images[item["index"]], cmap="gray")
        ax.set_title(
            f"#{item['index']}\ntrue {item['true']} → {item['predicted']}\n{item['confidence']:.0%}",
            fontsize=7,
            color="darkred" if item["kind"] == "confident" else "black",
        )
    if not worst:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle("Worst mistakes: most confident first (red: confident mistakes)", fontsize=9)
    _save(fig, path)


def _pair_reason(pair: dict, digits: bool) -> str:
    if not digits:
        return ""
    reason = DIGIT_PAIR_REASONS.get(frozenset(pair["true"] + pair["predicted"]))
    return f": {reason}" if reason else ""


def render_report(metrics: dict) -> str:
    """report.md's text: what the numbers are, what the pictures show, why the mistakes happen."""
    names = metrics["class_names"]
    digits = names == [str(d) for d in range(10)]
    m = metrics["mistakes"]
    over = metrics["overfitting"]
    best, last = over["best_epoch"], over["last_epoch"]
    total = metrics["test_images"]
    lines = [
        f"# {metrics['model'].upper()} on {Path(metrics['data_source']).name}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| test accuracy | {metrics['test_accuracy']:.2%} ({total - m['count']:,} of {total:,}) |",
        f"| test loss | {metrics['test_loss']:.4f} |",
        f"| parameters | {metrics['params']:,} |",
        f"| epochs run (best) | {metrics['epochs_run']} ({metrics['best_epoch']}) |",
        f"| training time | {metrics['train_seconds']:.0f} s |",
        f"| training images | {metrics['train_images']:,} (10% of them held out for validation) |",
        "",
        "## Learning curves",
        "",
        "![loss and accuracy curves](curves.png)",
        "",
        f"**Verdict: {over['verdict']}.**",
        "",
        f"At the best epoch ({best['epoch']}) training accuracy was {best['train_accuracy']:.2%} and validation "
        f"accuracy {best['val_accuracy']:.2%} (gap {best['accuracy_gap'] * 100:+.2f} points); validation loss "
        f"{best['val_loss']:.4f} against training loss {best['train_loss']:.4f}. At the last epoch ({last['epoch']}) "
        f"the gap was {last['accuracy_gap'] * 100:+.2f} points and validation loss had moved "
        f"{over['val_loss_rise_after_best']:+.1%} from its best. Training figures are measured with dropout"
        f"{' and augmentation' if metrics.get('config', {}).get('augment') else ''} switched on, so they understate "
        "what the network knows; a validation curve that flattens while the training curve keeps improving is "
        "the sign to watch.",
        "",
        "## Where it goes wrong",
        "",
        "![confusion matrix](confusion.png)",
        "",
        "Per class (test set):",
        "",
        "| class | precision | recall | F1 | images |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['class']} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
        for c in metrics["per_class"]
    ]
    weakest = min(metrics["per_class"], key=lambda c: c["f1"])
    lines += ["", f"The weakest class is **{weakest['class']}** (F1 {weakest['f1']:.4f}).", ""]
    if metrics["most_confused"]:
        lines += ["The most confused pairs (true → predicted):", ""]
        lines += [
            f"- {p['true']} → {p['predicted']}: {p['count']} images{_pair_reason(p, digits)}"
            for p in metrics["most_confused"][:6]
        ]
        lines.append("")
    lines += ["## The misclassified images", "", "![worst mistakes](misclassified.png)", ""]
    if m["count"]:
        lines += [
            f"{m['count']} test images are misclassified. They fall into two kinds:",
            "",
            f"- **Confident mistakes** ({m['confident_count']}, confidence ≥ 90%, red titles in the picture): the "
            "model is sure and wrong. On MNIST these are typically digits in a style rare in the training set "
            "(a crossed 7, an open 4, a tiny or very slanted digit), digits so malformed that a person hesitates "
            "too, and a few mislabelled images. More capacity rarely fixes them; more varied training data does.",
            f"- **Ambiguous mistakes** ({m['ambiguous_count']}, confidence < 60% or the runner-up within 20 points): "
            "the image honestly sits between two classes and the model says so. For these the probabilities are "
            "useful: an application can ask the user again instead of guessing.",
            "",
            f"On mistakes the mean confidence is {m['mean_confidence']:.0%}, against "
            f"{m['mean_confidence_correct']:.0%} on correct answers, and in {m['true_class_second_count']} of the "
            f"{m['count']} mistakes the right answer was the model's second choice. Confidence is therefore a "
            "usable signal for rejecting doubtful inputs.",
        ]
    else:
        lines.append("No test image is misclassified.")
    return "\n".join(lines) + "\n"


def write_report(
    model_dir: Path,
    metrics: dict,
    history: dict,
    test_images: np.ndarray,
) -> None:
    model_dir = Path(model_dir)
    plot_curves(history, metrics["best_epoch"], model_dir / "curves.png")
    plot_confusion(np.asarray(metrics["confusion_matrix"]), metrics["class_names"], model_dir / "confusion.png")
    plot_misclassified(test_images, metrics["mistakes"]["worst"], model_dir / "misclassified.png")
    atomic_write_text(model_dir / "report.md", render_report(metrics))
