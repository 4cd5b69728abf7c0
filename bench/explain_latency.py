"""Latency of the demo's "what the model looked at" overlay: DigitDemo.predict and
DigitDemo.explain on the same drawings, for every model, engine and precision found.

    python bench/explain_latency.py [--model artifacts] [--runs 20]

Drawings are real test digits redrawn as canvas strokes (as the demo's tests draw them); each
call goes through the demo's own functions (decode, preprocess, runtime). Prints a markdown
table of medians; timings are noisy on a shared machine, compare rows from the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_edge.data import load_dataset  # noqa: E402
from mnist_edge.demo.app import CANVAS_SIZE, DigitDemo  # noqa: E402


def drawing(digit: np.ndarray) -> dict:
    """A test digit as the Sketchpad sends it: black strokes flattened on the white canvas."""
    up = np.asarray(Image.fromarray(digit).resize((CANVAS_SIZE, CANVAS_SIZE), Image.Resampling.BILINEAR))
    composite = np.where(up[..., None] > 127, 0, 255).astype(np.uint8).repeat(3, axis=2)
    return {"background": None, "layers": [], "composite": composite}


def median_ms(call, values, runs: int) -> float:
    samples = []
    for i in range(runs):
        start = time.perf_counter()
        call(values[i % len(values)])
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts"))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    demo = DigitDemo.from_root(args.model)
    test = load_dataset(download=False).test
    drawings = [drawing(test.images[i]) for i in range(10)]
    print("| model | engine | precision | predict (ms) | explain (ms) |\n|---|---|---|---|---|")
    for name, choice in demo.models.items():
        for engine, precisions in choice.precisions.items():
            for precision in precisions:
                demo.predict(drawings[0], name, precision, engine)  # load the session once
                demo.explain(drawings[0], name, precision, engine)
                predict = median_ms(lambda d: demo.predict(d, name, precision, engine), drawings, args.runs)
                explain = median_ms(lambda d: demo.explain(d, name, precision, engine), drawings, args.runs)
                print(f"| {name} | {engine} | {precision} | {predict:.1f} | {explain:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
