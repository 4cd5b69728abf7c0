"""Reading whole numbers written in styles that are not MNIST's: the same seeded fields as the
reading benchmark (mnist_edge/fields.py: 2 to 8 digits, wide to overlapping, plain, ruled, boxed
or in a comb, photographed or scanned), built from the digits of bench/generalisation.py's styles
instead of MNIST's own: MNIST test digits with another pen, slant or width, digits printed in the
system's fonts, seven-segment digits. Neither model ever trained on them.

Each style's digits go through the runtime's `to_mnist` (as every page does in the generalisation
benchmark) to become 28x28 digits the field generator lays out; each field is then read digit by
digit (`--reader digits`) and with the export's number reader (`read`'s default), and optionally by
Tesseract 5, side by side.

    python bench/read_styles.py --model artifacts/cnn/export [--fields 200] [--tesseract] [--out bench-artifacts]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalisation import STYLES, prepare, style_images  # noqa: E402
from read import tesseract_all  # noqa: E402

from mnist_edge import runtime  # noqa: E402
from mnist_edge.data import load_dataset  # noqa: E402
from mnist_edge.fields import GROUPS as FIELD_GROUPS, make_fields  # noqa: E402
from mnist_edge.runtime.errors import PreprocessError  # noqa: E402

DEFAULT_STYLES = (
    "thin pen", "thick pen", "slanted", "narrow", "wide", "printed sans", "printed serif", "printed italic", "seven-segment",
)
GROUPS = ("all", *FIELD_GROUPS)


def style_digits(style: str, test, per_style: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The style's digits as MNIST-format images (uint8, light ink on 0), those to_mnist accepted."""
    pages, labels = style_images(style, test, per_style, seed)
    inputs, accepted = prepare(pages)
    return np.round(inputs[accepted] * 255).astype(np.uint8), labels[accepted]


def read_texts(predictor, fields, reader: str) -> list[str]:
    texts = []
    for f in fields:
        try:
            texts.append(predictor.read(f.image, reader=reader).text)
        except PreprocessError as exc:
            texts.append(f"error: {exc}")
    return texts


def shares(fields, texts) -> dict[str, float]:
    right = {g: [0, 0] for g in GROUPS}
    for f, text in zip(fields, texts):
        for g in ("all", f.group):
            right[g][0] += text == f.text
            right[g][1] += 1
    return {g: r / n for g, (r, n) in right.items() if n}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="export folder of a digit model (with its number reader)")
    parser.add_argument("--styles", default=",".join(DEFAULT_STYLES), help=f"comma list of {', '.join(STYLES)}")
    parser.add_argument("--fields", type=int, default=200, help="fields per style")
    parser.add_argument("--per-style", type=int, default=500, help="digits drawn per style, laid out in the fields")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--tesseract", action="store_true", help="read the fields with Tesseract 5 too")
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts"))
    parser.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    args = parser.parse_args(argv)
    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        parser.error(f"unknown style {', '.join(unknown)}; choose from {', '.join(STYLES)}")

    test = load_dataset(args.data_dir).test
    predictor = runtime.load(args.model, threads=1)
    ways = {"digit by digit": "digits", "read (with its reader)": "auto"} if predictor.has_reader else {"read": "digits"}
    header = "| style | fields | " + " | ".join(f"{w}: {g}" for w in ways for g in ("all", "touching")) + (
        " | Tesseract 5: all |" if args.tesseract else " |")
    lines = [
        f"# Whole numbers in other styles: {args.fields} fields per style (seed {args.seed}), model {args.model}", "",
        header, "|---|---:|" + "---:|" * (2 * len(ways) + bool(args.tesseract)),
    ]
    rows = {}
    for k, style in enumerate(styles):
        images, labels = style_digits(style, test, args.per_style, args.seed)
        fields = list(make_fields(images, labels, args.fields, seed=args.seed + k))
        figures = {name: shares(fields, read_texts(predictor, fields, reader)) for name, reader in ways.items()}
        if args.tesseract:
            theirs, _ = tesseract_all(fields)
            figures["tesseract"] = shares(fields, theirs) if theirs else {}
        rows[style] = figures
        cells = [f"{figures[w][g]:.1%}" if g in figures[w] else "-" for w in ways for g in ("all", "touching or overlapping")]
        if args.tesseract:
            cells.append(f"{figures['tesseract'].get('all', 0):.1%}" if figures["tesseract"] else "-")
        lines.append(f"| {style} | {len(fields)} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    means = [np.mean([rows[s][w][g] for s in styles if g in rows[s][w]]) for w in ways for g in ("all", "touching or overlapping")]
    tess = [f"{np.mean([rows[s]['tesseract'].get('all', 0) for s in styles]):.1%}"] if args.tesseract else []
    lines.append(f"| **mean of {len(styles)} styles** | | " + " | ".join([f"{m:.1%}" for m in means] + tess) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "read_styles.md").write_text("\n".join(lines) + "\n")
    (args.out / "read_styles.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
