"""Strokes traced from MNIST test digits (thinned to a skeleton, walked as pen movements, scaled,
turned and placed at random on the page's canvas): the drawings the page proofs draw."""

from __future__ import annotations

import io

import numpy as np

from .web_chromium import BrowserProofFailed


CANVAS = 280  # the page's canvas (demo/web/js/draw.js CANVAS_SIZE)
PEN_WIDTHS = (6, 10, 14, 20, 28, 36)  # in canvas pixels: thin strokes take the thickening path


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the one-pixel skeleton of a binary image."""
    image = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = image
            n, ne, e, se = p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:]
            s, sw, w, nw = p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]
            ring = [n, ne, e, se, s, sw, w, nw, n]
            neighbours = sum(v.astype(np.int32) for v in ring[:8])
            transitions = sum(((ring[i] == 0) & (ring[i + 1] == 1)).astype(np.int32) for i in range(8))
            if step == 0:
                side = (n * e * s == 0) & (e * s * w == 0)
            else:
                side = (n * e * w == 0) & (n * s * w == 0)
            remove = (p[1:-1, 1:-1] == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & side
            if remove.any():
                image[1:-1, 1:-1][remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def skeleton_paths(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
    """The skeleton as polylines of (x, y) pixel positions: walks along 8-connected pixels, from
    line ends first, so each stroke is one pen movement."""
    pixels = {(int(x), int(y)) for y, x in zip(*np.nonzero(skeleton))}
    steps = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)]  # straight moves first

    def neighbours(p):
        return [(p[0] + dx, p[1] + dy) for dx, dy in steps if (p[0] + dx, p[1] + dy) in pixels]

    used: set[frozenset] = set()
    paths = []
    starts = sorted(pixels, key=lambda p: (len(neighbours(p)) != 1, p[1], p[0]))
    for start in starts:
        while True:
            path, here = [start], start
            while True:
                nxt = next((q for q in neighbours(here) if frozenset((here, q)) not in used), None)
                if nxt is None:
                    break
                used.add(frozenset((here, nxt)))
                path.append(nxt)
                here = nxt
            if len(path) == 1:
                break
            paths.append(path)
    covered = {p for path in paths for p in path}
    paths += [[p] for p in sorted(pixels - covered)]  # isolated pixels: dots
    return paths


def digit_strokes(digit: np.ndarray, rng: np.random.Generator, canvas: int = CANVAS) -> list[dict]:
    """Strokes tracing an MNIST digit's skeleton, scaled, turned and placed at random on the canvas,
    with a random pen width: [{width, points: [[x, y], ...]}] in canvas pixels."""
    paths = skeleton_paths(thin(digit > 127))
    size = canvas * rng.uniform(0.45, 1.1) / 20  # canvas pixels per MNIST pixel (a digit spans ~20)
    angle = np.radians(rng.uniform(-12, 12))
    width = float(rng.choice(PEN_WIDTHS))
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.array([p for path in paths for p in path], dtype=float) + 0.5
    middle = points.mean(axis=0)

    def place(p):
        x, y = (np.asarray(p, float) + 0.5 - middle) * size
        return [x * cos - y * sin, x * sin + y * cos]

    placed = [[place(p) for p in path] for path in paths]
    flat = np.array([q for path in placed for q in path])
    margin = width / 2 + 2
    low, high = flat.min(axis=0), flat.max(axis=0)
    room = canvas - 2 * margin - (high - low)
    shift = margin - low + np.where(room > 0, rng.uniform(0, 1, 2) * np.maximum(room, 0), room / 2)
    return [{"width": width, "points": [[round(x + shift[0], 2), round(y + shift[1], 2)] for x, y in path]} for path in placed]


def render_strokes(strokes: list[dict], canvas: int = CANVAS) -> bytes:
    """A PNG of the strokes as the page draws them (light, round pen, transparent background);
    close to the browser's canvas, used only to choose digits Python reads right."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [tuple(p) for p in stroke["points"]]
        r = stroke["width"] / 2
        if len(points) > 1:
            pen.line(points, fill=(255, 255, 255, 255), width=round(stroke["width"]), joint="curve")
        for x, y in points:
            pen.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def readable_digits(predictor, images: np.ndarray, labels: np.ndarray, count: int, *, seed: int = 7, pen: float = 20) -> list[tuple[str, list[dict]]]:
    """`count` test digits, as strokes with the page's pen, that Python reads as their label with
    probability >= 0.9 from a rendering: the ones a person's drawing of them should be read as."""
    rng = np.random.default_rng(seed)
    chosen, seen = [], set()
    for i in rng.permutation(len(images)):
        label = predictor.class_names[int(labels[i])]
        if label in seen:
            continue
        strokes = digit_strokes(images[i], rng)
        for stroke in strokes:
            stroke["width"] = pen
        prediction = predictor.predict(render_strokes(strokes))
        if prediction.label == label and prediction.confidence >= 0.9:
            chosen.append((label, strokes))
            seen.add(label)
        if len(chosen) == count:
            return chosen
    raise BrowserProofFailed(f"found only {len(chosen)} test digits the model reads right when redrawn")
