"""`mnist-edge batch` on real Ray: a cluster this module starts on 127.0.0.1 (`ray start --head`,
2 CPUs, no dashboard, its own ports and temp folder, stopped at the end), and the local mode.
The rows must be `mnist-edge predict --json`'s (`mnist-edge read --json`'s in number mode), row
for row, broken files as error rows; an actor killed mid-job must change nothing.

The cluster's processes are found by a token in their environment (every process `ray start`
launches inherits it), so the test stops exactly its own cluster and kills exactly its own actor,
never another run's (`ray stop` would stop every Ray on the machine)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray", reason="mnist-edge batch needs the 'scale' extra")
pytestmark = pytest.mark.ray

from mnist_edge import scale  # noqa: E402

COUNT = 2000  # MNIST test digits as PNG files
TOKEN_VARIABLE = "MNIST_EDGE_TEST_RAY_CLUSTER"
# Ray turns 127.0.0.1 into the machine's network address unless this is off: then the cluster and
# the drivers that join it use the loopback only.
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Ray 2.60 authenticates every connection with a token (by default ~/.ray/auth_token, created by
# the first local Ray): the tests use their own, so they neither need nor write one in $HOME.
TOKEN_FILE = Path(tempfile.gettempdir()) / f"mnist-edge-test-ray-token-{os.getpid()}"
ACTOR_TITLE = "ray::MapWorker(MapBatches(PredictRows))"  # Ray names an actor's process after its class
BROKEN = {
    "not_an_image.png": b"this is text, not a PNG",
    "empty.png": b"",
}


# --- a real cluster on 127.0.0.1 -----------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class RayCluster:
    """A one-node Ray cluster started with `ray start --head` from this Python (so its workers
    import this checkout), and stopped by the pids that carry its token."""

    def __init__(self, root: Path):
        self.root, self.token = root, secrets.token_hex(8)

    def start(self, attempts: int = 2) -> None:
        """`ray start --head`, tried again once: Ray gives the raylet a fixed 30 s to register,
        which a saturated machine can exceed."""
        for attempt in range(attempts):
            result = self._start_once()
            if result.returncode == 0:
                return
            self.stop()
        raise AssertionError(f"ray start failed {attempts} times: {result.stderr[-3000:]}")

    def _start_once(self) -> subprocess.CompletedProcess:
        names = ("port", "ray-client-server-port", "dashboard-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port",
                 "node-manager-port", "object-manager-port")
        ports = dict(zip(names, _free_ports(len(names))))
        command = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head",
                   "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats",
                   "--node-ip-address", "127.0.0.1", "--temp-dir", str(self.root)]
        command += [arg for name, port in ports.items() for arg in (f"--{name}", str(port))]
        env = _env() | {TOKEN_VARIABLE: self.token}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        self.address = f"127.0.0.1:{ports['port']}"
        return result

    def pids(self, title: str = "") -> list[int]:
        """This cluster's processes (whose title starts with `title`)."""
        found = []
        marker = f"{TOKEN_VARIABLE}={self.token}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker not in (entry / "environ").read_bytes().split(b"\0"):
                    continue
                if (entry / "cmdline").read_bytes().decode(errors="replace").startswith(title):
                    found.append(int(entry.name))
            except OSError:  # gone, or not ours to read
                continue
        return found

    def stop(self) -> None:
        pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        _wait_gone(pids, 3)  # raylet and gcs_server may outlive SIGTERM for seconds
        pids = self.pids()
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        _wait_gone(pids, 10)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="mnist-edge-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    ray_cluster = RayCluster(root)
    try:
        ray_cluster.start()
        yield ray_cluster
    finally:
        ray_cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- the files, and what `mnist-edge predict --json` says of them --------------------------------


@pytest.fixture(scope="module")
def folder(mnist, tmp_path_factory) -> Path:
    """COUNT test digits as a person would give them (dark ink on white, 84x84 PNG) and broken
    files: text, empty, truncated, blank paper (no digit), and a sparse file over the size limit."""
    root = tmp_path_factory.mktemp("digits")
    for i, digit in enumerate(mnist.test.images[:COUNT]):
        Image.fromarray(255 - digit).resize((84, 84), Image.Resampling.BICUBIC).save(root / f"{i:05d}.png")
    for name, content in BROKEN.items():
        (root / name).write_bytes(content)
    (root / "truncated.png").write_bytes((root / "00000.png").read_bytes()[:120])
    Image.new("L", (84, 84), 255).save(root / "blank.png")
    with open(root / "huge.png", "wb") as f:  # sparse: over the limit without writing it
        f.truncate(25 * 1024 * 1024)
    return root


BROKEN_NAMES = {"not_an_image.png", "empty.png", "truncated.png", "blank.png", "huge.png"}


@pytest.fixture(scope="module", autouse=True)
def ray_token():
    TOKEN_FILE.write_text(secrets.token_hex(32))
    TOKEN_FILE.chmod(0o600)
    yield
    TOKEN_FILE.unlink(missing_ok=True)


def _env() -> dict:
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(TOKEN_FILE)}
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | LOOPBACK | auth


def _cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env=_env(), stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def predicted(mlp_export, folder) -> dict[str, dict]:
    """`mnist-edge predict --json` on the folder: path -> row."""
    result = _cli("predict", "--model", mlp_export, "--json", folder)
    assert result.returncode == 1  # the broken files
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == COUNT + len(BROKEN_NAMES)
    return {row["path"]: row for row in rows}


def _rows(output: Path) -> list[dict]:
    return scale.read_rows(output).to_pylist()


def _assert_same_as_predict(rows: list[dict], predicted: dict[str, dict]) -> None:
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == len(predicted)  # every input exactly once
    assert set(paths) == set(predicted)
    for row in rows:
        expected = predicted[row["path"]]
        if "error" in expected:
            assert row["error"] and row["digit"] is None and row["confidence"] is None, row
            continue
        assert row["error"] is None, row
        assert (row["digit"], row["label"]) == (expected["digit"], expected["label"]), row["path"]
        # predict --json prints 6 decimals; batches of other sizes may differ in the last float32 bits
        assert row["confidence"] == pytest.approx(expected["confidence"], abs=1e-6), row["path"]
        assert np.allclose(row["probabilities"], expected["probabilities"], atol=1e-6), row["path"]
    errors = {Path(row["path"]).name for row in rows if row["error"]}
    assert errors == BROKEN_NAMES


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_on_a_cluster_equals_predict_row_for_row(cluster, mlp_export, folder, predicted, tmp_path_factory):
    output = tmp_path_factory.mktemp("out") / "scores"
    result = _cli("batch", "--model", mlp_export, folder, "--output", output, "--address", cluster.address,
                  "--actors", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    total = COUNT + len(BROKEN_NAMES)
    assert f"{total:,} rows, {len(BROKEN_NAMES)} errors" in result.stdout
    rows = _rows(output)
    _assert_same_as_predict(rows, predicted)
    by_name = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert "not a readable image" in by_name["not_an_image.png"]
    assert "no digit" in by_name["blank.png"].lower() or "ink" in by_name["blank.png"].lower()
    assert "limit" in by_name["huge.png"]
    marker = json.loads((output / scale.MARKER).read_text())
    assert (marker["rows"], marker["errors"]) == (total, len(BROKEN_NAMES))


@pytest.mark.slow
def test_an_actor_killed_mid_job_changes_nothing(cluster, mlp_export, folder, predicted, tmp_path):
    """One actor, small batches, 1,000 files: its process is killed as soon as it appears (long
    before the rows are done); Ray restarts it and retries its batch. A second actor process must
    be seen, or the kill did not happen mid-job and the test says so."""
    output = tmp_path / "scores"
    output.mkdir()
    (output / scale.MARKER).write_text(json.dumps({"command": "mnist-edge batch"}))  # an earlier run's folder
    (output / "part-00000.parquet").write_bytes(b"stale")
    seen: list[int] = []
    killed: list[int] = []
    job = subprocess.Popen(
        [sys.executable, "-m", "mnist_edge", "batch", "--model", str(mlp_export), str(folder / "00???.png"), "--output", str(output),
         "--address", cluster.address, "--actors", "1", "--batch-size", "16"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        env=_env(),
    )

    def watch() -> None:
        while job.poll() is None:
            for pid in cluster.pids(ACTOR_TITLE):
                if pid not in seen:
                    seen.append(pid)
                if not killed:
                    _signal(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = job.communicate(timeout=600)
    watcher.join()
    assert job.returncode == 0, stderr[-3000:]
    assert killed and len(seen) >= 2, f"actor processes seen: {seen}, killed: {killed}"
    rows = _rows(output)
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == 1000  # every input exactly once, the stale shard gone
    for row in rows:
        expected = predicted[row["path"]]
        assert row["error"] is None and row["digit"] == expected["digit"], row["path"]
        assert row["confidence"] == pytest.approx(expected["confidence"], abs=1e-6), row["path"]


@pytest.mark.slow
def test_local_mode_reads_globs_parquet_and_refuses_a_pipe(mlp_export, folder, predicted, tmp_path):
    """No --address: a private local Ray. Inputs: a glob, a Parquet file of image bytes (the Hugging
    Face layout, a struct of bytes and path, no row names) and a named pipe given by name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"{i:05d}.png" for i in range(100)]
    images = pa.array([{"bytes": (folder / n).read_bytes(), "path": n} for n in names])
    pq.write_table(pa.table({"image": images, "label": list(range(100))}), tmp_path / "digits.parquet")
    os.mkfifo(tmp_path / "pipe.png")
    output = tmp_path / "scores"
    result = _cli("batch", "--model", mlp_export, str(folder / "000[0-9]?.png"), tmp_path / "digits.parquet",
                  tmp_path / "pipe.png", "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(output)
    by_path = {row["path"]: row for row in rows}
    assert len(by_path) == len(rows) == 100 + 100 + 1
    globbed = [by_path[str(folder / n)] for n in names]
    for row in globbed:
        expected = predicted[row["path"]]
        assert row["digit"] == expected["digit"] and row["confidence"] == pytest.approx(expected["confidence"], abs=1e-6)
    from_parquet = sorted((r for r in rows if "digits.parquet#" in r["path"]), key=lambda r: r["confidence"])
    assert len(from_parquet) == 100 and len({r["path"] for r in from_parquet}) == 100
    # The same bytes give the same answers, whichever way they came in.
    assert sorted((r["digit"], round(r["confidence"], 6)) for r in from_parquet) == sorted(
        (r["digit"], round(r["confidence"], 6)) for r in globbed
    )
    assert "not a regular file" in by_path[str(tmp_path / "pipe.png")]["error"]


def test_a_foreign_folder_is_refused_and_left_alone(mlp_export, folder, tmp_path):
    output = tmp_path / "mine"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    result = _cli("batch", "--model", mlp_export, folder / "00000.png", "--output", output, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("mnist-edge: error: --output") and "not written by mnist-edge batch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert [p.name for p in output.iterdir()] == ["notes.txt"] and (output / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left beside it


@pytest.fixture(scope="module")
def number_fields(mnist, tmp_path_factory) -> Path:
    """40 whole numbers of 2-5 MNIST test digits side by side (dark ink on white, gaps of 4-12 px),
    a blank field and a text file."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("numbers")
    images = mnist.test.images
    for n in range(40):
        picks = rng.integers(0, len(images), rng.integers(2, 6))
        parts = []
        for i in picks:
            parts += [images[i], np.zeros((28, int(rng.integers(4, 13))), np.uint8)]
        field = np.pad(np.hstack(parts[:-1]), 12)
        Image.fromarray(255 - field).resize((field.shape[1] * 3, field.shape[0] * 3)).save(root / f"{n:02d}.png")
    Image.new("L", (300, 90), 255).save(root / "blank.png")
    (root / "notes.png").write_text("not an image")
    return root


@pytest.mark.slow
def test_number_mode_equals_read_row_for_row(cluster, mlp_export, number_fields, tmp_path):
    result = _cli("read", "--model", mlp_export, "--json", number_fields)
    expected = {row["path"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert len(expected) == 42
    output = tmp_path / "numbers"
    result = _cli("batch", "--model", mlp_export, number_fields, "--output", output, "--mode", "number",
                  "--address", cluster.address, "--actors", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(output)
    assert sorted(r["path"] for r in rows) == sorted(expected)
    for row in rows:
        want = expected[row["path"]]
        if "error" in want:
            assert row["error"] and row["text"] is None, row
            continue
        assert (row["error"], row["text"], row["rejected"]) == (None, want["text"], want["rejected"]), row["path"]
        assert row["confidence"] == pytest.approx(want["confidence"], abs=1e-6)
        assert [d["box"] for d in row["digits"]] == [d["box"] for d in want["digits"]]
        assert [d["digit"] for d in row["digits"]] == [d["digit"] for d in want["digits"]]
    assert {Path(r["path"]).name for r in rows if r["error"]} == {"blank.png", "notes.png"}
