"""Generalisation benchmark: how a trained digit model reads handwriting and print that is not
MNIST's, style by style, next to its MNIST test figure. The project owns these images and never
trains on them.

    python bench/generalisation.py --model artifacts/cnn [--model other/cnn ...] [--per-style 500]
                                   [--out bench-artifacts/generalisation] [--seed 0] [--data-dir D]

Every image is a page (dark ink on lighter paper, as a person would photograph or scan it) and
goes through the runtime's own preprocessing (`to_mnist`: ink, crop, 20x20 box, centre of mass)
before the model sees it, exactly as `mnist-edge predict` and the demo do; an image the
preprocessing rejects counts as wrong. The styles:

- MNIST *test* digits (never trained on) re-drawn: a thin pen and a thick pen (the strokes eroded
  or dilated at 4x), slanted (sheared 15-30 degrees either way), narrow and wide (width x0.6-0.75
  or x1.35-1.6), photographed (uneven paper and light, blur, noise, JPEG) and scanned (faint ink,
  grey paper, a small tilt, speckle);
- printed digits in the system's TrueType fonts: sans, serif and mono faces, bold faces, italic
  faces, and printed digits photographed (uneven light, blur, JPEG);
- seven-segment digits (bench/handwriting.py's writer: meters and clocks).

One column per --model (e.g. before and after a change); a model whose recipe reads with test-time
shifts is read with them, as its export does. Writes OUT/generalisation.md and .json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

from handwriting import FONT_DIRS, segment_digit  # noqa: E402

PER_STYLE = 500
PAGE = 240  # pixels on a side of every page
UPSCALE = 4  # MNIST digits are re-drawn at 4x (112 px) before their pen, slant or camera is changed


# --- pages from MNIST test digits -----------------------------------------------------------------


def _ink_on_paper(ink: np.ndarray, rng: np.random.Generator, paper=(205, 250), tone=(10, 80)) -> Image.Image:
    """`ink` (float [h, w] in [0, 1], 1 = full ink) laid at a random place on a PAGE x PAGE sheet."""
    h, w = ink.shape
    sheet = np.zeros((PAGE, PAGE), np.float32)
    top, left = int(rng.integers(0, PAGE - h + 1)), int(rng.integers(0, PAGE - w + 1))
    sheet[top:top + h, left:left + w] = ink
    paper_level, ink_level = rng.uniform(*paper), rng.uniform(*tone)
    page = paper_level - (paper_level - ink_level) * sheet
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))


def _big(digit: np.ndarray, width_scale: float = 1.0) -> Image.Image:
    """An MNIST digit (uint8, light on dark) at UPSCALE x, optionally narrower or wider."""
    size = 28 * UPSCALE
    return Image.fromarray(digit).resize((max(8, int(size * width_scale)), size), Image.Resampling.BICUBIC)


def _as_ink(image: Image.Image) -> np.ndarray:
    return np.asarray(image, np.float32) / 255.0


def thin_pen(digit, rng):
    return _ink_on_paper(_as_ink(_big(digit).filter(ImageFilter.MinFilter(int(rng.choice([5, 7]))))), rng)


def thick_pen(digit, rng):
    return _ink_on_paper(_as_ink(_big(digit).filter(ImageFilter.MaxFilter(int(rng.choice([7, 9, 11]))))), rng)


def slanted(digit, rng):
    angle = np.radians(rng.uniform(15, 30)) * rng.choice([-1, 1])
    big = _big(digit)
    shear = np.tan(angle)
    width = int(big.width + abs(shear) * big.height)
    # Output (x, y) samples input (x + shear * (y - h/2) - offset, y): the top leans right for shear < 0.
    offset = (width - big.width) / 2
    sheared = big.transform(
        (width, big.height), Image.Transform.AFFINE, (1, shear, -offset - shear * big.height / 2, 0, 1, 0),
        resample=Image.Resampling.BICUBIC,
    )
    return _ink_on_paper(_as_ink(sheared), rng)


def narrow(digit, rng):
    return _ink_on_paper(_as_ink(_big(digit, rng.uniform(0.6, 0.75))), rng)


def wide(digit, rng):
    return _ink_on_paper(_as_ink(_big(digit, rng.uniform(1.35, 1.6))), rng)


def _camera(page: Image.Image, rng: np.random.Generator, quality=(30, 70)) -> bytes:
    """Uneven light (a gradient and a vignette), lens blur, sensor noise, then a JPEG file."""
    values = np.asarray(page, np.float32)
    yy, xx = np.mgrid[0:PAGE, 0:PAGE] / PAGE - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 - rng.uniform(0.2, 0.45) * (0.5 + np.cos(angle) * xx + np.sin(angle) * yy)
    vignette = 1.0 - rng.uniform(0.1, 0.3) * (xx**2 + yy**2) * 2
    values = values * gradient * vignette
    blurred = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.8, 2.5))
    )
    noisy = np.asarray(blurred, np.float32) + rng.normal(0, rng.uniform(2, 7), (PAGE, PAGE))
    out = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=int(rng.integers(*quality)))
    return out.getvalue()


def photographed(digit, rng):
    return _camera(_ink_on_paper(_as_ink(_big(digit)), rng), rng)


def scanned(digit, rng):
    page = _ink_on_paper(_as_ink(_big(digit)), rng, paper=(150, 200), tone=(90, 130))
    page = page.rotate(float(rng.uniform(-6, 6)), resample=Image.Resampling.BILINEAR, fillcolor=int(np.median(page)))
    values = np.asarray(page, np.float32)
    specks = rng.random(values.shape) < 0.002
    values = np.where(specks, values - rng.uniform(40, 90), values) + rng.normal(0, 4, values.shape)
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))


# --- printed and seven-segment digits ----------------------------------------------------------------


def font_files(kind: str) -> list[Path]:
    """TrueType faces of the machine by kind: sans, serif, mono, bold, italic."""
    every = sorted(p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf") if "ExtraLight" not in p.name and "Math" not in p.name)
    slanted_face = ("Italic", "Oblique")
    upright = [p for p in every if not any(s in p.name for s in slanted_face)]
    chosen = {
        "sans": [p for p in upright if "Sans" in p.name and "Mono" not in p.name and "Bold" not in p.name],
        "serif": [p for p in upright if "Serif" in p.name and "Bold" not in p.name],
        "mono": [p for p in upright if "Mono" in p.name and "Bold" not in p.name],
        "bold": [p for p in upright if "Bold" in p.name],
        "italic": [p for p in every if any(s in p.name for s in slanted_face)],
    }[kind]
    if not chosen:
        raise SystemExit(f"no {kind} TrueType fonts in {', '.join(map(str, FONT_DIRS))}: apt-get install fonts-dejavu-core fonts-liberation")
    return chosen


def printed_page(digit: int, rng: np.random.Generator, faces: list[Path]) -> Image.Image:
    font = ImageFont.truetype(str(faces[rng.integers(len(faces))]), int(rng.integers(90, 150)))
    page = Image.new("L", (PAGE, PAGE), int(rng.integers(205, 250)))
    pen = ImageDraw.Draw(page)
    left, top, right, bottom = pen.textbbox((0, 0), str(digit), font=font)
    x = int(rng.integers(10, max(11, PAGE - 10 - (right - left)))) - left
    y = int(rng.integers(10, max(11, PAGE - 10 - (bottom - top)))) - top
    pen.text((x, y), str(digit), fill=int(rng.integers(10, 80)), font=font)
    return page.rotate(float(rng.uniform(-6, 6)), resample=Image.Resampling.BILINEAR, fillcolor=int(np.median(page)))


def printed(kind: str):
    faces = font_files(kind)
    return lambda digit, rng: printed_page(digit, rng, faces)


def printed_photographed(digit, rng, _faces=[]):
    if not _faces:
        _faces.extend(font_files("sans") + font_files("serif") + font_files("mono"))
    return _camera(printed_page(digit, rng, _faces), rng)


def seven_segment(digit, rng):
    return segment_digit(digit, rng, size=PAGE)


# name -> (what it is, writer(digit or MNIST image, rng) -> PIL image or encoded bytes, from MNIST test digits?)
STYLES = {
    "thin pen": ("MNIST test digits, strokes eroded", thin_pen, True),
    "thick pen": ("MNIST test digits, strokes dilated", thick_pen, True),
    "slanted": ("MNIST test digits sheared 15-30 degrees", slanted, True),
    "narrow": ("MNIST test digits at 0.6-0.75 of their width", narrow, True),
    "wide": ("MNIST test digits at 1.35-1.6 times their width", wide, True),
    "photographed": ("MNIST test digits: uneven light, blur, noise, JPEG 30-70", photographed, True),
    "scanned": ("MNIST test digits: faint ink, grey paper, tilt, specks", scanned, True),
    "printed sans": ("DejaVu/Liberation Sans", printed("sans"), False),
    "printed serif": ("DejaVu/Liberation Serif", printed("serif"), False),
    "printed mono": ("DejaVu/Liberation Mono", printed("mono"), False),
    "printed bold": ("bold faces", printed("bold"), False),
    "printed italic": ("italic and oblique faces", printed("italic"), False),
    "printed, photographed": ("upright faces: uneven light, blur, noise, JPEG", printed_photographed, False),
    "seven-segment": ("meter and clock digits (bench/handwriting.py)", seven_segment, False),
}


def style_images(style: str, mnist_test, per_style: int, seed: int) -> tuple[list, np.ndarray]:
    """The pages of one style and their labels; the same for the same seed."""
    _, writer, from_mnist = STYLES[style]
    rng = np.random.default_rng([seed, list(STYLES).index(style)])
    if from_mnist:
        pick = rng.choice(len(mnist_test), size=per_style, replace=False)
        return [writer(mnist_test.images[i], rng) for i in pick], mnist_test.labels[pick].astype(np.int64)
    labels = np.arange(per_style) % 10
    return [writer(int(d), rng) for d in labels], labels


def prepare(pages: list) -> tuple[np.ndarray, np.ndarray]:
    """Every page through the runtime's preprocessing: inputs [N, 28, 28] and which pages it accepted."""
    from mnist_edge.runtime.errors import PreprocessError
    from mnist_edge.runtime.preprocess import to_mnist

    inputs, accepted = [], []
    for page in pages:
        try:
            inputs.append(to_mnist(page))
            accepted.append(True)
        except PreprocessError:
            inputs.append(np.zeros((28, 28), np.float32))
            accepted.append(False)
    return np.stack(inputs), np.array(accepted)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="a trained model folder (model.keras); repeat to compare")
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts/generalisation"))
    parser.add_argument("--per-style", type=int, default=PER_STYLE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    for folder in args.model:
        if not (folder / "model.keras").is_file():
            parser.error(f"{folder}: no model.keras here; expected a folder written by `mnist-edge train`")

    import keras

    from mnist_edge.data import load_dataset, scale_images
    from mnist_edge.trainer.models import with_test_time_shifts
    from mnist_edge.trainer.record import read_record

    dataset = load_dataset(args.data_dir)
    # Each model as it is exported and read: with its recipe's test-time shifts, if any.
    models = {
        str(folder): with_test_time_shifts(keras.models.load_model(folder / "model.keras"), read_record(folder).test_time_shifts)
        for folder in args.model
    }
    rows = {"MNIST test set (as is)": {"images": len(dataset.test), "what": "the 10,000 MNIST test images, no preprocessing"}}
    for name, model in models.items():
        probabilities = model.predict(scale_images(dataset.test.images), batch_size=1024, verbose=0)
        rows["MNIST test set (as is)"][name] = float((probabilities.argmax(1) == dataset.test.labels).mean())
    for style, (what, _, _) in STYLES.items():
        start = time.monotonic()
        pages, labels = style_images(style, dataset.test, args.per_style, args.seed)
        inputs, accepted = prepare(pages)
        rows[style] = {"images": len(labels), "what": what, "rejected": int((~accepted).sum())}
        for name, model in models.items():
            predicted = model.predict(inputs, batch_size=512, verbose=0).argmax(1)
            rows[style][name] = float(((predicted == labels) & accepted).mean())
        print(f"{style}: " + ", ".join(f"{rows[style][n]:.2%}" for n in models) + f" ({time.monotonic() - start:.0f}s)", flush=True)
    write(args.out, rows, list(models), args)
    return 0


def write(out: Path, rows: dict, names: list[str], args) -> None:
    styles = [r for r in rows if r != "MNIST test set (as is)"]
    mean = {n: float(np.mean([rows[s][n] for s in styles])) for n in names}
    lines = [
        "| style | images | what | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
        *(
            f"| {style} | {r['images']:,} | {r['what']}"
            + (f" ({r['rejected']} rejected by the preprocessing)" if r.get("rejected") else "")
            + " | " + " | ".join(f"{r[n]:.2%}" for n in names) + " |"
            for style, r in rows.items()
        ),
        f"| **mean of the {len(styles)} styles** | | | " + " | ".join(f"**{mean[n]:.2%}**" for n in names) + " |",
    ]
    text = (
        f"`python bench/generalisation.py {' '.join(sys.argv[1:])}` (seed {args.seed}, {args.per_style} images per style)\n\n"
        + "\n".join(lines) + "\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "generalisation.md").write_text(text)
    (out / "generalisation.json").write_text(json.dumps({"rows": rows, "mean_of_styles": mean}, indent=2) + "\n")
    print("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
