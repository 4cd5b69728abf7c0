"""Two trained models side by side: compare.md from their model folders.

    write_comparison(Path("artifacts/mlp"), Path("artifacts/cnn"), Path("artifacts"))
    # -> artifacts/compare.md, compare.json, compare_disagreements.png

The figures come from each folder's metrics.json (Keras test figures, parameters, calibration)
and export manifest (artifact sizes); the paired predictions from running both fp32 ONNX
exports through the runtime on the test set they were both measured on; the latency from
bench.json when `mnist-edge bench` has written one, else from a quick measurement here.

Whether the difference in accuracy means anything is McNemar's test on the paired predictions:
only the images exactly one model gets right carry information.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.data import scale_images
from mnist_edge.errors import MnistEdgeError
from mnist_edge.files import atomic_write_text

COMPARE_FILE = "compare.md"
COMPARE_JSON = "compare.json"
DISAGREEMENTS_FIGURE = "compare_disagreements.png"
BENCH_FILE = "bench.json"
EXACT_TEST_BELOW = 25  # fewer discordant images than this: the exact binomial test, else chi-square
SIGNIFICANCE = 0.05
SHOWN_DISAGREEMENTS = 16  # images per kind in the picture
QUICK_LATENCY_RUNS = 300


# --- McNemar's test ---------------------------------------------------------------------------------


def exact_binomial_p(k: int, n: int) -> float:
    """Two-sided p-value of seeing at most min(k, n-k) successes in n fair coin flips."""
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


def chi_square_1dof_p(statistic: float) -> float:
    """P(X >= statistic) for a chi-square variable with one degree of freedom."""
    return math.erfc(math.sqrt(statistic / 2))


def mcnemar(first_only: int, second_only: int) -> dict:
    """McNemar's test on the discordant pairs: `first_only` images only the first model gets
    right, `second_only` only the second. Exact binomial for fewer than EXACT_TEST_BELOW of
    them, chi-square with continuity correction otherwise."""
    n = first_only + second_only
    if n == 0:
        return {"first_only": 0, "second_only": 0, "method": "none (no image is answered differently)", "statistic": None, "p_value": 1.0}
    if n < EXACT_TEST_BELOW:
        return {
            "first_only": first_only, "second_only": second_only, "method": "exact binomial",
            "statistic": None, "p_value": exact_binomial_p(first_only, n),
        }
    statistic = (abs(first_only - second_only) - 1) ** 2 / n
    return {
        "first_only": first_only, "second_only": second_only, "method": "chi-square with continuity correction",
        "statistic": statistic, "p_value": chi_square_1dof_p(statistic),
    }


# --- the two sides ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    name: str
    model_dir: Path
    metrics: dict
    manifest: object  # mnist_edge.manifest.Manifest
    predicted: np.ndarray  # int [N], the fp32 ONNX export's answers on the test set
    latency_ms: float
    latency_source: str


def read_side(model_dir: Path, dataset, bench: dict | None, bench_path: Path | None) -> Side:
    from mnist_edge import runtime
    from mnist_edge.manifest import EXPORT_DIR, ManifestError
    from mnist_edge.trainer.record import METRICS_FILE

    try:
        metrics = json.loads((model_dir / METRICS_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MnistEdgeError(f"{model_dir / METRICS_FILE}: cannot read the training record ({exc})") from exc
    try:
        predictor = runtime.load(model_dir / EXPORT_DIR)
    except ManifestError as exc:
        raise MnistEdgeError(f"{model_dir}: no usable export ({exc}); run mnist-edge export {model_dir}") from exc
    x = scale_images(dataset.test.images)
    predicted = np.concatenate([predictor.predict_array(x[i : i + 1000]).argmax(axis=1) for i in range(0, len(x), 1000)])
    latency, source = bench_latency(bench, predictor.manifest.name, predictor.artifact.file, bench_path)
    if latency is None:
        latency, source = quick_latency(predictor, x[:1])
    return Side(predictor.manifest.name, model_dir, metrics, predictor.manifest, predicted, latency, source)


def bench_latency(bench: dict | None, model: str, artifact: str, path: Path | None) -> tuple[float | None, str]:
    for row in (bench or {}).get("artifacts", []):
        if row.get("model") == model and row.get("artifact") == artifact and "latency_p50_ms" in row:
            return float(row["latency_p50_ms"]), f"p50 from {path} (`mnist-edge bench`, {bench.get('threads', 1)} thread(s))"
    return None, ""


def quick_latency(predictor, one: np.ndarray, runs: int = QUICK_LATENCY_RUNS) -> tuple[float, str]:
    """p50 of `runs` single-image predict_array calls: a quick figure, not a benchmark."""
    from mnist_edge.timing import time_calls

    p50, _ = time_calls(lambda: predictor.predict_array(one), runs=runs, warmup=20)
    return p50, f"p50 of {runs} single-image calls measured by compare (no bench.json found; quick and noisy)"


def find_bench(explicit: Path | None, out_dir: Path) -> tuple[dict | None, Path | None]:
    """bench.json: the one given, else next to the comparison, else in the current folder."""
    for path in ([explicit] if explicit else [out_dir / BENCH_FILE, Path(BENCH_FILE)]):
        if path.is_file():
            try:
                return json.loads(path.read_text()), path
            except (OSError, json.JSONDecodeError) as exc:
                raise MnistEdgeError(f"{path}: cannot read the benchmark figures ({exc})") from exc
        if explicit:
            raise MnistEdgeError(f"{path}: no such benchmark file; run mnist-edge bench --out {path}")
    return None, None


# --- the comparison -----------------------------------------------------------------------------------


def write_comparison(
    first_dir: str | os.PathLike,
    second_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    dataset=None,
    data_dir: str | os.PathLike | None = None,
    bench: str | os.PathLike | None = None,
    stream: TextIO | None = None,
) -> dict:
    """compare.md, compare.json and the disagreements picture for two trained, exported model
    folders, in `out_dir` (default: the folder holding the first one)."""
    stream = stream or sys.stdout
    from mnist_edge.trainer.record import METRICS_FILE, load_training_data, read_record

    first_dir, second_dir = Path(first_dir), Path(second_dir)
    for folder in (first_dir, second_dir):
        if not (folder / METRICS_FILE).is_file():
            raise MnistEdgeError(f"{folder}: not a trained model folder (no {METRICS_FILE}); train it first with mnist-edge train")
    out_dir = Path(out_dir) if out_dir else first_dir.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = load_training_data(read_record(first_dir), data_dir, dataset=dataset)
    load_training_data(read_record(second_dir), dataset=dataset)  # the same test set, or a clear error
    bench_figures, bench_path = find_bench(Path(bench) if bench else None, out_dir)
    first, second = (read_side(d, dataset, bench_figures, bench_path) for d in (first_dir, second_dir))
    labels = np.asarray(dataset.test.labels, np.int64)
    first_right, second_right = first.predicted == labels, second.predicted == labels
    result = {
        "models": [first.name, second.name],
        "folders": [str(first_dir), str(second_dir)],
        "test_images": len(labels),
        "both_right": int((first_right & second_right).sum()),
        "both_wrong": int((~first_right & ~second_right).sum()),
        "mcnemar": mcnemar(int((first_right & ~second_right).sum()), int((~first_right & second_right).sum())),
        "sides": [side_figures(side, labels) for side in (first, second)],
    }
    plot_disagreements(dataset.test.images, labels, first, second, out_dir / DISAGREEMENTS_FIGURE)
    atomic_write_text(out_dir / COMPARE_JSON, json.dumps(result, indent=2) + "\n")
    atomic_write_text(out_dir / COMPARE_FILE, render_comparison(result))
    m = result["mcnemar"]
    print(
        f"compare: {first.name} {result['sides'][0]['export_accuracy']:.2%} vs {second.name} "
        f"{result['sides'][1]['export_accuracy']:.2%}; McNemar p = {m['p_value']:.3g} -> {out_dir / COMPARE_FILE}",
        file=stream, flush=True,
    )
    return result


def side_figures(side: Side, labels: np.ndarray) -> dict:
    m = side.metrics
    return {
        "name": side.name,
        "test_accuracy": m.get("test_accuracy"),
        "test_loss": m.get("test_loss"),
        "params": m.get("params"),
        "train_seconds": m.get("train_seconds"),
        "epochs_run": m.get("epochs_run"),
        "ece": (m.get("calibration") or {}).get("ece"),
        "export_accuracy": float((side.predicted == labels).mean()),
        "artifacts": {a.file: a.bytes for a in side.manifest.artifacts},
        "latency_p50_ms": round(side.latency_ms, 4),
        "latency_source": side.latency_source,
    }


def plot_disagreements(images, labels, first: Side, second: Side, path: Path, shown: int = SHOWN_DISAGREEMENTS) -> None:
    """Two panels of test images: the ones only the first model gets right, and only the second."""
    from matplotlib.figure import Figure

    from mnist_edge.trainer.report import article, save_figure

    names = first.manifest.class_names
    kinds = [
        (first, second, np.flatnonzero((first.predicted == labels) & (second.predicted != labels))),
        (second, first, np.flatnonzero((second.predicted == labels) & (first.predicted != labels))),
    ]
    columns = 8
    rows = [max(1, math.ceil(min(len(indices), shown) / columns)) for _, _, indices in kinds]
    fig = Figure(figsize=(columns * 1.3, sum(rows) * 1.75 + 0.8))
    for panel, (right, wrong, indices), count in zip(fig.subfigures(2, 1, height_ratios=rows), kinds, rows):
        more = f", the first {shown} shown" if len(indices) > shown else ""
        panel.suptitle(f"{right.name} right, {wrong.name} wrong: {len(indices)} images{more}", fontsize=10, x=0.02, ha="left")
        axes = panel.subplots(count, columns, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, i in zip(axes.flat, indices[:shown]):
            ax.imshow(images[i], cmap="gray")
            ax.set_title(f"#{i}: {article(names[labels[i]])} {names[labels[i]]}\n{wrong.name} said {names[wrong.predicted[i]]}", fontsize=7)
        if not len(indices):
            axes[0, 0].text(0, 0.5, "none", fontsize=9)
    save_figure(fig, path)


def render_comparison(result: dict) -> str:
    a, b = result["sides"]
    m = result["mcnemar"]
    first, second = a["name"], b["name"]

    def row(label, fa, fb):
        return f"| {label} | {fa} | {fb} |"

    def pct(value):
        return f"{value:.2%}" if value is not None else "-"

    lines = [
        f"# {first.upper()} vs {second.upper()}",
        "",
        f"| figure | {first} | {second} |",
        "|---|---|---|",
        row("test accuracy (Keras model)", pct(a["test_accuracy"]), pct(b["test_accuracy"])),
        row("test accuracy (fp32 ONNX export, used for the test below)", pct(a["export_accuracy"]), pct(b["export_accuracy"])),
        row("test loss", a["test_loss"], b["test_loss"]),
        row("parameters", f"{a['params']:,}", f"{b['params']:,}"),
        row("expected calibration error (15 bins)", *(f"{s['ece']:.4f}" if s["ece"] is not None else "-" for s in (a, b))),
        row("training time", f"{a['train_seconds']:.0f} s ({a['epochs_run']} epochs)", f"{b['train_seconds']:.0f} s ({b['epochs_run']} epochs)"),
        row("latency, one image, onnxruntime fp32", f"{a['latency_p50_ms']:.3f} ms", f"{b['latency_p50_ms']:.3f} ms"),
    ]
    for file in sorted(set(a["artifacts"]) | set(b["artifacts"])):
        size = lambda side: f"{side['artifacts'][file] / 1024:,.1f} KiB" if file in side["artifacts"] else "-"  # noqa: E731
        lines.append(row(f"size of {file}", size(a), size(b)))
    sources = {a["latency_source"], b["latency_source"]}
    lines += ["", f"Latency: {'; '.join(sorted(sources))}.", ""]
    lines += [
        "## Where they disagree",
        "",
        f"Of the {result['test_images']:,} test images, both models get {result['both_right']:,} right and "
        f"{result['both_wrong']:,} wrong; **{m['first_only']} only the {first} gets right** and "
        f"**{m['second_only']} only the {second} gets right**.",
        "",
        f"![test images one model gets right and the other wrong]({DISAGREEMENTS_FIGURE})",
        "",
        "## Is the difference real? McNemar's test",
        "",
    ]
    lines += render_mcnemar(m, first, second)
    return "\n".join(lines) + "\n"


def render_mcnemar(m: dict, first: str, second: str) -> list[str]:
    n = m["first_only"] + m["second_only"]
    if n == 0:
        return ["The two models give the same answer on every test image: there is no difference to test.", ""]
    how = (
        f"exact two-sided binomial test on the {n} discordant images (used below {EXACT_TEST_BELOW})"
        if m["method"] == "exact binomial"
        else f"chi-square with continuity correction, (|{m['first_only']} - {m['second_only']}| - 1)² / {n} = {m['statistic']:.3f}"
    )
    better = first if m["first_only"] > m["second_only"] else second
    if m["p_value"] < SIGNIFICANCE:
        meaning = (
            f"below {SIGNIFICANCE}: if the two models were equally accurate, a split this uneven would be rare, so "
            f"the {better}'s advantage is statistically meaningful on this test set"
        )
    else:
        meaning = (
            f"not below {SIGNIFICANCE}: a split this uneven happens often enough by chance between two equally "
            "accurate models, so this test set cannot tell them apart"
        )
    return [
        f"Only the images exactly one model gets right say anything about which is better: {m['first_only']} for "
        f"the {first}, {m['second_only']} for the {second}. If both models were equally accurate, each of these "
        f"{n} images would be as likely to fall on either side, like a coin flip.",
        "",
        f"- method: {how}",
        f"- p-value: **{m['p_value']:.3g}**, {meaning}.",
        "",
        "The p-value is the chance of a split at least this uneven between two equally accurate models; it is not "
        "the chance that one model is better, and it says nothing about images unlike MNIST's test set.",
        "",
    ]
