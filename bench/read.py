"""Reading whole numbers: mnist-edge's `read` against Tesseract 5 on the same seeded fields.

1,000 fields (mnist_edge/fields.py) of 2 to 8 MNIST *test* digits, with gaps from wide to
touching and overlapping, plain, on a ruled line, in a box or a comb, with varied paper, ink,
blur and JPEG. Measured: whole-number accuracy by length and by condition; per-digit accuracy
(the model on the same digits alone, as MNIST gives them) and the bound it sets, the mean over
fields of per-digit accuracy to the power of the length; ms per field; the time to read a
6-digit field from a 1200x300 photo (one thread), in the Python runtime and in the web app (the
page `mnist-edge web` builds, in headless Chromium on 127.0.0.1), fp32 and int8; and Tesseract
(digits only, one text line).

    python bench/read.py --model artifacts/cnn/export --out bench-artifacts
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_edge import formats, runtime
from mnist_edge.data import load_dataset
from mnist_edge.fields import make_field, make_fields
from mnist_edge.runtime.errors import PreprocessError

TESSERACT_ARGS = ("--psm", "7", "-c", "tessedit_char_whitelist=0123456789")
PHOTO_SIZE = (1200, 300)
PHOTO_RUNS = 30
# The photo is read in the web app with the default precision and the site's (fp32, int8).
WEB_PRECISIONS = tuple(dict.fromkeys((formats.DEFAULT_PRECISION, *formats.SITE_PRECISIONS)))


def read_all(predictor, fields, reader: str = "auto") -> tuple[list[str], list[float], list[bool]]:
    """Per field: the text read (or the error), the seconds it took, whether it was rejected."""
    texts, seconds, rejected = [], [], []
    for field in fields:
        start = time.perf_counter()
        try:
            reading = predictor.read(field.image, reader=reader)
            texts.append(reading.text)
            rejected.append(reading.rejected)
        except PreprocessError as exc:
            texts.append(f"error: {exc}")
            rejected.append(True)
        seconds.append(time.perf_counter() - start)
    return texts, seconds, rejected


def rejection_line(fields, texts, rejected) -> str:
    """How well `rejected` (confidence under the spec's min_confidence) flags the wrong readings."""
    from mnist_edge.runtime.number import load_spec

    wrong = [r for f, t, r in zip(fields, texts, rejected) if t != f.text]
    right = [r for f, t, r in zip(fields, texts, rejected) if t == f.text]
    return (
        f"rejected at the default min_confidence {load_spec()['min_confidence']}: {np.mean(wrong) if wrong else 0:.0%} of the "
        f"{len(wrong)} wrong readings and {np.mean(right) if right else 0:.1%} of the {len(right)} right ones"
    )


def tesseract_all(fields) -> tuple[list[str] | None, list[float]]:
    if shutil.which("tesseract") is None:
        return None, []
    texts, seconds = [], []
    with tempfile.TemporaryDirectory() as folder:
        for n, field in enumerate(fields):
            path = Path(folder) / f"{n}.{'jpg' if field.jpeg else 'png'}"
            path.write_bytes(field.image)
            start = time.perf_counter()
            done = subprocess.run(["tesseract", str(path), "stdout", *TESSERACT_ARGS], capture_output=True, text=True)
            seconds.append(time.perf_counter() - start)
            texts.append("".join(c for c in done.stdout if c.isdigit()))
    return texts, seconds


def earlier_tesseract(path: Path, fields) -> list[str]:
    """Tesseract's answers from an earlier run's read.json, checked to be of the same fields."""
    rows = json.loads(path.read_text())
    if len(rows) != len(fields) or any(row["text"] != field.text for row, field in zip(rows, fields)):
        raise SystemExit(f"{path}: not the same fields (seed and count must match)")
    return [row["tesseract"] for row in rows]


def photo_bytes(images, labels, seed: int) -> tuple[bytes, str]:
    """A 6-digit field printed on a 1200x300 photo (JPEG), digits about 200 px tall."""
    field = make_field(np.random.default_rng(seed), images, labels, length=6, spacing="close", form="plain")
    picture = Image.open(io.BytesIO(field.image)).convert("L")
    scale = min(PHOTO_SIZE[0] * 0.9 / picture.width, PHOTO_SIZE[1] * 0.9 / picture.height)
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BICUBIC)
    paper = int(np.median(np.asarray(picture)))
    canvas = Image.new("L", PHOTO_SIZE, paper)
    canvas.paste(picture, ((PHOTO_SIZE[0] - picture.width) // 2, (PHOTO_SIZE[1] - picture.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=88)
    return buffer.getvalue(), field.text


def photo_ms(predictor, data) -> tuple[float, float]:
    """Milliseconds per reading of the photo: the median wall time, and the mean CPU time (the
    figure that holds on a busy machine)."""
    predictor.read(data)  # warm up
    times = []
    cpu = time.process_time()
    for _ in range(PHOTO_RUNS):
        start = time.perf_counter()
        predictor.read(data)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), 1000 * (time.process_time() - cpu) / PHOTO_RUNS


def decoded_ms(predictor, grey: np.ndarray) -> tuple[float, float]:
    """photo_ms on the photo's decoded grey pixels: the figures the web app's are set against (the
    page gets the pixels decoded too)."""
    return photo_ms(predictor, grey)


def web_photo(model: Path, grey: np.ndarray, out: Path) -> tuple[str, list] | str:
    """The web app's reading of the photo's grey pixels in headless Chromium, per precision of
    WEB_PRECISIONS: (Chromium's version, [(precision, web_number.PageTiming)]), or one line saying
    why it was not measured. The site is the one `mnist-edge web` builds (without its proofs)."""
    from mnist_edge.demo import web_build
    from mnist_edge.demo.web_chromium import BrowserUnavailable, chromium, open_app
    from mnist_edge.demo.web_number import time_page_reading
    from mnist_edge.demo.web_server import SiteServer

    try:
        from playwright.sync_api import Error as PlaywrightError
    except ImportError:
        PlaywrightError = BrowserUnavailable  # chromium() says Playwright is missing
    try:
        build = web_build.build_site(model, out / "read-web-site", precisions=WEB_PRECISIONS, proofs="off", log=lambda line: None)
        with SiteServer({"/": build.out}) as server, chromium() as browser:
            page = browser.new_page()
            open_app(page, server.url)
            page.click("#mode-number")
            timings = [(m.artifact.precision, time_page_reading(page, grey, m.id, PHOTO_RUNS)) for m in build.models]
            return browser.version, timings
    except (BrowserUnavailable, web_build.WebBuildError, PlaywrightError) as exc:
        return f"not measured: {str(exc).strip().splitlines()[0]}"


def photo_table(python_ms: dict[str, tuple[float, float]], web, text: str) -> list[str]:
    """The photo's decoded pixels read by the Python runtime and the web app, side by side."""
    from mnist_edge.demo.web_number import WARM_UP_READINGS

    rows = [f"| 6-digit field, 1200x300 JPEG photo, decoded once: ms per reading, median of {PHOTO_RUNS} "
            f"(mean CPU ms) | " + " | ".join(python_ms) + " |", "|---|" + "---:|" * len(python_ms),
            "| Python runtime (`predictor.read` on the grey array; onnxruntime, one thread; after 1 warm-up reading) | "
            + " | ".join(f"{ms:.1f} ({cpu:.1f})" for ms, cpu in python_ms.values()) + " |"]
    load = f"- load average (1 min) when the table was written: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    if isinstance(web, str):
        return [*rows, "", f"- web app: {web}", load]
    version, timings = web
    found = {precision: timing for precision, timing in timings}
    rows.append(f"| web app (Chromium {version}: js/number.js `readPixels` on the RGBA pixels; onnxruntime-web wasm, "
                f"one thread; after {WARM_UP_READINGS} warm-up readings) | "
                + " | ".join(f"{found[p].median_ms:.1f} ({found[p].cpu_ms:.1f})" if p in found else "-" for p in python_ms) + " |")
    readings = ", ".join(f"{p} {t.text or t.error!r}" for p, t in timings)
    steps = "; ".join(f"{p}: segmentation {t.step_ms('segment'):.1f} ms, model {t.step_ms('inference'):.1f} ms, "
                      f"choice {t.step_ms('choose'):.1f} ms" for p, t in timings)
    return [*rows, "", f"- the web app read {readings}; Python read {text!r}",
            f"- the web app's steps (medians, js/number.js `reading.timing`): {steps}", load]


def digit_accuracy(predictor, images, labels) -> float:
    """The model's accuracy on MNIST test digits alone, as MNIST gives them (the bound's base)."""
    probabilities = predictor.predict_array(images.astype(np.float32) / 255)
    return float((probabilities.argmax(axis=1) == labels).mean())


def grouped(fields, texts, key) -> dict[str, tuple[int, int]]:
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for field, text in zip(fields, texts):
        for name in key(field):
            groups[name][0] += text == field.text
            groups[name][1] += 1
    return {name: (right, total) for name, (right, total) in groups.items()}


def table(fields, columns: dict[str, list[str]], theirs, per_digit: float) -> list[str]:
    """Markdown rows: group, fields, bound, each of mnist-edge's `columns` (name: texts), Tesseract."""
    rows = [
        "| fields | n | bound (per-digit^length) | " + " | ".join(columns) + " | Tesseract 5 |",
        "|---|---:|---:|" + "---:|" * len(columns) + "---:|",
    ]
    keys = [
        ("all", lambda f: ["all"]),
        ("separated", lambda f: [f.group]),
        ("length", lambda f: [f"{len(f.text)} digits"]),
        ("spacing", lambda f: [f.spacing]),
        ("form", lambda f: [f.form]),
        ("image", lambda f: f.conditions[2:]),
    ]
    for _, key in keys:
        mine = [grouped(fields, texts, key) for texts in columns.values()]
        other = grouped(fields, theirs, key) if theirs else {}
        for name in sorted(mine[0], key=lambda n: (len(n), n)) if key is not keys[0][1] else mine[0]:
            total = mine[0][name][1]
            bound = np.mean([per_digit ** len(f.text) for f in fields if name in key(f)])
            tess = f"{other[name][0] / total:.1%}" if other else "-"
            ours = " | ".join(f"{m[name][0] / total:.1%}" for m in mine)
            rows.append(f"| {name} | {total} | {bound:.1%} | {ours} | {tess} |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="export folder of a digit model")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts"))
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--no-web", action="store_true", help="leave out the web app's reading of the photo")
    parser.add_argument(
        "--tesseract-from", type=Path, metavar="READ_JSON",
        help="reuse Tesseract's answers from an earlier read.json of the same fields (same seed and count)",
    )
    parser.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    args = parser.parse_args(argv)

    test = load_dataset(args.data_dir).test
    predictor = runtime.load(args.model, threads=1)
    fields = make_fields(test.images, test.labels, args.count, seed=args.seed)
    per_digit = digit_accuracy(predictor, test.images, test.labels)
    ours, seconds, rejected = read_all(predictor, fields)
    rejections = {"read": rejection_line(fields, ours, rejected)}
    columns = {"mnist-edge read": ours}
    if predictor.has_reader:  # the export's number reader combined with digit-by-digit reading; and the latter alone
        digits_only, digit_seconds, digit_rejected = read_all(predictor, fields, reader="digits")
        rejections["digit by digit"] = rejection_line(fields, digits_only, digit_rejected)
        columns = {"digit by digit (`--reader digits`)": digits_only, "**mnist-edge read** (with its reader)": ours}
    if args.tesseract_from:
        theirs, tess_seconds = earlier_tesseract(args.tesseract_from, fields), []
    else:
        theirs, tess_seconds = (None, []) if args.no_tesseract else tesseract_all(fields)
    photo, photo_text = photo_bytes(test.images, test.labels, args.seed)
    photo_time, photo_cpu = photo_ms(predictor, photo)
    grey = np.asarray(Image.open(io.BytesIO(photo)).convert("L"))
    python_ms = {formats.DEFAULT_PRECISION: decoded_ms(predictor, grey)}
    for precision in WEB_PRECISIONS[1:]:
        python_ms[precision] = decoded_ms(runtime.load(args.model, precision=precision, threads=1), grey)
    args.out.mkdir(parents=True, exist_ok=True)
    web = "left out (--no-web)" if args.no_web else web_photo(args.model, grey, args.out)

    lines = [
        f"# Reading whole numbers: {args.count} seeded fields (seed {args.seed}), model {args.model}",
        "",
        *table(fields, columns, theirs, per_digit),
        "",
        f"- per-digit accuracy (the model on the same MNIST test digits alone): {per_digit:.2%}",
        f"- mnist-edge read: {1000 * statistics.mean(seconds):.1f} ms per field (mean, one thread), "
        f"median {1000 * statistics.median(seconds):.1f} ms"
        + (f"; digit by digit alone {1000 * statistics.mean(digit_seconds):.1f} ms (mean)" if predictor.has_reader else ""),
        *(f"- {name}: {line}" for name, line in rejections.items()),
        f"- 6-digit field on a 1200x300 JPEG photo: {photo_time:.1f} ms (median of {PHOTO_RUNS}, one thread, "
        f"from the JPEG bytes: decoding included), {photo_cpu:.1f} ms of CPU; "
        f"read {predictor.read(photo).text!r}, truth {photo_text!r}",
    ]
    if args.tesseract_from:
        lines.append(f"- Tesseract 5: answers reused from {args.tesseract_from} (the same {args.count} fields)")
    elif theirs is not None:
        lines.append(f"- Tesseract 5 (`tesseract IMAGE stdout {' '.join(TESSERACT_ARGS)}`): "
                     f"{1000 * statistics.mean(tess_seconds):.0f} ms per field, including process start")
    lines += ["", *photo_table(python_ms, web, predictor.read(grey).text)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "read.md").write_text("\n".join(lines) + "\n")
    digits_column = columns.get("digit by digit (`--reader digits`)", [None] * len(fields))
    rows = [{"text": f.text, "conditions": f.conditions, "read": r, "digits": d, "tesseract": t}
            for f, r, d, t in zip(fields, ours, digits_column, theirs or [None] * len(fields))]
    (args.out / "read.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
