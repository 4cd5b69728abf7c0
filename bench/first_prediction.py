"""How long a newcomer waits: `make run` on a fresh clone, from start to the first prediction the
demo serves over HTTP, and to both models served.

    python bench/first_prediction.py [--source REPO] [--ref HEAD] [--data-dir D] [--keep]

1. Clones the committed REF of REPO (default: this repository) into a temporary folder.
2. Gives the clone a venv that reuses this interpreter's installed packages (TensorFlow and the
   rest are not downloaded or reinstalled; only the clone itself is installed, editable, without
   dependencies) and marks it installed so the Makefile keeps it. This setup is timed apart.
3. Runs `make run` in the clone on a free port of 127.0.0.1, time-stamping each line it prints,
   and asks the demo's HTTP API (upload + /predict_upload, as a browser's page does) to read a
   real MNIST test digit with the MLP and with the CNN every second until each answers.
4. Prints the milestones in seconds since `make run` started, stops the run (SIGTERM to the
   process group it started) and removes the clone unless --keep.

The figures are wall-clock on a shared machine: noisy; compare runs made side by side.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE_INTERVAL = 1.0  # seconds between prediction attempts
PROBE_MODELS = ("mlp", "cnn")
# What `make run` prints at each stage (first line starting with or containing the text).
MILESTONES = (
    ("MLP training starts", "Training mlp"),
    ("MLP trained", "mlp: test accuracy"),
    ("MLP exported", "mlp/export"),
    ("demo serving", "the demo is serving the first model"),
    ("CNN training starts", "Training cnn"),
    ("CNN trained", "cnn: test accuracy"),
    ("CNN exported", "cnn/export"),
    ("everything verified", "every model is ready"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clone(source: Path, ref: str, into: Path) -> Path:
    target = into / "mnist-edge"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(source), str(target)], check=True)
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", ref], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", commit], check=True)
    return target


def shared_venv(checkout: Path) -> Path:
    """checkout/.venv: a venv whose site-packages point at this interpreter's (a .pth file), with
    the checkout installed editable on top, and the Makefile's 'installed' stamp."""
    venv = checkout / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip())
    # Every site-packages this interpreter sees, after the clone's own (a .pth file's folders are
    # appended to sys.path, and their own .pth files are not run: no other editable install leaks in).
    shared = [p for p in sys.path if p.endswith("site-packages")]
    (site / "zz_shared_packages.pth").write_text("\n".join(dict.fromkeys(shared)) + "\n")
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(checkout)],
        capture_output=True, text=True, cwd=checkout,
    )
    if install.returncode != 0:
        raise RuntimeError(f"installing the clone failed:\n{install.stderr[-2000:]}")
    where = subprocess.run(
        [python, "-c", "import mnist_edge.trainer.train as t, tensorflow; print(t.__file__)"],
        check=True, capture_output=True, text=True, cwd="/",
    ).stdout.strip()
    if not Path(where).is_relative_to(checkout):
        raise RuntimeError(f"the clone's venv imports mnist_edge from {where}, not from {checkout}")
    (venv / "bin" / ".installed").touch()
    return venv


class TimedLog:
    """Reads a process's output in a thread, keeping (seconds since start, line) for each line."""

    def __init__(self, process: subprocess.Popen, start: float, echo):
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(process, start, echo), daemon=True)
        self._thread.start()

    def _read(self, process, start, echo) -> None:
        for line in process.stdout:
            self.lines.append((time.monotonic() - start, line.rstrip("\n")))
            if echo:
                print(f"  [{self.lines[-1][0]:7.1f}s] {line.rstrip()}", flush=True)

    def first(self, text: str) -> float | None:
        return next((t for t, line in self.lines if text in line), None)


def digit_png(data_dir: str | None) -> tuple[bytes, str]:
    """A real MNIST test digit as a PNG of dark ink on white, as a person would upload it."""
    from PIL import Image

    from mnist_edge.data import load_dataset

    test = load_dataset(data_dir).test
    buffer = io.BytesIO()
    Image.fromarray(255 - test.images[0]).save(buffer, "PNG")
    return buffer.getvalue(), str(test.labels[0])


def predict(url: str, png: bytes, model: str) -> str | None:
    """The label the demo's API returns for `png` with `model`, or None if it cannot answer yet."""
    import httpx

    from mnist_edge import formats

    try:
        paths = httpx.post(f"{url}gradio_api/upload", files={"files": ("digit.png", png, "image/png")}, timeout=30).json()
        image = {"path": paths[0], "orig_name": "digit.png", "meta": {"_type": "gradio.FileData"}}
        body = {"data": [image, model, formats.DEFAULT_PRECISION, formats.DEFAULT_ENGINE]}
        event = httpx.post(f"{url}gradio_api/call/predict_upload", json=body, timeout=30).json()["event_id"]
        stream = httpx.get(f"{url}gradio_api/call/predict_upload/{event}", timeout=60).text
    except (httpx.HTTPError, ValueError, KeyError):
        return None  # not serving yet
    data = next((line[5:] for line in stream.splitlines() if line.startswith("data:")), "null")
    outputs = json.loads(data)
    label = outputs[0].get("label") if outputs and isinstance(outputs[0], dict) else None
    return None if label is None else str(label)  # None: e.g. the CNN is still being made


def run(checkout: Path, data_dir: str, timeout: float, echo: bool) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    png, expected = digit_png(data_dir)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    process = subprocess.Popen(
        ["make", "run", f"PORT={port}", f"MNIST_DATA_DIR={data_dir}"],
        cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )
    log = TimedLog(process, start, echo)
    answered: dict[str, tuple[float, str]] = {}
    try:
        while len(answered) < len(PROBE_MODELS):
            if process.poll() is not None:
                raise RuntimeError(f"make run exited with {process.returncode}:\n" + "\n".join(l for _, l in log.lines[-30:]))
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"no answer from every model within {timeout:.0f}s")
            for model in PROBE_MODELS:
                if model not in answered and (label := predict(url, png, model)) is not None:
                    answered[model] = (time.monotonic() - start, label)
                    print(f"{model} answered {label!r} (the digit is a {expected}) at {answered[model][0]:.1f}s", flush=True)
            time.sleep(PROBE_INTERVAL)
        deadline = time.monotonic() + timeout
        while log.first("every model is ready") is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(PROBE_INTERVAL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the group `make run` leads: make, pipeline, demo
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    milestones = {name: log.first(text) for name, text in MILESTONES}
    return {"answered": answered, "expected": expected, "milestones": milestones}


def report(result: dict, setup_seconds: float, ref: str, commit: str) -> str:
    answered = result["answered"]
    rows = [("venv setup before `make run` (not counted)", setup_seconds)]
    rows += [(f"`make run`: {name}", seconds) for name, seconds in result["milestones"].items()]
    rows += [(f"first prediction served by the {m.upper()} (read {answered[m][1]!r}, truly {result['expected']!r})", answered[m][0]) for m in answered]
    rows.sort(key=lambda r: (r[1] is None, r[1] if r[1] is not None else 0))
    lines = [f"`make run` on a fresh clone of {ref} ({commit[:10]}), seconds since it started:", "",
             "| milestone | seconds |", "|---|---|"]
    lines += [f"| {name} | {'-' if s is None else f'{s:.0f}'} |" for name, s in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="the repository to clone (default: this one)")
    parser.add_argument("--ref", default="HEAD", help="the commit to clone (default: HEAD, committed work only)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist")))
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="keep the clone (its artifacts/) and print where")
    parser.add_argument("--quiet", action="store_true", help="do not echo make run's output")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix="mnist-edge-first-prediction-"))
    try:
        checkout = clone(args.source, args.ref, workdir)
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        began = time.monotonic()
        shared_venv(checkout)
        setup_seconds = time.monotonic() - began
        result = run(checkout, args.data_dir, args.timeout, echo=not args.quiet)
        text = report(result, setup_seconds, args.ref, commit)
        print("\n" + text)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
