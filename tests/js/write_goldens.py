"""Write the golden files the `node --test` suites tests/js/{preprocess,contract}.test.mjs compare
the page's JavaScript with: RGBA drawings and what the Python runtime makes of them, a manifest.

    python tests/js/write_goldens.py OUT [EXPORT_DIR]
    MNIST_EDGE_GOLDEN_DIR=OUT node --test tests/js/{preprocess,contract}.test.mjs

tests/test_web_node.py does both. The drawings are real MNIST test digits, scaled onto canvases
of several sizes in the three styles a page or a user gives (ink on a transparent canvas, dark
ink on white paper, light ink on black), plus drawings that hold no digit.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_edge.runtime.errors import NoDigitError
from mnist_edge.runtime.preprocess import to_mnist

SIDES = (56, 84, 140, 280)  # 280: the page's canvas
STYLES = ("transparent", "paper", "dark")


def drawing(digit: np.ndarray, side: int, style: str, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit as RGBA pixels of a side x side canvas, at a random size and place."""
    scale = rng.uniform(0.45, 0.9)
    size = max(8, int(side * scale))
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    canvas = np.zeros((side, side), np.float32)
    top, left = rng.integers(0, side - size + 1, size=2)
    canvas[top : top + size, left : left + size] = ink
    rgba = np.zeros((side, side, 4), np.uint8)
    if style == "transparent":  # a pen on a cleared canvas: colour everywhere, the ink in alpha
        rgba[..., :3] = (20, 20, 20)
        rgba[..., 3] = np.round(canvas * 255)
    else:
        grey = np.round((1 - canvas if style == "paper" else canvas) * 255).astype(np.uint8)
        rgba[..., :3] = grey[..., None]
        rgba[..., 3] = 255
    return rgba


def no_digit_drawings(side: int = 84) -> dict[str, np.ndarray]:
    blank = np.zeros((side, side, 4), np.uint8)
    line = blank.copy()
    line[side // 2 : side // 2 + 3, 4 : side - 4] = (255, 255, 255, 255)  # far wider than tall
    return {"blank": blank, "line": line}


def write(out: Path, digits: np.ndarray, export_dir: Path | None = None, seed: int = 0) -> list[dict]:
    """Write every golden case into `out` (emptied first) and return the index it writes."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cases = {}
    for i, digit in enumerate(digits):
        side, style = SIDES[i % len(SIDES)], STYLES[(i // len(SIDES)) % len(STYLES)]
        cases[f"digit{i:02d}-{side}-{style}"] = drawing(digit, side, style, rng)
    cases.update(no_digit_drawings())
    index = [_write_case(out, name, rgba) for name, rgba in cases.items()]
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    if export_dir is not None:
        shutil.copyfile(Path(export_dir) / "manifest.json", out / "manifest.json")
    return index


def _write_case(out: Path, name: str, rgba: np.ndarray) -> dict:
    height, width = rgba.shape[:2]
    (out / f"{name}.rgba").write_bytes(rgba.tobytes())
    try:
        expected = to_mnist(rgba)
    except NoDigitError as exc:
        return {"name": name, "width": width, "height": height, "no_digit": str(exc)}
    (out / f"{name}.f32").write_bytes(expected.astype("<f4").tobytes())
    return {"name": name, "width": width, "height": height, "no_digit": None}


def main(argv: list[str]) -> None:
    from mnist_edge.data import load_dataset

    out = Path(argv[0])
    test = load_dataset(download=False).test
    index = write(out, test.images[:36], Path(argv[1]) if len(argv) > 1 else None)
    print(f"wrote {len(index)} golden drawings to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
