"""Web app benchmark: what a visitor downloads and waits for, in headless Chromium.

    python bench/web.py [--artifacts artifacts] [--model cnn] [--precision int8] [--drawings 100]
                        [--visits 3] [--out bench-artifacts]

Builds the site (without its proofs: `mnist-edge web` runs those), serves it gzipped on
127.0.0.1 and prints four tables, also written to OUT/web.md and OUT/web.json:

- the files kept on the first visit, raw and gzipped (what a static server sends);
- visits in fresh browser profiles: bytes that went over the wire on the first visit, requests
  and bytes on the second visit (the service worker answers), and the time from navigation to
  the first prediction on each;
- per-drawing latency (preprocessing + inference) in the page against the Python runtime on the
  same drawings (the same RGBA pixels, the same model file), p50 and p95.

The machine is shared: timings are noisy; both sides of each comparison run in the same pass.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mnist_edge import runtime  # noqa: E402
from mnist_edge.data import load_dataset  # noqa: E402
from mnist_edge.demo import web_build, web_proofs  # noqa: E402
from mnist_edge.demo.web_server import GZIP_LEVEL, SiteServer  # noqa: E402

FIRST_PREDICTION = """async (strokes) => {
  await window.mnistEdge.ready;
  window.mnistEdge.sketch.setStrokes(strokes);
  const result = await window.mnistEdge.predict();
  return { ms: performance.now(), label: result && result.label };
}"""

LATENCY = """async (drawings) => {
  const { sketch, prepare, state } = window.mnistEdge;
  const out = [];
  for (const strokes of drawings) {
    sketch.setStrokes(strokes);
    const t0 = performance.now();
    const pixels = sketch.pixels();
    let input;
    try { input = prepare(pixels, state.model.manifest.input); } catch (e) { out.push(null); continue; }
    const t1 = performance.now();
    await state.model.run(input, 1);
    const t2 = performance.now();
    out.push({ preprocess: t1 - t0, inference: t2 - t1, png: sketch.canvas.toDataURL('image/png') });
  }
  return out;
}"""


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, float), q))


def file_table(site: Path, models) -> tuple[list[str], int, int]:
    rows, raw_total, gz_total = [], 0, 0
    for name in web_build.precache_files(site, models)[1:]:
        data = (site / name).read_bytes()
        packed = len(gzip.compress(data, compresslevel=GZIP_LEVEL)) if not name.endswith(".png") else len(data)
        raw_total += len(data)
        gz_total += packed
        rows.append((name, len(data), packed))
    groups: dict[str, list[int]] = {}
    for name, raw, packed in rows:
        group = "runtime (onnxruntime-web)" if name.startswith("vendor/") else "model" if name.startswith("models/") and not name.endswith(".json") else "app (html, css, js, json, icons)"
        total = groups.setdefault(group, [0, 0])
        total[0] += raw
        total[1] += packed
    lines = ["| kept on the first visit | bytes | gzip -6 |", "|---|---|---|"]
    lines += [f"| {group} | {raw / 1e6:.2f} MB | {packed / 1e6:.2f} MB |" for group, (raw, packed) in groups.items()]
    lines.append(f"| **total** | **{raw_total / 1e6:.2f} MB** | **{gz_total / 1e6:.2f} MB** |")
    return lines, raw_total, gz_total


def visits(browser, server: SiteServer, strokes, count: int) -> tuple[list[str], dict]:
    """`count` first visits in fresh profiles, each followed by a second visit (a new tab)."""
    results = []
    for _ in range(count):
        context = browser.new_context()
        try:
            server.clear_log()
            page = context.new_page()
            page.goto(server.url)
            first = page.evaluate(FIRST_PREDICTION, strokes)
            web_proofs.wait_for_service_worker(page)
            page.evaluate("navigator.serviceWorker.ready")
            time.sleep(0.5)  # let the worker finish its last cache writes
            first_log = server.log()
            page.close()
            server.clear_log()
            page = context.new_page()
            page.goto(server.url)
            second = page.evaluate(FIRST_PREDICTION, strokes)
            second_log = server.log()
            results.append({
                "first_visit_bytes": sum(t.bytes for t in first_log),
                "first_visit_requests": len(first_log),
                "first_visit_ms": first["ms"],
                "second_visit_requests": len(second_log),
                "second_visit_bytes": sum(t.bytes for t in second_log),
                "second_visit_paths": sorted({t.path for t in second_log}),
                "second_visit_ms": second["ms"],
                "label": first["label"],
            })
        finally:
            context.close()
    median = {k: statistics.median(r[k] for r in results) for k in results[0] if isinstance(results[0][k], (int, float))}
    lines = [
        "| visits | first visit: over the wire | requests | navigation → first prediction | second visit: requests | bytes | navigation → first prediction |",
        "|---|---|---|---|---|---|---|",
        f"| {count} (median) | {median['first_visit_bytes'] / 1e6:.2f} MB | {median['first_visit_requests']:.0f} | "
        f"{median['first_visit_ms']:.0f} ms | {median['second_visit_requests']:.0f} | {median['second_visit_bytes']:.0f} | "
        f"{median['second_visit_ms']:.0f} ms |",
    ]
    return lines, {"runs": results, "median": median}


def latency(page, predictor, drawings) -> tuple[list[str], dict]:
    results = [r for r in page.evaluate(LATENCY, drawings) if r]
    page_total = [r["preprocess"] + r["inference"] for r in results]
    python_pre, python_total = [], []
    for r in results:
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(r["png"].split(",", 1)[1]))).convert("RGBA"))
        t0 = time.perf_counter()
        x = predictor.prepare(pixels)
        t1 = time.perf_counter()
        predictor.predict_array(x[np.newaxis])
        t2 = time.perf_counter()
        python_pre.append((t1 - t0) * 1000)
        python_total.append((t2 - t0) * 1000)

    def row(name, pre, total):
        return f"| {name} | {percentile(pre, 50):.2f} | {percentile(total, 50):.2f} | {percentile(total, 95):.2f} |"

    lines = [
        f"| {len(results)} drawings, {predictor.artifact.file} | preprocessing p50 ms | preprocessing + inference p50 ms | p95 ms |",
        "|---|---|---|---|",
        row("page (Chromium, onnxruntime-web wasm, 1 thread)", [r["preprocess"] for r in results], page_total),
        row(f"Python runtime ({predictor.artifact.engine}, 1 thread)", python_pre, python_total),
    ]
    return lines, {"page_ms": page_total, "python_ms": python_total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--precision", default=web_build.DEFAULT_PRECISIONS[0])
    parser.add_argument("--drawings", type=int, default=100)
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts"))
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    site = args.out / "web-site"
    build = web_build.build_site(args.artifacts, site, names=(args.model,), precisions=(args.precision,), proofs="off", log=lambda line: None)
    model = build.models[0]
    predictor = runtime.load(model.manifest.root, precision=args.precision)
    dataset = load_dataset(args.data_dir, download=False)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(dataset.test), size=args.drawings, replace=False)
    drawings = []
    for i in picks:
        strokes = web_proofs.digit_strokes(dataset.test.images[i], rng)
        for stroke in strokes:
            stroke["width"] = 20  # the page's pen
        drawings.append(strokes)

    sections = {}
    sections["files"], raw_total, gz_total = file_table(site, build.models)
    with SiteServer({"/": site}) as server, web_proofs.chromium() as browser:
        sections["visits"], visit_data = visits(browser, server, drawings[0], args.visits)
        page = browser.new_page()
        web_proofs.open_app(page, server.url)
        sections["latency"], latency_data = latency(page, predictor, drawings)
        chromium = browser.version
    header = f"Web app: {model.id} ({model.artifact.file}), headless Chromium {chromium}, 127.0.0.1, gzip level {GZIP_LEVEL}; shared 2-core machine, timings noisy"
    text = "\n\n".join([header, *("\n".join(lines) for lines in sections.values())]) + "\n"
    print(text)
    (args.out / "web.md").write_text(text)
    (args.out / "web.json").write_text(json.dumps({
        "model": model.id, "chromium": chromium, "precache_bytes": raw_total, "precache_gzip_bytes": gz_total,
        "visits": visit_data, "latency": latency_data,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
