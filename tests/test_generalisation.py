"""bench/generalisation.py: the styles are the same pages for the same seed, every style goes
through the runtime's preprocessing, and the table's MNIST figure is the model's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import generalisation  # noqa: E402


def _pixels(page) -> bytes:
    return page if isinstance(page, bytes) else page.tobytes()


def test_every_style_is_the_same_for_the_same_seed_and_readable(mnist):
    for style in generalisation.STYLES:
        first, labels = generalisation.style_images(style, mnist.test, 10, seed=3)
        again, labels_again = generalisation.style_images(style, mnist.test, 10, seed=3)
        other, _ = generalisation.style_images(style, mnist.test, 10, seed=4)
        assert [_pixels(p) for p in first] == [_pixels(p) for p in again] and np.array_equal(labels, labels_again)
        assert [_pixels(p) for p in first] != [_pixels(p) for p in other], style
        inputs, accepted = generalisation.prepare(first)
        assert inputs.shape == (10, 28, 28) and inputs.dtype == np.float32
        assert accepted.sum() >= 8, f"{style}: the preprocessing rejected {10 - accepted.sum()} of 10 pages"


def test_the_benchmark_reports_every_style_next_to_the_models_mnist_figure(trained_cnn, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "generalisation.py"), "--model", str(trained_cnn), "--per-style", "20",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "generalisation.json").read_text())
    rows, name = report["rows"], str(trained_cnn)
    assert set(generalisation.STYLES) < set(rows)
    metrics = json.loads((trained_cnn / "metrics.json").read_text())
    assert abs(rows["MNIST test set (as is)"][name] - metrics["test_accuracy"]) < 1e-4
    assert all(0.0 <= rows[s][name] <= 1.0 and rows[s]["images"] == 20 for s in generalisation.STYLES)
    table = (tmp_path / "generalisation.md").read_text()
    assert "| seven-segment | 20 |" in table and "mean of the 14 styles" in table
