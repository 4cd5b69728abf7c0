"""Fit the weights of the number reader's segmentation score (runtime/number_spec.json) on fields
of MNIST *training* digits: an averaged structured perceptron over the dynamic programme's terms.

The reader (mnist_edge/runtime/number.py) scores a segmentation as a sum over its candidate
digits, cuts and skipped atoms of fixed terms times weights from number_spec.json. This script
computes those terms for every candidate of generated fields (mnist_edge/fields.py, built from
the *training* split, so the benchmark's test digits are never seen), then repeatedly decodes
each field with the current weights and, where the reading is wrong but a segmentation reading
the true text exists, moves the weights towards that segmentation's terms and away from the
wrong one's. The averaged weights, divided by the weight of log P(digit), are printed as the
number_spec.json values they set (`--write` writes them). Validation: the same accuracy on
fields of MNIST *test* digits of another seed, before and after.

    python bench/fit_read.py --model artifacts/cnn/export [--fields 3000] [--write]

The terms here must match `candidate_score`, `_shape_terms`, `cut_costs` and `skip_cost`; a
test of the reader's own score against this decomposition keeps them together
(tests/test_read.py::test_fitted_terms_sum_to_the_readers_score).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

from mnist_edge import runtime
from mnist_edge.data import load_dataset
from mnist_edge.fields import make_fields
from mnist_edge.runtime import number
from mnist_edge.runtime.errors import PreprocessError

# name: (where in number_spec.json, sign: spec value = sign * weight / weight of log p)
WEIGHTS = {
    "log_p": None,
    "digit": (("segment", "digit_bonus"), 1),
    "aspect": (("segment", "aspect_penalty"), -1),
    "class_high": (("segment", "class_aspect", "high_penalty"), -1),
    "class_low": (("segment", "class_aspect", "low_penalty"), -1),
    "small": (("segment", "small_penalty"), -1),
    "band": (("segment", "band_penalty"), -1),
    "apart": (("segment", "apart_penalty"), -1),
    "split": (("segment", "split_bonus"), 1),
    "cut": (("cut", "cost"), -1),
    "skip": (("segment", "skip_base"), -1),
    "skip_area": (("segment", "skip_area_heights2"), -1),
    "log_second": (("segment", "second_weight"), 1),
    "width": (("segment", "width_weight"), 1),
    "width2": (("segment", "width2_weight"), 1),
    "height": (("segment", "height_weight"), 1),
    "atoms": (("segment", "atom_weight"), 1),
    "components": (("segment", "component_weight"), 1),
    "uncut": (("segment", "uncut_bonus"), 1),
    "cut_start": (("cut", "start_cost"), -1),
    "cell": (("segment", "cell_penalty"), -1),
    **{f"class{c}": (("segment", "class_bonus", c), 1) for c in range(10)},
}
NAMES = list(WEIGHTS)
INDEX = {name: k for k, name in enumerate(NAMES)}
# Held at their spec values: the generator has no broken digits (a 5's flag, a 4 in two strokes),
# so fitting how separate marks are joined would learn never to join them.
HELD = ("components", "apart")


def spec_weights(spec: dict) -> np.ndarray:
    """The weight vector the spec's values stand for (log p weighing 1)."""
    w = np.zeros(len(NAMES))
    w[0] = 1.0
    for name, place in WEIGHTS.items():
        if place is not None:
            value = spec
            for key in place[0]:
                value = value[key]
            w[INDEX[name]] = place[1] * value
    return w


def candidate_terms(parts, probabilities, height: int, spec: dict, band) -> tuple[int, np.ndarray]:
    """The class read and the terms of `number.candidate_score` for one candidate."""
    rules, aspects = spec["segment"], spec["segment"]["class_aspect"]
    digit = int(np.argmax(probabilities))
    best, second = np.sort(probabilities)[::-1][:2]
    x0, y0, x1, y1 = number.bounds(parts)
    aspect, width = (x1 - x0) / max(1, y1 - y0), (x1 - x0) / height
    tolerance = rules["band_tolerance_heights"]
    whole = max(p.whole for p in parts)
    ramp = (whole / height - rules["split_from_heights"]) / (rules["split_full_heights"] - rules["split_from_heights"])
    t = np.zeros(len(NAMES))
    t[INDEX["log_p"]] = math.log(max(float(best), 1e-12))
    t[INDEX["digit"]] = 1
    t[INDEX["aspect"]] = max(0.0, aspect - rules["free_aspect"])
    t[INDEX["class_high"]] = max(0.0, aspect - aspects["high"][digit])
    t[INDEX["class_low"]] = max(0.0, aspects["low"][digit] - aspect)
    t[INDEX["small"]] = max(0.0, rules["min_height_heights"] - (y1 - y0) / height) / rules["min_height_heights"]
    t[INDEX["band"]] = max(0.0, (band[1] - y1) / height - tolerance) + max(0.0, (y0 - band[0]) / height - tolerance)
    t[INDEX["apart"]] = number._joins_apart(parts, rules["apart_gap_heights"] * height)
    t[INDEX["log_second"]] = math.log(max(float(second), 1e-12))
    t[INDEX["width"]], t[INDEX["width2"]], t[INDEX["height"]] = width, width * width, (y1 - y0) / height
    t[INDEX["atoms"]], t[INDEX["components"]] = len(parts) - 1, len({p.label for p in parts}) - 1
    t[INDEX["uncut"]] = 1.0 if whole and x1 - x0 >= whole else 0.0
    t[INDEX["split"]] = min(1.0, max(0.0, ramp)) if whole and x1 - x0 < whole else 0.0
    t[INDEX[f"class{digit}"]] = 1
    return digit, t


def field_terms(predictor, image: bytes, spec: dict):
    """Every candidate's class and terms, each atom's cut and skip terms, for one field."""
    size, box = number.digit_geometry(predictor)
    field, dividers, pieces, height = number.field_marks(image, spec)
    parts = number.atoms(pieces, height, spec)
    spans = number.candidates(parts, height, spec)
    inputs = np.stack([number.to_input(number.crop(field, parts[i:j], spec["crop_dilation"]), size, box) for i, j in spans])
    band = number.row_band(pieces)
    found = {span: candidate_terms(parts[span[0] : span[1]], p, height, spec, band) for span, p in zip(spans, predictor.predict_array(inputs))}
    for span, (_, t) in found.items():
        t[INDEX["cell"]] = number.shared_cells(parts, *span, dividers)
    stroke = number.preprocess._stroke_width(field.mask.astype(np.float32))
    starts, skips = np.zeros((len(parts), len(NAMES))), np.zeros((len(parts), len(NAMES)))
    for k, part in enumerate(parts):
        skips[k, INDEX["skip"]], skips[k, INDEX["skip_area"]] = 1, part.area / height**2
        if k and part.cut_ink and parts[k - 1].label == part.label:
            starts[k, INDEX["cut"]] = max(0.0, part.cut_ink / max(stroke, 1.0) - spec["cut"]["free_strokes"]) ** 2
            starts[k, INDEX["cut_start"]] = 1
    return len(parts), found, starts, skips


def decode(terms, w: np.ndarray, text: str | None = None):
    """The best segmentation's text and summed terms under weights w; with `text`, the best of
    those reading exactly that text (None if there is none)."""
    count, found, starts, skips = terms
    states = len(text) + 1 if text is not None else 1
    best = np.full((count + 1, states), -np.inf)
    best[0, 0] = 0
    back = {}
    ending = collections.defaultdict(list)
    for (i, j), value in found.items():
        ending[j].append((i, value))
    for j in range(1, count + 1):
        for k in range(states):
            score, step = best[j - 1, k] + w @ skips[j - 1], (j - 1, k, None)
            for i, (digit, t) in ending[j]:
                if text is not None and (k == 0 or digit != int(text[k - 1])):
                    continue
                before = k - 1 if text is not None else 0
                value = best[i, before] + w @ t + w @ starts[i]
                if value > score:
                    score, step = value, (i, before, (i, j))
            best[j, k], back[j, k] = score, step
    if best[count, states - 1] == -np.inf:
        return None
    digits, total, j, k = [], np.zeros(len(NAMES)), count, states - 1
    while j > 0:
        i, before, span = back[j, k]
        if span is None:
            total += skips[i]
        else:
            digits.append(str(found[span][0]))
            total += found[span][1] + starts[i]
        j, k = i, before
    return "".join(reversed(digits)), total


def accuracy(data, w: np.ndarray) -> dict[str, float]:
    right, seen = collections.Counter(), collections.Counter()
    for text, group, terms in data:
        seen[group] += 1
        found = decode(terms, w) if terms is not None else None
        right[group] += found is not None and found[0] == text
    return {group: right[group] / seen[group] for group in seen}


def fit(data, w: np.ndarray, epochs: int, rate: float, separated_weight: float, seed: int, only=None) -> np.ndarray:
    """The averaged perceptron: towards the terms of the right reading, away from the wrong one's."""
    rng, w, total, steps = np.random.default_rng(seed), w.copy(), np.zeros_like(w), 0
    held = [k for k, name in enumerate(NAMES) if name in HELD or (only and name not in only)]
    for _ in range(epochs):
        for k in rng.permutation(len(data)):
            text, group, terms = data[k]
            found = decode(terms, w) if terms is not None else None
            truth = decode(terms, w, text) if found is not None and found[0] != text else None
            if truth is not None:
                update = rate * (separated_weight if group == "separated" else 1.0) * (truth[1] - found[1])
                update[held] = 0
                w += update
                w[0] = max(w[0], 0.1)
            total += w
            steps += 1
    return total / steps


def fields_terms(predictor, images, labels, count: int, seed: int, spec: dict):
    data = []
    for field in make_fields(images, labels, count, seed=seed):
        group = field.group
        try:
            data.append((field.text, group, field_terms(predictor, field.image, spec)))
        except PreprocessError:
            data.append((field.text, group, None))
    return data


def write_weights(spec: dict, w: np.ndarray) -> dict:
    """The spec with the fitted values (log p's weight divided out, the held ones too), rounded to 3 decimals."""
    w = w / w[0]
    for name, place in WEIGHTS.items():
        if place is None:
            continue
        keys, sign = place
        target = spec
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = round(float(sign * w[INDEX[name]]), 3)
    return spec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--fields", type=int, default=3000, help="training fields (MNIST training digits)")
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--validation-seed", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.02)
    parser.add_argument("--separated-weight", type=float, default=2.0, help="update weight of fields whose digits are apart")
    parser.add_argument(
        "--only", nargs="+", choices=NAMES[1:], metavar="TERM",
        help="fit only these terms' weights, every other held at its spec value (a term added to a fitted score)",
    )
    parser.add_argument("--write", action="store_true", help="write the fitted values into runtime/number_spec.json")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    spec = json.loads(number.SPEC_FILE.read_text())
    dataset = load_dataset(args.data_dir)
    predictor = runtime.load(args.model, threads=1)
    train = fields_terms(predictor, dataset.train.images, dataset.train.labels, args.fields, args.seed, spec)
    check = fields_terms(predictor, dataset.test.images, dataset.test.labels, 1000, args.validation_seed, spec)
    start = spec_weights(spec)
    print("spec now:  train", accuracy(train, start), "validation", accuracy(check, start))
    fitted = fit(train, start, args.epochs, args.rate, args.separated_weight, seed=0, only=args.only)
    print("fitted:    train", accuracy(train, fitted), "validation", accuracy(check, fitted))
    spec = write_weights(spec, fitted)
    one_line = lambda match: "[" + ", ".join(item.strip() for item in match.group(1).split(",")) + "]"  # noqa: E731
    text = re.sub(r"\[\s*([-0-9.,\s]+?)\s*\]", one_line, json.dumps(spec, indent=2))
    print(text)
    if args.write:
        number.SPEC_FILE.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
