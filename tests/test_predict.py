"""`mnist-edge predict` on many files: worker processes prepare them, inference runs in batches,
rows come out in input order with per-file errors as for a few files, memory stays bounded, and
a progress bar shows on a terminal only. Real files, real worker processes, a real pty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge import runtime
from mnist_edge.cli import main, predict

MANY = predict.PARALLEL_FILES + 36  # enough files for the worker processes


def _pid_of(item):
    """Run in a worker process by ordered_map: which process did it."""
    return item, os.getpid()


def _user_image(digit: np.ndarray) -> Image.Image:
    """A test digit as a person would give it: dark ink on white paper, scaled up."""
    return Image.fromarray(255 - digit).resize((84, 84), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def folder(mnist, tmp_path_factory) -> Path:
    """MANY - 1 digit PNGs and JPEGs, two of them unreadable, and a named pipe, which a folder
    listing leaves out: the tests name it as one more PATH (so MANY paths in all)."""
    root = tmp_path_factory.mktemp("many")
    for i, digit in enumerate(mnist.test.images[:MANY]):
        if i not in (10, 50, 77):
            _user_image(digit).save(root / f"{i:03d}.{'jpg' if i % 5 == 0 else 'png'}", quality=90)
    (root / "010.png").write_bytes(b"not a png at all")
    (root / "050.png").write_bytes(np.zeros(100, np.uint8).tobytes())
    os.mkfifo(root / "077.png")  # would block a reader forever
    return root


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_ordered_map_uses_worker_processes_keeps_order_and_draws_lazily():
    drawn = []

    def items():
        for i in range(40):
            drawn.append(i)
            yield i

    results = predict.ordered_map(_pid_of, items(), jobs=2)
    first = next(results)
    # Only the items in flight were drawn, not all 40: a folder of any size stays in bounded memory.
    assert len(drawn) <= 2 * predict.CHUNKS_PER_JOB + 1
    rest = list(results)
    assert [item for item, _ in [first, *rest]] == list(range(40))
    workers = {pid for _, pid in [first, *rest]}
    assert os.getpid() not in workers and 1 <= len(workers) <= 2


def test_batches_keep_input_order_and_errors_in_place(mlp_export, mnist):
    predictor = runtime.load(mlp_export)
    x = mnist.test.images[:7].astype(np.float32) / 255
    items = [("a", x[0]), ("b", "b: broken"), ("c", x[1]), ("d", x[2]), ("e", "e: broken"), ("f", "f: broken")]
    items += [(f"g{i}", x[i]) for i in range(3, 7)]
    rows = list(predict.predicted(predictor, iter(items), batch=3))  # several batches, one of errors only
    assert [path for path, _ in rows] == [path for path, _ in items]
    assert [r for _, r in rows if isinstance(r, str)] == ["b: broken", "e: broken", "f: broken"]
    expected = predictor.predict_array(x)
    got = np.stack([r.probabilities for _, r in rows if not isinstance(r, str)])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_many_files_in_parallel_equal_one_process(mlp_export, mnist, folder):
    parallel = _cli("predict", "--model", mlp_export, "--json", "--jobs", "2", folder, folder / "077.png")
    serial = _cli("predict", "--model", mlp_export, "--json", "--jobs", "1", folder, folder / "077.png")
    assert parallel.returncode == serial.returncode == 1  # three files failed, the others were read
    assert parallel.stdout == serial.stdout
    # In a pipe: no progress bar, only the summary line.
    assert parallel.stderr == serial.stderr == f"mnist-edge: error: 3 of {MANY} images could not be read\n"

    rows = [json.loads(line) for line in parallel.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == sorted(p.name for p in folder.iterdir() if p.is_file()) + ["077.png"]
    errors = {Path(r["path"]).name: r["error"] for r in rows if "error" in r}
    assert set(errors) == {"010.png", "050.png", "077.png"}
    assert "not a readable image" in errors["010.png"] and "not a regular file" in errors["077.png"]
    direct = runtime.load(mlp_export)
    for row in rows[:: len(rows) // 8]:
        if "error" not in row:
            assert row["digit"] == direct.predict(row["path"]).digit
    digits = np.array([r["digit"] for r in rows if "digit" in r])
    labels = np.delete(mnist.test.labels[:MANY], [10, 50, 77])  # the pipe's row is last
    assert np.mean(digits == labels) > 0.8  # the tiny test MLP on re-drawn digits


def test_few_files_are_read_in_this_process_and_many_by_workers(mlp_export, folder, monkeypatch, capsys):
    """No worker processes to start for a handful of files (single-image cold start); from
    PARALLEL_FILES files on, they are used."""
    real = predict.prepared_in_workers
    calls = []

    def recorded(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "prepared_in_workers", recorded)
    few = sorted(folder.glob("00[1-4].png"))
    assert main(["predict", "--model", str(mlp_export), "--jobs", "2", *map(str, few)]) == 0
    assert calls == []
    assert main(["predict", "--model", str(mlp_export), "--jobs", "2", "--json", str(folder)]) == 1
    assert calls == [2]
    assert main(["predict", "--model", str(mlp_export), "--jobs", "1", "--json", str(folder)]) == 1
    assert calls == [2]  # --jobs 1: this process only
    capsys.readouterr()


def test_progress_bar_on_a_terminal(mlp_export, folder):
    """stderr on a pseudo-terminal: a bar redrawn in place, then cleared; stdout (a pipe) holds
    only the table."""
    import pty

    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "mnist_edge", "predict", "--model", str(mlp_export), "--jobs", "2", str(folder), str(folder / "077.png")],
            stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=300,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and everything was read
                break
            if not data:
                break
            shown += data
    finally:
        os.close(controller)
    text = shown.decode()
    assert result.returncode == 1
    assert f"] {MANY}/{MANY} images" in text and "\r[" in text and "#" * predict.Progress.WIDTH in text
    assert text.rstrip().endswith(f"mnist-edge: error: 3 of {MANY} images could not be read")
    assert "images" not in result.stdout and len(result.stdout.splitlines()) == MANY + 1  # header + rows
