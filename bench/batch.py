"""`mnist-edge batch` on Ray Data against `mnist-edge predict --jobs N` on one machine: images/s
and CPU seconds of every process in one run, with Ray's fixed start-up cost apart.

    python bench/batch.py --model artifacts/cnn [--files 20000] [--jobs 2] [--out bench-artifacts/batch]

The folder: --files PNGs of MNIST test digits (200x200, dark on white, the test set repeated),
as in `make bench`'s folder table. Each command runs once, in turns, after a warm-up read of
the folder (the page cache holds it for both). CPU seconds are those of every process the
command started (Ray's daemons and workers included), read from /proc every SAMPLE_SECONDS by an
environment token they all inherit: a lower bound by at most one interval of each process's
last moments. The per-core figure (images per CPU-second) is what docs/scale.md's sizing note
extrapolates from; on a busy machine the wall-clock figures shrink, the CPU figures hold.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_edge.data import load_dataset  # noqa: E402
from mnist_edge.manifest import find_exports  # noqa: E402

SAMPLE_SECONDS = 0.1
TOKEN_VARIABLE = "MNIST_EDGE_BENCH_TOKEN"
TICKS = os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of every process whose environment holds this meter's token."""

    def __init__(self):
        self.token = secrets.token_hex(8)
        self.seen: dict[int, float] = {}
        self.running = False

    def env(self) -> dict:
        return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {TOKEN_VARIABLE: self.token}

    def sample(self) -> None:
        marker = f"{TOKEN_VARIABLE}={self.token}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime and stime (fields 14 and 15 of stat); not the reaped children's, also sampled themselves
            self.seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS

    def run(self, command: list[str], **kwargs) -> tuple[float, float, subprocess.CompletedProcess]:
        """Wall seconds, CPU seconds and the result of `command`."""
        self.seen.clear()
        self.running = True

        def watch() -> None:
            while self.running:
                self.sample()
                time.sleep(SAMPLE_SECONDS)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        result = subprocess.run(command, env=self.env(), stdin=subprocess.DEVNULL, **kwargs)
        wall = time.perf_counter() - start
        self.running = False
        watcher.join()
        return wall, sum(self.seen.values()), result


def write_folder(folder: Path, files: int) -> None:
    from PIL import Image

    digits = load_dataset(os.environ.get("MNIST_DATA_DIR")).test.images
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        path = folder / f"{i:05d}.png"
        if not path.exists():
            Image.fromarray(255 - digits[i % len(digits)]).resize((200, 200)).save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("artifacts/cnn"), help="a model folder or its export")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=2, help="predict's worker processes (default: 2)")
    parser.add_argument("--out", type=Path, default=Path("bench-artifacts/batch"))
    args = parser.parse_args()
    export = (find_exports(args.model) or [args.model])[0]
    folder = args.out / f"digits-{args.files}"
    write_folder(folder, args.files)
    for path in folder.iterdir():  # warm the page cache for both commands
        path.read_bytes()
    meter = CpuMeter()
    cli = [sys.executable, "-m", "mnist_edge"]
    rows = []

    print(f"mnist-edge predict --jobs {args.jobs} on {args.files:,} files ...", flush=True)
    command = [*cli, "predict", "--model", str(export), "--json", "--jobs", str(args.jobs), str(folder)]
    wall, cpu, result = meter.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"predict failed: {result.stderr[-500:]}")
    rows.append((f"`mnist-edge predict --jobs {args.jobs}` (whole command)", args.files, wall, cpu))

    print("Ray start-up and shut-down alone ...", flush=True)
    start_only = "from mnist_edge.scale import connect; connect(None); import ray; ray.shutdown()"  # as batch does
    ray_wall, ray_cpu, result = meter.run([sys.executable, "-c", start_only], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"ray.init failed: {result.stderr[-500:]}")

    print(f"mnist-edge batch (local Ray) on {args.files:,} files ...", flush=True)
    output = args.out / "scores"
    command = [*cli, "batch", "--model", str(export), str(folder), "--output", str(output)]
    wall, cpu, result = meter.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"batch failed: {result.stderr[-500:]}")
    marker = json.loads((output / "_batch.json").read_text())
    rows.append(("`mnist-edge batch`, local Ray (whole command)", marker["rows"], wall, cpu))
    rows.append(("`mnist-edge batch`, once started (its summary; CPU less start-up alone)", marker["rows"],
                 marker["seconds"], cpu - ray_cpu))
    rows.append(("Ray start-up + shut-down alone", 0, ray_wall, ray_cpu))

    table = [
        "| run | images | seconds | images/s | CPU seconds, all processes | images per CPU-second |",
        "|---|---|---|---|---|---|",
    ]
    for how, images, seconds, cpu_seconds in rows:
        rate = f"{images / seconds:,.0f}" if images else "-"
        per_cpu = f"{images / cpu_seconds:,.0f}" if images else "-"
        table.append(f"| {how} | {images:,} | {seconds:.2f} | {rate} | {cpu_seconds:.2f} | {per_cpu} |")
    batch_rate = marker["rows"] / marker["seconds"]
    predict_rate = rows[0][1] / rows[0][2]
    notes = [
        "",
        f"batch once started / predict: {batch_rate / predict_rate:.2f}x the images/s; "
        f"batch's own start-up line: {marker['startup_seconds']:.2f} s; model {export}; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end.",
    ]
    text = "\n".join(table + notes)
    print(text)
    (args.out / "batch.md").write_text(text + "\n")
    shutil.rmtree(output, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
