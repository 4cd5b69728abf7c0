"""What a recipe reaches over seeds, as recorded by a run of bench/accuracy.py.

One seed's test accuracy is a sample: the same recipe gives a spread of figures over seeds, and
another kind of CPU gives other figures for the same seed. `recipe_figures.json` (next to this
file) holds the mean, standard deviation, min and max over the seeds of one benchmark run, with
the machine and versions it ran on; `mnist-edge train` copies the entry of its recipe into
metrics.json as `recipe_mean` (and the export into its manifest) when the run follows the recipe
exactly on the data set the figures were measured on. Nothing here is ever estimated: no entry,
no figure.

    python bench/accuracy.py --seeds 5 --record    # rewrites recipe_figures.json
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

FIGURES_FILE = Path(__file__).with_name("recipe_figures.json")


def summarise(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max."""
    if not values:
        raise ValueError("no values to summarise")
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def recipe_key(model: str, recipe: str) -> str:
    return f"{model}/{recipe}"


def load_figures(path: Path = FIGURES_FILE) -> dict:
    """The recorded file, or {} when there is none (or it is unreadable: a figure is then unknown)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def recorded_mean(model: str, recipe: str, recipe_fields: dict, test_sha256: str, path: Path = FIGURES_FILE) -> dict | None:
    """The recorded figures of this recipe, if they were measured with these exact recipe fields on
    this test set; None otherwise (the recipe changed since, or other data)."""
    figures = load_figures(path)
    entry = figures.get("recipes", {}).get(recipe_key(model, recipe))
    as_recorded = json.loads(json.dumps(recipe_fields))  # tuples (test_time_shifts) are lists in the file
    if not entry or entry.get("recipe") != as_recorded or figures.get("test_sha256") != test_sha256:
        return None
    accuracy = entry["test_accuracy"]
    return {
        "test_accuracy_mean": round(accuracy["mean"], 6),
        "test_accuracy_sd": round(accuracy["sd"], 6),
        "test_accuracy_min": round(accuracy["min"], 6),
        "test_accuracy_max": round(accuracy["max"], 6),
        "seeds": entry["seeds"],
        "source": f"{entry.get('command', 'bench/accuracy.py')} ({entry.get('date', 'undated')}, "
        f"{entry.get('machine', {}).get('cpu', 'unknown CPU')})",
    }
