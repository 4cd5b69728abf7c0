"""Draw the training curves, the confusion matrix and the worst mistakes, and write report.md."""

from __future__ import annotations

import io
import json
from collections import Counter
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


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **options):
    """A matplotlib Figure and its axes, made without pyplot: no global backend is switched (a
    notebook that trains keeps its inline plots) and nothing is left open."""
    require("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **options)


def save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def plot_curves(history: dict, best_epoch: int, path: Path) -> None:
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, history[key], "o-", label="train", markersize=3)
        ax.plot(epochs, history[f"val_{key}"], "o-", label="validation", markersize=3)
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training vs validation (training figures taken with dropout/augmentation on)", fontsize=9)
    save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names, path: Path) -> None:
    matrix = np.asarray(matrix)
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)  # colour the mistakes; the diagonal would drown them out
    fig, ax = subplots(figsize=(7, 6))
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
    save_figure(fig, path)


def plot_misclassified(images: np.ndarray, worst: list[dict], path: Path, columns: int = 8) -> None:
    count = max(1, len(worst))
    rows = (count + columns - 1) // columns
    fig, axes = subplots(rows, columns, figsize=(columns * 1.4, rows * 1.7), squeeze=False)
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
    save_figure(fig, path)


def plot_random_sample(images: np.ndarray, sample: dict, path: Path, columns: int = 8) -> None:
    """Random test images with the answer and its confidence; mistakes framed in red."""
    shown = sample["images"]
    rows = max(1, (len(shown) + columns - 1) // columns)
    fig, axes = subplots(rows, columns, figsize=(columns * 1.3, rows * 1.55), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for ax, item in zip(axes.flat, shown):
        ax.imshow(images[item["index"]], cmap="gray")
        if item["correct"]:
            ax.set_title(f"{item['predicted']} ({item['confidence']:.0%})", fontsize=8, color="darkgreen")
        else:
            ax.set_title(f"{item['predicted']} ({item['confidence']:.0%})\ntrue {item['true']}", fontsize=8, color="red")
            ax.set_frame_on(True)
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    fig.suptitle("Random test images: the answer (confidence); red frame: wrong, with the true class", fontsize=9)
    save_figure(fig, path)


def plot_explained_mistakes(explained: list, path: Path, per_row: int = 2) -> None:
    """For each mistake: the image, what pushed it towards the class it was given, and towards
    its true class (red: towards, blue: away), with the ink outlined."""
    from mnist_edge.trainer.explain import INK

    rows = max(1, (len(explained) + per_row - 1) // per_row)
    fig, axes = subplots(rows, 3 * per_row, figsize=(3 * per_row * 1.55, rows * 1.75), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, item in enumerate(explained):
        row, first = divmod(k, per_row)
        image_ax, predicted_ax, true_ax = axes[row, 3 * first : 3 * first + 3]
        image_ax.imshow(item.image, cmap="gray", vmin=0, vmax=1)
        image_ax.set_title(f"#{item.index}: {item.true} → {item.predicted}\n{item.confidence:.2%} sure", fontsize=7)
        limit = max(float(np.abs(item.for_predicted).max()), float(np.abs(item.for_true).max()), 1e-9)
        for ax, attribution, name in ((predicted_ax, item.for_predicted, item.predicted), (true_ax, item.for_true, item.true)):
            ax.imshow(attribution, cmap="RdBu_r", vmin=-limit, vmax=limit)
            if item.image.max() >= INK:
                ax.contour(item.image, levels=[INK], colors="black", linewidths=0.4)
            ax.set_title(f"for {name}" + (" (given)" if ax is predicted_ax else " (true)"), fontsize=7)
    fig.suptitle(
        "Integrated gradients: red pixels pushed towards the class, blue ones away from it; black outline: the ink",
        fontsize=9,
    )
    save_figure(fig, path)


def plot_reliability(calibration: dict, path: Path, title: str = "") -> None:
    """Reliability diagram (accuracy against confidence per bin) and how many answers each bin holds."""
    bins = calibration["bins"]
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [b for b in bins if b["count"]]
    centres = [b["lower"] + width / 2 for b in filled]
    fig, (ax, counts) = subplots(1, 2, figsize=(10, 4))
    ax.bar(centres, [b["accuracy"] for b in filled], width=width * 0.95, color="tab:blue", label="accuracy in the bin")
    ax.scatter(centres, [b["confidence"] for b in filled], marker="_", s=300, color="tab:red", zorder=3,
               label="mean confidence in the bin")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top answer")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability ({calibration['bins_count']} equal-width bins), ECE {calibration['ece']:.4f}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    counts.bar(centres, [b["count"] for b in filled], width=width * 0.95, color="grey")
    counts.set_yscale("log")
    counts.set_xlim(0, 1)
    counts.set_xlabel("confidence of the top answer")
    counts.set_ylabel("test images (log scale)")
    counts.set_title("How many answers fall in each bin", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def _pair_reason(pair: dict, digits: bool) -> str:
    if not digits:
        return ""
    reason = DIGIT_PAIR_REASONS.get(frozenset(pair["true"] + pair["predicted"]))
    return f": {reason}" if reason else ""


def render_report(metrics: dict, explained: list | None = None) -> str:
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
    lines.append("")
    lines += render_sample(metrics)
    lines += render_explanations(explained or [])
    lines += render_calibration(metrics)
    return "\n".join(lines).rstrip("\n") + "\n"


def render_sample(metrics: dict) -> list[str]:
    sample = metrics.get("sample")
    if not sample:
        return []
    shown = sample["images"]
    wrong = sum(not item["correct"] for item in shown)
    m = metrics["mistakes"]
    return [
        "## Right and wrong, side by side",
        "",
        "![random test images with the answers](random_predictions.png)",
        "",
        f"{len(shown) - wrong} test images drawn at random from the ones the model got right and {wrong} from the "
        f"ones it got wrong (seed {sample['seed']}), shuffled together. Wrong ones are over-represented here on "
        f"purpose: in the whole test set {m['count']} of {metrics['test_images']:,} "
        f"({m['count'] / metrics['test_images']:.2%}) are wrong. Unlike the worst mistakes above, these show the "
        "ordinary ones, often answered with visibly less confidence.",
        "",
    ]


def article(name: str) -> str:
    """"an 8", "an 11", "an ankle boot"; "a 7", "a shirt"."""
    return "an" if name[:1].lower() in "aeiou8" or name.startswith(("11", "18")) else "a"


def render_explanations(explained: list) -> list[str]:
    from mnist_edge.trainer.explain import IG_STEPS

    if not explained:
        return []
    kinds = Counter(item.evidence.kind for item in explained if item.evidence.where != "nowhere")
    lines = [
        "## Why it went wrong: what the network looked at",
        "",
        "![attribution maps of the worst mistakes](mistakes_explained.png)",
        "",
        f"For the {len(explained)} worst mistakes: the image, what pushed it towards the class it was given, and "
        "what pushed it towards its true class. Red pixels pushed towards the class, blue ones away from it. The "
        f"maps are **integrated gradients** ({IG_STEPS} steps) of the class's logit, averaged over two reference "
        "images, black and white, so that both ink and missing ink can count. Why this method: it gives one value "
        "per pixel for the MLP and the CNN alike, and the values add up to the change of the class score, so a map "
        "shows how much each pixel pushed. Grad-CAM, the usual choice for convnets, gives one value per cell of the "
        "last convolutional block: 7x7 cells of 4x4 pixels on a 28x28 digit, too coarse to tell an open loop from "
        "a closed one (and the MLP has no convolution). The sentences below are read from the maps: where the "
        "strongest 5x5 spot of evidence lies within the digit's bounding box, and whether it lies on ink or on "
        "empty background.",
        "",
    ]
    lines += [
        f"- **#{item.index}, {article(item.true)} {item.true} read as {item.predicted}** ({item.confidence:.2%} sure): "
        f"{item.sentence}"
        for item in explained
    ]
    counted = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    lines += [
        "",
        f"Where the strongest evidence for the wrong class lies, over these {len(explained)} mistakes: {counted}. "
        "Evidence in the strokes means the digit has ink where the wrong class has it (a stroke drawn the way the "
        "other digit draws it); evidence in empty space means the wrong class expects no ink where this digit has "
        "none, often a gap where the true digit would close a loop or join two strokes.",
        "",
    ]
    return lines


def render_calibration(metrics: dict) -> list[str]:
    cal = metrics.get("calibration")
    if not cal:
        return []
    gap = cal["mean_confidence"] - cal["accuracy"]
    if abs(gap) < 0.002:
        direction = "its mean confidence matches its accuracy"
    elif gap > 0:
        direction = f"it is over-confident on average by {gap * 100:.2f} points"
    else:
        direction = f"it is under-confident on average by {-gap * 100:.2f} points"
    lines = [
        "## Can the confidence be trusted? Calibration",
        "",
        "![reliability diagram](reliability.png)",
        "",
        f"The model answers with a mean confidence of {cal['mean_confidence']:.2%} and is right {cal['accuracy']:.2%} "
        f"of the time: {direction}. The **expected calibration error** (ECE, {cal['bins_count']} equal-width "
        f"confidence bins, each bin's |confidence - accuracy| weighted by its share of the test images) is "
        f"**{cal['ece']:.4f}**: 0 would mean that among answers given with 80% confidence exactly 80% are right, "
        "in every bin. Where a bar stops below its red mark, the model was more sure than right in that bin.",
        "",
        "Using the confidence to reject doubtful inputs (answer only at or above a threshold, ask again otherwise):",
        "",
        "| answer only if confidence ≥ | images answered | accuracy on them | mistakes caught | right answers lost |",
        "|---|---|---|---|---|",
    ]
    for row in cal["coverage"]:
        accuracy = f"{row['accuracy']:.2%}" if row["accuracy"] is not None else "-"
        lines.append(
            f"| {row['threshold']:g} | {row['coverage']:.2%} | {accuracy} | {row['mistakes_rejected']} of {row['mistakes']} "
            f"| {row['correct_rejected']} |"
        )
    best = max(
        (r for r in cal["coverage"] if r["mistakes"] and r["mistakes_rejected"] >= r["mistakes"] / 2),
        key=lambda r: r["coverage"], default=None,
    )
    if best:
        lines += [
            "",
            f"Rejecting below {best['threshold']:g} catches {best['mistakes_rejected']} of the {best['mistakes']} "
            f"mistakes ({best['mistakes_rejected'] / best['mistakes']:.0%}) at the price of asking again for "
            f"{best['rejected']:,} images ({1 - best['coverage']:.1%}), {best['correct_rejected']:,} of which the model "
            "had right.",
        ]
    return lines + [""]


def write_report(
    model_dir: Path,
    metrics: dict,
    history: dict,
    test_images: np.ndarray,
    model=None,
) -> None:
    """The pictures and report.md of a model folder. With the Keras `model`, the worst mistakes
    also get their attribution maps (trainer.explain)."""
    model_dir = Path(model_dir)
    plot_curves(history, metrics["best_epoch"], model_dir / "curves.png")
    plot_confusion(np.asarray(metrics["confusion_matrix"]), metrics["class_names"], model_dir / "confusion.png")
    plot_misclassified(test_images, metrics["mistakes"]["worst"], model_dir / "misclassified.png")
    if metrics.get("sample"):
        plot_random_sample(test_images, metrics["sample"], model_dir / "random_predictions.png")
    if metrics.get("calibration"):
        plot_reliability(metrics["calibration"], model_dir / "reliability.png", f"{metrics['model'].upper()}, test set")
    explained = []
    if model is not None and metrics["mistakes"]["worst"]:
        from mnist_edge.trainer.explain import explain_mistakes

        explained = explain_mistakes(model, test_images, metrics["mistakes"]["worst"], metrics["class_names"])
        plot_explained_mistakes(explained, model_dir / "mistakes_explained.png")
    atomic_write_text(model_dir / "report.md", render_report(metrics, explained))


def refresh_report(model_dir: Path, dataset) -> dict:
    """Analyse an already trained model folder again with this version of the toolkit (attribution
    maps, calibration, the random sample) and write its metrics.json and report anew. The model
    and its training history are not touched."""
    from mnist_edge.trainer.analysis import analyse
    from mnist_edge.trainer.record import METRICS_FILE, MODEL_FILE
    from mnist_edge.trainer.models import predict_probabilities

    keras = require("keras")
    model_dir = Path(model_dir)
    metrics = json.loads((model_dir / METRICS_FILE).read_text())
    history = json.loads((model_dir / "history.json").read_text())
    model = keras.models.load_model(model_dir / MODEL_FILE, compile=False)
    probabilities = predict_probabilities(model, dataset.test.images)
    metrics.update(analyse(probabilities, dataset.test.labels, history, metrics["class_names"]))
    atomic_write_text(model_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    write_report(model_dir, metrics, history, dataset.test.images, model=model)
    if metrics.get("finetune"):
        from mnist_edge.trainer.finetune import prepend_finetune_section

        prepend_finetune_section(model_dir / "report.md", model_dir.name, metrics["finetune"])
    return metrics
