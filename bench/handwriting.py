"""The "your own handwriting" loop, end to end, on a new writer: measure, fine-tune, ship.

    python bench/handwriting.py [--model artifacts/cnn] [--writer segments|printed] [--per-class 40]

Nobody's own handwriting ships with this repository, so the new writer is one a machine can make,
in the ImageFolder layout (`my-digits/<digit>/*.png|jpg`) that `mnist-edge demo --collect` writes:

- `segments`: seven-segment digits, as on a meter or a clock (the 6, 7 and 9 with and without
  their optional segment), at random sizes, slants, stroke widths, gaps, ink and paper tones.
  A style MNIST never showed: a fully trained CNN reads six to eight in ten of them.
- `printed`: digits printed in the system's TrueType fonts (DejaVu, Liberation: sans, serif and
  mono, regular and bold) at random sizes, angles, ink and paper, as PNG files and JPEG photos.
  Hard for a small model trained for seconds (the tests use it), easy for a fully trained one.

The script runs the README's commands on them (each through the command line, as a person would):
evaluate, finetune, export (with parity), verify, evaluate again, and prints one table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation"))
PER_CLASS = 40


def fonts() -> list[Path]:
    """Upright TrueType fonts of the machine (italic and very light or narrow faces left out)."""
    found = sorted(
        p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf")
        if not any(skip in p.name for skip in ("Oblique", "Italic", "ExtraLight", "Narrow"))
    )
    if len(found) < 4:
        raise RuntimeError("TrueType fonts missing: apt-get install fonts-dejavu-core fonts-liberation")
    return found


def write_printed_digits(root: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """A labelled folder (root/<digit>/*.png|jpg) of printed digits, as a phone would photograph them."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    faces = fonts()
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for k in range(per_class):
            font = ImageFont.truetype(str(faces[rng.integers(len(faces))]), int(rng.integers(110, 170)))
            page = Image.new("L", (220, 220), int(rng.integers(215, 250)))
            pen = ImageDraw.Draw(page)
            left, top, right, bottom = pen.textbbox((0, 0), str(digit), font=font)
            x = int(rng.integers(10, max(11, 210 - (right - left)))) - left
            y = int(rng.integers(10, max(11, 210 - (bottom - top)))) - top
            pen.text((x, y), str(digit), fill=int(rng.integers(10, 70)), font=font)
            page = page.rotate(float(rng.uniform(-8, 8)), fillcolor=int(np.median(np.asarray(page))))
            if k % 3 == 0:
                page.convert("RGB").save(folder / f"{k:03d}.jpg", quality=85)
            else:
                page.save(folder / f"{k:03d}.png")
    return root


# Which of the segments a (top), b (upper right), c (lower right), d (bottom), e (lower left),
# f (upper left) and g (middle) are lit for each digit; 6, 7 and 9 have a second common form.
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc", 8: "abcdefg",
            9: "abcdfg"}
VARIANTS = {6: "fgedc", 7: "abcf", 9: "abcfg"}
SEGMENT_ENDS = {"a": ("tl", "tr"), "b": ("tr", "mr"), "c": ("mr", "br"), "d": ("bl", "br"), "e": ("ml", "bl"),
                "f": ("tl", "ml"), "g": ("ml", "mr")}


def segment_digit(digit: int, rng: np.random.Generator, size: int = 220):
    """One seven-segment digit, dark on light paper, `size` pixels square."""
    from PIL import Image, ImageDraw

    width, height = rng.uniform(50, 90), rng.uniform(100, 150)
    stroke = int(round(rng.uniform(7, 16)))
    slant = np.tan(np.radians(rng.uniform(-3, 14)))
    left = size / 2 + rng.uniform(-25, 25) - width / 2
    top = size / 2 + rng.uniform(-20, 20) - height / 2
    corners = {"tl": (0, 0), "tr": (width, 0), "ml": (0, height / 2), "mr": (width, height / 2), "bl": (0, height),
               "br": (width, height)}
    gap = rng.uniform(0, 0.12)  # share of each segment's length left dark at both ends
    page = Image.new("L", (size, size), int(rng.integers(215, 250)))
    pen, ink = ImageDraw.Draw(page), int(rng.integers(10, 70))
    lit = VARIANTS[digit] if digit in VARIANTS and rng.random() < 0.5 else SEGMENTS[digit]
    for segment in lit:
        start, end = (np.array(corners[c], float) for c in SEGMENT_ENDS[segment])
        start, end = start + gap * (end - start), end - gap * (end - start)
        pen.line([(left + x + slant * (height - y), top + y) for x, y in (start, end)], fill=ink, width=stroke)
    return page


def write_segment_digits(root: Path, per_class: int = PER_CLASS, seed: int = 0) -> Path:
    """A labelled folder (root/<digit>/*.png) of seven-segment digits."""
    rng = np.random.default_rng(seed)
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for k in range(per_class):
            segment_digit(digit, rng).save(folder / f"{k:03d}.png")
    return root


WRITERS = {"segments": write_segment_digits, "printed": write_printed_digits}


def mnist_edge(*args) -> float:
    """Run one `mnist-edge` command, echoing its output; return its wall-clock seconds."""
    command = [sys.executable, "-m", "mnist_edge", *map(str, args)]
    print("$ mnist-edge " + " ".join(map(str, args)), flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"mnist-edge {args[0]} failed (exit {result.returncode})")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts/cnn"), help="a trained and exported model folder")
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts/handwriting"))
    parser.add_argument("--writer", choices=tuple(WRITERS), default="segments", help="the new writer (default: segments)")
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default: finetune's own)")
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    data = WRITERS[args.writer](args.out / "my-digits", args.per_class)
    tuned = args.out / f"{args.model.name}-mine"
    seconds = {"evaluate": mnist_edge("evaluate", args.model, "--data", data, "--out", args.out / "before")}
    extra = ("--epochs", args.epochs) if args.epochs else ()
    seconds["finetune"] = mnist_edge("finetune", args.model, "--data", data, "--out", tuned, *extra)
    seconds["export"] = mnist_edge("export", tuned)
    seconds["verify"] = mnist_edge("verify", tuned / "export")
    mnist_edge("evaluate", tuned, "--data", data, "--out", args.out / "after")

    tune = json.loads((tuned / "metrics.json").read_text())["finetune"]
    before_all = json.loads((args.out / "before" / "evaluation.json").read_text())["accuracy"]
    after_all = json.loads((args.out / "after" / "evaluation.json").read_text())["accuracy"]
    manifest = json.loads((tuned / "export" / "manifest.json").read_text())
    lines = [
        f"New writer: {tune['images']} {args.writer} digits ({args.per_class} per class), {tune['held_out']} held out; "
        f"model {args.model.name}, fine-tuned for {tune.get('epochs', '?')} epochs.",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| held-out {args.writer} digits (never trained on) | {tune['before']['personal']:.2%} | {tune['after']['personal']:.2%} |",
        f"| MNIST test set (10,000) | {tune['before']['mnist']:.2%} | {tune['after']['mnist']:.2%} |",
        f"| all {args.writer} digits (`mnist-edge evaluate`) | {before_all:.2%} | {after_all:.2%} |",
        "",
        "| step | seconds |",
        "|---|---|",
        *(f"| {step} | {s:.0f} |" for step, s in seconds.items()),
        "",
        "Exported artifacts of the fine-tuned model (parity on the MNIST test set): "
        + ", ".join(f"{a['file']} {a['proofs'][0]['argmax_agreement']:.2%}" for a in manifest["artifacts"]),
    ]
    table = "\n".join(lines)
    print("\n" + table)
    (args.out / "handwriting.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
