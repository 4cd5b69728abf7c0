"""Accuracy benchmark: train each recipe from scratch on full MNIST with several seeds, next to the
keras.io "Simple MNIST convnet" trained with the same seeds in the same run as the yardstick, and
report each recipe as mean ± standard deviation over the seeds, with min and max.

    python bench/accuracy.py [--out bench-artifacts] [--seeds 5 | --seeds 42,43] [--models mlp,cnn,cnn/fast]
                             [--previous] [--no-yardstick | --yardstick-seeds N] [--resume] [--record]
                             [--data-dir D]

`--models` names recipes as model or model/recipe (trainer.models.ARCHITECTURES). `--seeds N` is
the seeds 42 .. 42+N-1. For every seed the yardstick is trained first, then each recipe, so every
"x keras.io time" divides two times measured minutes apart on the same machine (--yardstick-seeds N:
the yardstick with the first N seeds only, to save time; the other seeds divide by its mean). --previous also
trains the previous CNN (cnn_v1). Writes OUT/accuracy.md (the summary and every seed's row) and
OUT/accuracy.json (the same, with the machine and the library versions); --resume reuses the
seeds already finished in OUT (same recipe, same data); --record copies the summary into
trainer/recipe_figures.json, which `mnist-edge train` quotes as the recipe's mean. Training seconds
are wall-clock on whatever else the machine is doing: compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_edge.data import Dataset, fingerprint, load_dataset, scale_images  # noqa: E402
from mnist_edge.trainer.models import DEFAULT_RECIPE, recipe_of  # noqa: E402
from mnist_edge.trainer.recipe_figures import FIGURES_FILE, load_figures, recipe_key, summarise  # noqa: E402
from mnist_edge.trainer.train import TrainConfig, seed_everything, train  # noqa: E402

YARDSTICK = "keras.io convnet"
# https://keras.io/examples/vision/mnist_convnet/ (fchollet), as published.
YARDSTICK_BATCH_SIZE = 128
YARDSTICK_EPOCHS = 15
FIRST_SEED = 42
DEFAULT_SEEDS = 5
DEFAULT_MODELS = "mlp,cnn,cnn/fast"


def keras_io_convnet():
    """conv 32 -> pool -> conv 64 -> pool -> flatten -> dropout 0.5 -> softmax 10 (34,826 parameters)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


def train_yardstick(dataset: Dataset, seed: int) -> dict:
    """The keras.io example's own training: Adam at its default rate, batch 128, 15 epochs, the
    last 10% of the training images for validation, no augmentation. Seeded like our models
    (which also turns on deterministic kernels, as for them)."""
    import keras

    seed_everything(seed)
    x_train = scale_images(dataset.train.images)[..., None]
    y_train = keras.utils.to_categorical(dataset.train.labels, 10)
    model = keras_io_convnet()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    finished = {}

    class TrainingEnd(keras.callbacks.Callback):
        # Timed to the end of training, not to fit()'s return: destroying Keras's tf.data iterator
        # can wait up to a minute for the autotuning thread (trainer.train._fixed_parallelism
        # avoids that for our models); counting that stall would flatter our ratio.
        def on_train_end(self, logs=None):
            finished["at"] = time.monotonic()

    start = time.monotonic()
    model.fit(
        x_train, y_train, batch_size=YARDSTICK_BATCH_SIZE, epochs=YARDSTICK_EPOCHS, validation_split=0.1, verbose=0,
        callbacks=[TrainingEnd()],
    )
    seconds = finished["at"] - start
    x_test = scale_images(dataset.test.images)[..., None]
    y_test = keras.utils.to_categorical(dataset.test.labels, 10)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"{YARDSTICK} seed {seed}: test accuracy {accuracy:.4f} in {seconds:.0f}s", flush=True)
    return {
        "recipe": YARDSTICK, "seed": seed, "params": model.count_params(), "epochs_run": YARDSTICK_EPOCHS,
        "best_epoch": YARDSTICK_EPOCHS, "train_seconds": seconds, "test_accuracy": accuracy, "test_loss": loss,
    }


def parse_seeds(text: str) -> list[int]:
    """'5' -> the five seeds 42..46; '42,43' -> those seeds."""
    if "," not in text and text.isdigit() and int(text) < FIRST_SEED:
        return list(range(FIRST_SEED, FIRST_SEED + int(text)))
    return [int(s) for s in text.split(",")]


def parse_recipes(text: str) -> list[tuple[str, str]]:
    """'mlp,cnn/fast' -> [("mlp", "default"), ("cnn", "fast")], each checked to exist."""
    pairs = []
    for item in text.split(","):
        model, _, recipe = item.strip().partition("/")
        recipe_of(model, recipe or DEFAULT_RECIPE)  # ValueError names what exists
        pairs.append((model, recipe or DEFAULT_RECIPE))
    return pairs


def label(model: str, recipe: str) -> str:
    return model if recipe == DEFAULT_RECIPE else f"{model} --recipe {recipe}"


def train_recipe(dataset: Dataset, model: str, recipe: str, seed: int, out: Path) -> dict:
    config = TrainConfig(model=model, recipe=recipe, seed=seed)
    # OUT/seed-42/cnn for the default recipe, OUT/seed-42-fast/cnn for another: train() adds the model's name.
    folder = out / (f"seed-{seed}" if recipe == DEFAULT_RECIPE else f"seed-{seed}-{recipe}")
    metrics = train(dataset, config, folder)
    return {
        "recipe": label(model, recipe), "seed": seed, "params": metrics["params"], "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"], "train_seconds": metrics["train_seconds"],
        "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
        "recipe_fields": asdict(recipe_of(model, recipe)),
        # With test-time shifts, test_accuracy is the shifted reading (what the export gives); this is the network alone.
        "test_accuracy_one_pass": metrics.get("test_accuracy_one_pass", metrics["test_accuracy"]),
    }


def machine() -> dict:
    """The CPU kind (model name and the vector extensions that change float results), the cores and
    the library versions: the figures hold for this combination."""
    from importlib import metadata

    cpu, flags = platform.processor() or platform.machine(), []
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        present = set(next(line for line in info.splitlines() if line.startswith("flags")).split(":", 1)[1].split())
        flags = sorted(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "fma") if f in present)
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu, "cpu_flags": flags, "cores": os.cpu_count(), "python": platform.python_version(), "libraries": versions}


def ratios(rows: list[dict]) -> dict[tuple[str, int], float]:
    """(recipe, seed) -> training seconds / the yardstick's with that seed in this run, or, for a
    seed the yardstick was not trained with (--yardstick-seeds), / its mean time in this run."""
    yardstick = {r["seed"]: r["train_seconds"] for r in rows if r["recipe"] == YARDSTICK}
    if not yardstick:
        return {}
    mean = statistics.fmean(yardstick.values())
    return {(r["recipe"], r["seed"]): r["train_seconds"] / yardstick.get(r["seed"], mean) for r in rows}


def summary(rows: list[dict]) -> list[dict]:
    """One entry per recipe, in the order first trained: accuracy, loss, seconds and ratio over its seeds."""
    ratio = ratios(rows)
    out = []
    for name in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == name]
        mine_ratios = [ratio[(name, r["seed"])] for r in mine if (name, r["seed"]) in ratio]
        out.append({
            "recipe": name, "params": mine[0]["params"], "seeds": [r["seed"] for r in mine],
            "test_accuracy": summarise([r["test_accuracy"] for r in mine]),
            "test_accuracy_one_pass": summarise([r.get("test_accuracy_one_pass", r["test_accuracy"]) for r in mine]),
            "reads": reads(mine[0]),
            "test_loss": summarise([r["test_loss"] for r in mine]),
            "train_seconds": summarise([r["train_seconds"] for r in mine]),
            "x_yardstick": summarise(mine_ratios) if mine_ratios else None,
            "recipe_fields": mine[0].get("recipe_fields"),
        })
    return out


def reads(row: dict) -> str:
    """How the recipe's model reads an image: one pass, or with N test-time shifts (the exported graph)."""
    shifts = (row.get("recipe_fields") or {}).get("test_time_shifts") or ()
    return f"{len(shifts)} shifts ({len(shifts) + 1} passes)" if shifts else "one pass"


def summary_table(entries: list[dict]) -> str:
    lines = [
        "| recipe | parameters | seeds | reads with | test accuracy, mean ± sd | min | max | one pass, mean ± sd "
        "| training s, mean | x keras.io time, mean (range) | test loss, mean |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        acc, x = e["test_accuracy"], e["x_yardstick"]
        one = e.get("test_accuracy_one_pass") or acc
        ratio = f"{x['mean']:.2f} ({x['min']:.2f}-{x['max']:.2f})" if x else "-"
        lines.append(
            f"| {e['recipe']} | {e['params']:,} | {len(e['seeds'])} | {e.get('reads', 'one pass')} "
            f"| {acc['mean']:.3%} ± {acc['sd'] * 100:.3f} | {acc['min']:.2%} | {acc['max']:.2%} "
            f"| {one['mean']:.3%} ± {one['sd'] * 100:.3f} "
            f"| {e['train_seconds']['mean']:.0f} | {ratio} | {e['test_loss']['mean']:.4f} |"
        )
    return "\n".join(lines)


def seed_table(rows: list[dict]) -> str:
    ratio = ratios(rows)
    lines = [
        "| recipe | seed | epochs run (best) | training s | x keras.io time | test accuracy | one pass | test loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["seed"])):
        x = ratio.get((r["recipe"], r["seed"]))
        lines.append(
            f"| {r['recipe']} | {r['seed']} | {r['epochs_run']} ({r['best_epoch']}) | {r['train_seconds']:.0f} "
            f"| {'-' if x is None else f'{x:.2f}'} | {r['test_accuracy']:.2%} "
            f"| {r.get('test_accuracy_one_pass', r['test_accuracy']):.2%} | {r['test_loss']:.4f} |"
        )
    return "\n".join(lines)


def record(report: dict, entries: list[dict], path: Path = FIGURES_FILE) -> None:
    """This run's recipes into trainer/recipe_figures.json (what `mnist-edge train` quotes as
    recipe_mean), each with the command, date and machine that measured it; the recipes recorded
    earlier on the same test set are kept."""
    earlier = load_figures(path)
    recipes = earlier.get("recipes", {}) if earlier.get("test_sha256") == report["test_sha256"] else {}
    recorded = []
    for e in entries:
        if e["recipe"] == YARDSTICK or not e["recipe_fields"]:
            continue
        model, _, recipe = e["recipe"].partition(" --recipe ")
        key = recipe_key(model, recipe or DEFAULT_RECIPE)
        recipes[key] = {
            "recipe": e["recipe_fields"], "seeds": e["seeds"], "test_accuracy": e["test_accuracy"],
            "x_yardstick": e["x_yardstick"], **{k: report[k] for k in ("command", "date", "machine")},
        }
        recorded.append(key)
    path.write_text(json.dumps({"test_sha256": report["test_sha256"], "recipes": recipes}, indent=2) + "\n")
    print(f"recorded {', '.join(recorded)} -> {path}")


def finished_rows(out: Path, test_sha256: str) -> list[dict]:
    """The per-seed rows of an earlier run into OUT (for --resume), if it measured the same data."""
    try:
        earlier = json.loads((out / "accuracy.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return earlier["rows"] if earlier.get("test_sha256") == test_sha256 else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts"))
    parser.add_argument("--seeds", default=str(DEFAULT_SEEDS), help=f"how many seeds ({DEFAULT_SEEDS}: 42..46), or a comma-separated list")
    parser.add_argument("--data-dir")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"recipes, as model or model/recipe (default {DEFAULT_MODELS})")
    parser.add_argument("--previous", action="store_true", help="also train the previous CNN (cnn_v1)")
    parser.add_argument("--no-yardstick", action="store_true", help="skip the keras.io convnet")
    parser.add_argument(
        "--yardstick-seeds", type=int,
        help="train the yardstick with the first N seeds only (default: every seed); the other seeds' time "
        "ratios divide by its mean time in this run",
    )
    parser.add_argument("--resume", action="store_true", help="reuse the rows of an earlier run into --out")
    parser.add_argument("--record", action="store_true", help=f"write the summary to {FIGURES_FILE.name}")
    args = parser.parse_args()
    try:
        seeds = parse_seeds(args.seeds)
        recipes = parse_recipes(args.models) + ([("cnn_v1", DEFAULT_RECIPE)] if args.previous else [])
    except ValueError as exc:
        parser.error(str(exc))

    dataset = load_dataset(args.data_dir)
    test_sha256 = fingerprint(dataset.test)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = ([] if args.no_yardstick else [YARDSTICK]) + [label(m, r) for m, r in recipes]
    rows = [r for r in finished_rows(args.out, test_sha256) if r["recipe"] in wanted and r["seed"] in seeds] if args.resume else []
    report = {
        "command": "python bench/accuracy.py " + " ".join(sys.argv[1:]), "test_sha256": test_sha256, "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    for seed in seeds:
        done = {r["recipe"] for r in rows if r["seed"] == seed}
        with_yardstick = not args.no_yardstick and seeds.index(seed) < (args.yardstick_seeds or len(seeds))
        if with_yardstick and YARDSTICK not in done:
            rows.append(train_yardstick(dataset, seed))
            write_report(args.out, report, rows)
        for model, recipe in recipes:
            if label(model, recipe) not in done:
                rows.append(train_recipe(dataset, model, recipe, seed, args.out))
            write_report(args.out, report, rows)
    entries = write_report(args.out, report, rows)
    if args.record:
        record(report, entries)
    return 0


def write_report(out: Path, report: dict, rows: list[dict]) -> list[dict]:
    """accuracy.json and accuracy.md, rewritten after every training (a stopped run keeps its seeds)."""
    entries = summary(rows)
    (out / "accuracy.json").write_text(json.dumps({**report, "rows": rows, "summary": entries}, indent=2) + "\n")
    text = (
        f"Over seeds {', '.join(map(str, sorted({r['seed'] for r in rows})))}; {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores; `{report['command']}`\n\n"
        + summary_table(entries) + "\n\nEvery seed:\n\n" + seed_table(rows) + "\n"
    )
    (out / "accuracy.md").write_text(text)
    print("\n" + text, flush=True)
    return entries


if __name__ == "__main__":
    sys.exit(main())
