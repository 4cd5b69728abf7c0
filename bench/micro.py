"""The microcontroller artifact of each export: what it needs on a board and how fast it runs.

    python bench/micro.py --model artifacts --out bench-artifacts/micro.md     (make bench-micro)

For every export with the microcontroller kind: the model's flash bytes and tensor arena (from the
manifest, both measured at export), TFLite Micro's latency per image on this machine against
LiteRT's on the same flatbuffer (their ratio is the figure that carries over: it is the cost of
TFLM's portable reference kernels, not a device timing; CPU time, so a busy machine does not
inflate it), the multiply-adds per image, and from
those an estimate for a Cortex-M4 at 64 and 180 MHz with and without CMSIS-NN kernels.

Cycles per multiply-add on a Cortex-M4, derived in docs/microcontrollers.md from the CMSIS-NN
paper (Lai, Suda, Chandra 2018, arXiv:1801.06601): CMSIS_NN_CYCLES_PER_MAC with CMSIS-NN, and
4.6 times that with the portable kernels (the paper's measured speed-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

CMSIS_NN_CYCLES_PER_MAC = 3.5
CMSIS_NN_SPEEDUP = 4.6
CLOCKS_MHZ = (64, 180)
IMAGES = 300  # timed one at a time, after a warm-up


def _per_image_ms(run, images: np.ndarray) -> float:
    """Median CPU milliseconds of one single-image run. CPU time, not wall time: on a shared
    machine other processes stretch the wall clock, and both engines run on one thread here."""
    run(images[:1])
    times = []
    for i in range(len(images)):
        start = time.process_time()
        run(images[i : i + 1])
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def measure(export_dir: Path, images: np.ndarray) -> dict | None:
    """The figures of one export's microcontroller artifact, or None if it has none."""
    from mnist_edge.manifest import read_manifest
    from mnist_edge.runtime import load
    from mnist_edge.runtime.backends import LiteRTSession
    from mnist_edge.runtime.micro import flatbuffer_from_source

    manifest = read_manifest(export_dir)
    # The microcontroller artifact is the one whose export measured its flash and arena.
    artifact = next((a for a in manifest.artifacts if a.details and "flash_bytes" in a.details), None)
    if artifact is None:
        return None
    tflm = load(export_dir, file=artifact.file).session
    litert = LiteRTSession(flatbuffer_from_source(manifest.path_of(artifact).read_bytes()), threads=1)
    tflm_ms, litert_ms = _per_image_ms(tflm.run, images), _per_image_ms(litert.run, images)
    details = artifact.details
    macs = details["macs_per_image"]
    estimates = {
        (mhz, cmsis): macs * CMSIS_NN_CYCLES_PER_MAC * (1 if cmsis else CMSIS_NN_SPEEDUP) / (mhz * 1000)
        for mhz in CLOCKS_MHZ
        for cmsis in (True, False)
    }
    return {
        "model": manifest.name, "accuracy": artifact.test_accuracy, "flash": details["flash_bytes"],
        "arena": details["arena_bytes"], "arena_measured": details["arena_measured_bytes"], "macs": macs,
        "ops": len(details["operators"]), "tflm_ms": tflm_ms, "litert_ms": litert_ms, "estimates": estimates,
        "tflite_micro": details["tflite_micro"],
    }


def render(rows: list[dict]) -> str:
    lines = [
        "| model | test accuracy (TFLM) | flash (model) | arena (measured + 25%) | operators | MACs per image "
        "| TFLM CPU ms/image here | LiteRT CPU ms/image here | TFLM / LiteRT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['accuracy']:.2%} | {r['flash'] / 1024:,.1f} KiB | {r['arena'] / 1024:,.1f} KiB "
            f"({r['arena_measured']:,} B) | {r['ops']} | {r['macs'] / 1e6:.2f} M | {r['tflm_ms']:.3f} "
            f"| {r['litert_ms']:.3f} | {r['tflm_ms'] / r['litert_ms']:.1f}x |"
        )
    lines += [
        "",
        f"Estimated Cortex-M4 latency per image (MACs x {CMSIS_NN_CYCLES_PER_MAC} cycles with CMSIS-NN, x "
        f"{CMSIS_NN_CYCLES_PER_MAC * CMSIS_NN_SPEEDUP:.1f} with the reference kernels; docs/microcontrollers.md):",
        "",
        "| model | " + " | ".join(f"{mhz} MHz {'CMSIS-NN' if c else 'reference'}" for mhz in CLOCKS_MHZ for c in (True, False)) + " |",
        "|---|" + "---|" * (2 * len(CLOCKS_MHZ)),
    ]
    for r in rows:
        cells = " | ".join(f"{r['estimates'][(mhz, c)]:,.1f} ms" for mhz in CLOCKS_MHZ for c in (True, False))
        lines.append(f"| {r['model']} | {cells} |")
    if rows:
        lines += [
            "",
            f"TFLite Micro {rows[0]['tflite_micro']} (PyPI tflite-micro) and LiteRT, one thread each, median CPU "
            f"time of {IMAGES} single-image runs.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts", help="artifacts/, a model folder or an export")
    parser.add_argument("--out", type=Path, help="write the tables here as well (markdown)")
    parser.add_argument("--data-dir", type=Path, help="MNIST folder (default: $MNIST_DATA_DIR)")
    args = parser.parse_args(argv)
    from mnist_edge.data import load_dataset, scale_images
    from mnist_edge.manifest import find_exports

    images = scale_images(load_dataset(args.data_dir, download=False).test.images[:IMAGES])
    rows = [row for export in find_exports(args.model) if (row := measure(export, images))]
    if not rows:
        print(f"error: no export with a microcontroller artifact under {args.model}", file=sys.stderr)
        return 1
    text = render(rows)
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
