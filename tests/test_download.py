"""mnist_edge.download against a real HTTP server on 127.0.0.1: verified, atomic downloads, every
way a download can fail, and the data loader's last-resort download into the cache."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import mnist_edge.download
from mnist_edge.data import CACHE_DIR_ENV, DATA_DIR_ENV, NPZ_NAME, DataError, load_dataset, load_npz
from mnist_edge.download import URL_ENV, DownloadError, download

N_TRAIN = 1000
N_TEST = 200


@dataclass(frozen=True)
class Payload:
    content: bytes
    sha256: str


@pytest.fixture(scope="module")
def payload(tmp_path_factory, mnist) -> Payload:
    """A small but real mnist.npz: the first 1000 training and 200 test images."""
    path = tmp_path_factory.mktemp("payload") / NPZ_NAME
    with open(path, "wb") as f:
        np.savez(
            f,
            x_train=mnist.train.images[:N_TRAIN],
            y_train=mnist.train.labels[:N_TRAIN],
            x_test=mnist.test.images[:N_TEST],
            y_test=mnist.test.labels[:N_TEST],
        )
    content = path.read_bytes()
    return Payload(content, hashlib.sha256(content).hexdigest())


@dataclass
class LocalServer:
    base_url: str
    requests: Counter = field(default_factory=Counter)

    def url(self, route: str) -> str:
        return f"{self.base_url}/{route}"


def make_handler(payload: Payload, requests: Counter, lock: threading.Lock, release: threading.Event):
    half = len(payload.content) // 2
    tampered = bytearray(payload.content)
    tampered[half] ^= 0xFF  # same length, one byte different: what a bad mirror might serve

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # keep the test output (and capsys) clean
            pass

        def send_body_headers(self, length: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def do_GET(self):
            route = self.path.lstrip("/")
            with lock:
                requests[route] += 1
            if route == NPZ_NAME:
                self.send_body_headers(len(payload.content))
                self.wfile.write(payload.content)
            elif route == "tampered.npz":
                self.send_body_headers(len(tampered))
                self.wfile.write(tampered)
            elif route == "redirect":
                self.send_response(302)
                self.send_header("Location", f"/{NPZ_NAME}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif route == "cut":
                # Promise the whole file, send half, then close the connection cleanly (FIN).
                self.send_body_headers(len(payload.content))
                self.wfile.write(payload.content[:half])
                self.wfile.flush()
                self.close_connection = True
            elif route == "reset":
                # Promise the whole file, send half, then abort the connection (RST).
                self.send_body_headers(len(payload.content))
                self.wfile.write(payload.content[:half])
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
            elif route == "hang":
                # Send the headers and a little, then stall until the test is over.
                self.send_body_headers(len(payload.content))
                self.wfile.write(payload.content[:1000])
                self.wfile.flush()
                release.wait(10)
                self.close_connection = True
            else:
                self.send_error(404, "Not Found")

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the "reset" route breaks its own socket on purpose


@pytest.fixture
def server(payload):
    requests: Counter = Counter()
    lock = threading.Lock()
    release = threading.Event()
    httpd = QuietServer(("127.0.0.1", 0), make_handler(payload, requests, lock, release))
    # A short poll interval so shutdown() returns quickly at teardown.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    try:
        yield LocalServer(f"http://{host}:{port}", requests)
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def cache(tmp_path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def contents(folder: Path) -> list[str]:
    """Every file in the folder, hidden .part files included."""
    return sorted(p.name for p in folder.iterdir())


# --- download() --------------------------------------------------------------------------------


def test_download_writes_the_verified_file(server, payload, cache):
    dest = cache / NPZ_NAME
    assert download(server.url(NPZ_NAME), dest, payload.sha256, progress=False) == dest
    assert dest.read_bytes() == payload.content
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == payload.sha256
    assert contents(cache) == [NPZ_NAME]
    dataset = load_npz(dest)
    assert len(dataset.train) == N_TRAIN and len(dataset.test) == N_TEST
    assert dataset.train.images.shape == (N_TRAIN, 28, 28)


def test_download_creates_the_destination_folder(server, payload, tmp_path):
    dest = tmp_path / "new" / "folder" / NPZ_NAME
    download(server.url(NPZ_NAME), dest, payload.sha256, progress=False)
    assert dest.read_bytes() == payload.content


def test_download_follows_a_redirect(server, payload, cache):
    dest = download(server.url("redirect"), cache / NPZ_NAME, payload.sha256, progress=False)
    assert dest.read_bytes() == payload.content
    assert server.requests == Counter({"redirect": 1, NPZ_NAME: 1})


def test_checksum_mismatch_leaves_nothing(server, payload, cache):
    url = server.url("tampered.npz")
    with pytest.raises(DownloadError, match="checksum") as err:
        download(url, cache / NPZ_NAME, payload.sha256, progress=False)
    assert url in str(err.value) and payload.sha256 in str(err.value)
    assert contents(cache) == []


def test_wrong_expected_checksum_leaves_nothing(server, cache):
    with pytest.raises(DownloadError, match="checksum"):
        download(server.url(NPZ_NAME), cache / NPZ_NAME, "0" * 64, progress=False)
    assert contents(cache) == []


@pytest.mark.parametrize("route", ["cut", "reset"])
def test_connection_cut_mid_transfer_leaves_nothing(server, payload, cache, route):
    url = server.url(route)
    with pytest.raises(DownloadError) as err:
        download(url, cache / NPZ_NAME, payload.sha256, progress=False)
    assert url in str(err.value)
    assert contents(cache) == []


def test_clean_close_reports_how_much_arrived(server, payload, cache):
    with pytest.raises(DownloadError, match=f"closed after {len(payload.content) // 2} of {len(payload.content)} bytes"):
        download(server.url("cut"), cache / NPZ_NAME, payload.sha256, progress=False)


def test_http_404_leaves_nothing(server, payload, cache):
    url = server.url("no-such-file.npz")
    with pytest.raises(DownloadError, match="404") as err:
        download(url, cache / NPZ_NAME, payload.sha256, progress=False)
    assert url in str(err.value)
    assert contents(cache) == []


def test_connection_refused_leaves_nothing(payload, cache):
    url = f"http://127.0.0.1:{free_port()}/{NPZ_NAME}"
    with pytest.raises(DownloadError, match="download failed") as err:
        download(url, cache / NPZ_NAME, payload.sha256, progress=False)
    assert url in str(err.value)
    assert contents(cache) == []


def test_stalled_server_times_out_and_leaves_nothing(server, payload, cache):
    with pytest.raises(DownloadError, match="timed out"):
        download(server.url("hang"), cache / NPZ_NAME, payload.sha256, progress=False, timeout=0.5)
    assert contents(cache) == []


@pytest.mark.parametrize("route", ["cut", "tampered.npz", "no-such-file.npz"])
def test_failed_download_keeps_the_existing_file(server, payload, cache, route):
    dest = cache / NPZ_NAME
    sentinel = b"a good file that was here before\n"
    dest.write_bytes(sentinel)
    with pytest.raises(DownloadError):
        download(server.url(route), dest, payload.sha256, progress=False)
    assert dest.read_bytes() == sentinel
    assert contents(cache) == [NPZ_NAME]


def test_progress_bar_ends_at_100_percent(server, payload, cache, capsys):
    url = server.url(NPZ_NAME)
    download(url, cache / NPZ_NAME, payload.sha256, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"Downloading {url}\n")
    assert captured.err.endswith("\n")
    last_frame = captured.err.rstrip("\n").split("\r")[-1]
    assert f"[{'#' * 30}]" in last_frame
    assert "100.0%" in last_frame
    size_mb = f"{len(payload.content) / 1e6:.1f}"
    assert last_frame.rstrip().endswith(f"{size_mb}/{size_mb} MB")


def test_no_progress_prints_nothing(server, payload, cache, capsys):
    download(server.url(NPZ_NAME), cache / NPZ_NAME, payload.sha256, progress=False)
    assert capsys.readouterr() == ("", "")


# --- the loader's last resort: download into the cache ------------------------------------------


@pytest.fixture
def download_env(monkeypatch, server, cache):
    """No $MNIST_DATA_DIR, an empty cache, and the public address replaced by the local server."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    monkeypatch.setenv(URL_ENV, server.url(NPZ_NAME))
    return cache


def test_load_dataset_downloads_into_the_cache_once(server, payload, download_env, monkeypatch, mnist):
    monkeypatch.setattr(mnist_edge.download, "MNIST_NPZ_SHA256", payload.sha256)
    dataset = load_dataset()
    assert dataset.source == str(download_env / NPZ_NAME)
    assert len(dataset.train) == N_TRAIN and len(dataset.test) == N_TEST
    np.testing.assert_array_equal(dataset.train.images, mnist.train.images[:N_TRAIN])
    np.testing.assert_array_equal(dataset.test.labels, mnist.test.labels[:N_TEST])
    assert contents(download_env) == [NPZ_NAME]
    assert server.requests[NPZ_NAME] == 1

    again = load_dataset()
    assert again.source == dataset.source
    assert server.requests[NPZ_NAME] == 1  # served from the cache this time


def test_load_dataset_with_bad_checksum_leaves_the_cache_empty(server, download_env):
    # The real MNIST_NPZ_SHA256 (of the public file) does not match the local payload.
    with pytest.raises(DataError, match="checksum") as err:
        load_dataset()
    assert isinstance(err.value, DownloadError)
    assert err.value.exit_code == 2
    assert contents(download_env) == []
    assert server.requests[NPZ_NAME] == 1


def test_load_dataset_without_download_does_not_touch_the_server(server, download_env):
    with pytest.raises(DataError, match="no MNIST data"):
        load_dataset(download=False)
    assert sum(server.requests.values()) == 0


def test_the_public_checksum_is_the_one_keras_publishes():
    """The real mnist.npz cannot be fetched here; its sha256 is checked against the hash Keras
    itself verifies the same file with (keras/src/datasets/mnist.py), so a typo cannot hide."""
    import importlib.util

    spec = importlib.util.find_spec("keras.src.datasets.mnist")
    source = Path(spec.origin).read_text()
    assert f'"{mnist_edge.download.MNIST_NPZ_SHA256}"' in source
    assert mnist_edge.download.MNIST_NPZ_URL.endswith("tf-keras-datasets/mnist.npz") and "tf-keras-datasets/" in source
