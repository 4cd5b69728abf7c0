"""A small static HTTP server for the web app: the right MIME types (application/wasm, .mjs as
JavaScript, the web app manifest), gzip as a static host would send it, ETags so a revalidation
costs a 304, and a log of what went over the wire (the benchmark's transfer sizes).

    with SiteServer({"/": Path("site")}) as server:
        print(server.url)            # http://127.0.0.1:<free port>/

`mounts` maps URL prefixes to folders ("/": the site; the proofs add "/proof/" for their own
pages and data). Only files under a mount are served; dot-files and `..` never are. Every
response carries the site's Content-Security-Policy (`SITE_CSP`: nothing but this origin, no
inline script or style), except under the `csp_exempt` prefixes (the proofs' own harness page).
A path that is not a path (a NUL byte) is a 400; a client hanging up is not an error.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mnist_edge.errors import MnistEdgeError

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
BINARY = "application/octet-stream"  # models (.onnx, .ort, .tflite) and proof data (.bin)
# What a static host compresses: text, wasm and models (protobuf and flatbuffers shrink well); PNG
# is compressed already.
UNCOMPRESSED = ("image/png",)
GZIP_LEVEL = 6  # nginx's gzip_comp_level ranges 1-9; 6 is the common setting (and zlib's default)
# The web app's policy: scripts, styles, models and the wasm runtime from this origin only (the
# wasm needs 'wasm-unsafe-eval' to compile), images also from data: and blob: (the samples and
# the model input), nothing inline, no plugins, no framing. index.html carries the same policy
# in a <meta> (without frame-ancestors, which only a header can set), for static hosts.
SITE_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Transfer:
    """One response: what was asked, the status, and the body bytes sent (after gzip)."""

    path: str
    status: int
    bytes: int
    gzip: bool


class SiteServer:
    """Serve folders on `host`:`port` (0: a free port) from a background thread."""

    def __init__(
        self, mounts: dict[str, Path], host: str = "127.0.0.1", port: int = 0, *, compress: bool = True,
        csp: str = SITE_CSP, csp_exempt: tuple[str, ...] = (),
    ):
        self.mounts = {prefix if prefix.endswith("/") else prefix + "/": Path(folder).resolve() for prefix, folder in mounts.items()}
        self.compress = compress
        self.csp = csp
        self.csp_exempt = csp_exempt
        self.transfers: list[Transfer] = []
        self._lock = threading.Lock()
        self._gzipped: dict[tuple, bytes] = {}
        try:
            self.httpd = _QuietServer((host, port), _handler_for(self))
        except OSError as exc:
            raise MnistEdgeError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "SiteServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="site-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "SiteServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl+C)."""
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def clear_log(self) -> None:
        with self._lock:
            self.transfers.clear()

    def log(self) -> list[Transfer]:
        with self._lock:
            return list(self.transfers)

    # --- used by the handler ---

    def policy_for(self, url_path: str) -> str | None:
        """The Content-Security-Policy header for a response to `url_path`, or None."""
        path = urllib.parse.urlsplit(url_path).path
        return None if any(path.startswith(prefix) for prefix in self.csp_exempt) else self.csp

    def resolve(self, url_path: str) -> Path | None:
        """The file a URL path names, or None (outside every mount, hidden, or missing). Raises
        ValueError for a path no file can have (a NUL byte)."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
        if "\0" in path:
            raise ValueError("a NUL byte in the path")
        for prefix in sorted(self.mounts, key=len, reverse=True):
            if path.startswith(prefix) or path + "/" == prefix:
                root = self.mounts[prefix]
                relative = path[len(prefix):]
                parts = [p for p in relative.split("/") if p]
                if any(p.startswith(".") for p in parts):
                    return None
                candidate = root.joinpath(*parts)
                if candidate.is_dir():
                    candidate = candidate / "index.html"
                try:
                    candidate = candidate.resolve()
                except OSError:
                    return None
                if candidate.is_file() and candidate.is_relative_to(root):
                    return candidate
                return None
        return None

    def gzipped(self, file: Path, stat) -> bytes:
        key = (str(file), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._gzipped.get(key)
        if cached is None:
            cached = gzip.compress(file.read_bytes(), compresslevel=GZIP_LEVEL, mtime=0)
            with self._lock:
                self._gzipped[key] = cached
        return cached

    def record(self, transfer: Transfer) -> None:
        with self._lock:
            self.transfers.append(transfer)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a closed tab, a cancelled download) is normal: nothing is
    printed. Anything else is one line on stderr, never a traceback."""

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):  # BrokenPipeError, ConnectionResetError, ...
            return
        print(f"mnist-edge web: error answering {client_address[0]}: {error!r}", file=sys.stderr, flush=True)


def mime_type(path: Path) -> str:
    return MIME_TYPES.get(path.suffix.lower(), BINARY)


def _send_file(handler, server: SiteServer, file: Path, send_body: bool) -> None:
    """Answer with `file`: gzipped when the client takes it, a 304 when its ETag still matches."""
    stat = file.stat()
    content_type = mime_type(file)
    use_gzip = (
        server.compress
        and content_type not in UNCOMPRESSED
        and "gzip" in handler.headers.get("Accept-Encoding", "")
    )
    etag = '"' + hashlib.sha1(f"{stat.st_mtime_ns}-{stat.st_size}-{use_gzip}".encode()).hexdigest()[:20] + '"'
    if etag in [t.strip() for t in handler.headers.get("If-None-Match", "").split(",")]:
        handler.send_response(HTTPStatus.NOT_MODIFIED)
        handler.send_header("ETag", etag)
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        server.record(Transfer(handler.path, 304, 0, False))
        return
    body = server.gzipped(file, stat) if use_gzip else file.read_bytes()
    handler.send_response(HTTPStatus.OK)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("ETag", etag)
    # Always revalidate: a rebuilt site is seen at once; the service worker serves offline.
    handler.send_header("Cache-Control", "no-cache")
    handler.send_security_headers()
    if use_gzip:
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Vary", "Accept-Encoding")
    handler.end_headers()
    if send_body:
        handler.wfile.write(body)
    server.record(Transfer(handler.path, 200, len(body) if send_body else 0, use_gzip))


def _handler_for(server: SiteServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "mnist-edge-web"

        def do_GET(self) -> None:
            self._respond(send_body=True)

        def do_HEAD(self) -> None:
            self._respond(send_body=False)

        def _respond(self, send_body: bool) -> None:
            try:
                file = server.resolve(self.path)
            except ValueError:
                self._send_plain(HTTPStatus.BAD_REQUEST, b"bad request: not a file path\n", send_body)
                return
            if file is None:
                self._send_plain(HTTPStatus.NOT_FOUND, b"not found\n", send_body)
                return
            _send_file(self, server, file, send_body)

        def send_security_headers(self) -> None:
            self.send_header("X-Content-Type-Options", "nosniff")
            policy = server.policy_for(self.path)
            if policy:
                self.send_header("Content-Security-Policy", policy)

        def _send_plain(self, status: HTTPStatus, body: bytes, send_body: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_security_headers()
            self.end_headers()
            if send_body:
                self.wfile.write(body)
            server.record(Transfer(self.path, int(status), len(body) if send_body else 0, False))

        def log_message(self, format: str, *args) -> None:  # quiet: the transfer log keeps the record
            pass

    return Handler
