"""A Gradio page to draw or upload a digit and see what an exported model predicts.

Every prediction goes through `runtime`: the page never imports TensorFlow or Keras. Gradio is
imported inside `build_app`, `serve` and `launch`, so the prediction path (`DigitDemo.predict`) can
be used, and tested, without it. The work is split by job: `models` (what is on offer, predictors
loaded once), `service` (predictions, explanations and samples as typed results), `reading` (a
whole number read, the Number tab's typed result), `page` and `page_number` (the Gradio layout
and events); this module joins them and serves the page.

    models = find_models(Path("artifacts"))          # {"cnn": ModelChoice, "mlp": ModelChoice}
    demo = DigitDemo.from_root(Path("artifacts"))
    demo.predict(image, "cnn", "fp32", "onnxruntime")  # (label dict, 224x224 model input, status)
    demo.explain(image, "cnn", "fp32", "onnxruntime")  # (224x224 occlusion overlay, caption)
    demo.read_number(image, "cnn", "fp32", "onnxruntime", 0.8)  # (text, status, boxed input, digits)
    launch(Path("artifacts"))                         # serves on http://127.0.0.1:7860
    app = serve(Path("artifacts"))                    # the same in the background; app.close() stops it
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from mnist_edge.errors import MnistEdgeError

from .models import STATUS_FILE, ModelCatalog, ModelChoice, engine_available, find_models, pending_notice
from .page import BRUSH_RADIUS, CANVAS_SIZE, CONCURRENCY, build_page, example_digits
from .reading import NOTHING_WRITTEN, NumberReading, read_number
from .service import (
    MAX_DRAWING_PIXELS, MAX_UPLOAD_PIXELS, NOT_AN_UPLOAD, NOTHING_DRAWN, PREVIEW_SIZE, DigitService, enlarge,
    occlusion_overlay,
)

__all__ = [
    "BRUSH_RADIUS", "CANVAS_SIZE", "DEMO_CSP", "MAX_DRAWING_PIXELS", "MAX_UPLOAD_PIXELS", "NOT_AN_UPLOAD",
    "NOTHING_DRAWN", "NOTHING_WRITTEN", "NumberReading", "PREVIEW_SIZE", "DigitDemo", "ModelChoice", "build_app",
    "engine_available", "enlarge", "example_digits", "find_models", "launch", "occlusion_overlay", "serve",
]

# The Gradio page's Content-Security-Policy: nothing from another origin (no fonts, scripts or
# telemetry fetched from the internet; nothing sent elsewhere), no plugins, no framing. Gradio's
# front end writes inline scripts and styles, and its drawing canvas (pixi.js) compiles shaders
# with eval, so 'unsafe-inline' and 'unsafe-eval' stay (measured: without them the Sketchpad never
# appears); the static web app
# (demo/web_server.py SITE_CSP) has no inline code and a stricter policy.
DEMO_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)



# Gradio keeps each session's state (every API call without a session is a new one) until 10,000
# are held: about 80 KB each, measured, so the demo grew by some 800 MB before any was dropped. The
# demo keeps the most recent SESSION_CAPACITY (README, "Reliability": memory).
SESSION_CAPACITY = 200


class DigitDemo:
    """What the page calls: the service's typed results as Gradio's tuples of outputs, plus the
    catalog's models and the pipeline's notice."""

    def __init__(self, service: DigitService, status_file: Path | None = None):
        self.service = service
        self.status_file = status_file

    @classmethod
    def from_root(
        cls, root: Path, collect: Path | None = None, uploads: Path | None = None, *,
        status_file: Path | None = None, **limits,
    ) -> "DigitDemo":
        """The models under `root`; `status_file` defaults to root/STATUS_FILE (a pipeline's);
        `limits`: DigitService's max_drawing_pixels, max_upload_pixels, decode_slots."""
        root = Path(root)
        catalog = ModelCatalog.from_root(root)
        service = DigitService(catalog, collect=Path(collect) if collect else None, uploads=uploads, **limits)
        return cls(service, status_file if status_file is not None else root / STATUS_FILE)

    @property
    def catalog(self) -> ModelCatalog:
        return self.service.catalog

    @property
    def models(self) -> dict[str, ModelChoice]:
        return self.catalog.models

    @property
    def collect(self) -> Path | None:
        return self.service.collect

    def refresh(self) -> bool:
        return self.catalog.refresh()

    def pending_notice(self) -> str:
        return pending_notice(self.status_file, self.models)

    def class_names(self, model: str) -> tuple[str, ...]:
        return self.catalog.class_names(model)

    def predictor(self, model: str, engine: str, precision: str):
        return self.catalog.predictor(model, engine, precision)

    def counter(self, model: str) -> str:
        return self.service.counter(model)

    def predict(self, image, model: str, precision: str, engine: str) -> tuple:
        """(labels or None, model input or None, status): service.predict for the page."""
        return self.service.predict(image, model, precision, engine).outputs()

    def explain(self, image, model: str, precision: str, engine: str) -> tuple:
        """(overlay or None, caption): service.explain for the page."""
        return self.service.explain(image, model, precision, engine).outputs()

    def read_number(self, image, model: str, precision: str, engine: str, min_confidence=None) -> tuple:
        """(text, status, boxed input, digits): reading.read_number for the Number tab."""
        return read_number(self.service, image, model, precision, engine, min_confidence).outputs()

    def save(self, image, label: str, model: str) -> tuple[str, str]:
        """(message, counter): service.save for the page."""
        return self.service.save(image, label, model).outputs()


def build_app(
    model_root: Path, *, examples: bool = True, concurrency: int = CONCURRENCY, collect: Path | None = None,
    status_file: Path | None = None,
):
    """The Gradio Blocks of the demo for the models under `model_root` (not launched). With
    `collect`, the page can save a drawing or upload as an example of a class into that folder.
    Served, only files Gradio itself received (its upload folder) are ever read."""
    from gradio.utils import get_upload_folder

    demo = DigitDemo.from_root(Path(model_root), collect=collect, uploads=Path(get_upload_folder()), status_file=status_file)
    app = build_page(demo, examples=examples, concurrency=concurrency)
    app.digit_demo = demo  # the predictor cache behind the page, for callers that want it
    return app


def serve(
    model_root: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    max_file_size: str | int = "5mb",
    collect: Path | None = None,
    sessions: int = SESSION_CAPACITY,
):
    """Start serving the demo in the background and return the running Gradio Blocks (stop it with
    `.close()`). `sessions`: how many sessions' state Gradio keeps (the oldest are dropped), which
    bounds memory; the Blocks' `state_holder` holds them."""
    app = build_app(Path(model_root), collect=collect)
    one_line_errors()
    try:
        app.queue(default_concurrency_limit=CONCURRENCY).launch(
            server_name=host, server_port=port, share=share, max_file_size=max_file_size,
            prevent_thread_lock=True, quiet=True, app_kwargs=security_headers(),
            state_session_capacity=sessions,
        )
    except OSError as exc:
        raise MnistEdgeError(f"cannot serve on {host}:{port}: {exc}") from None
    return app


def launch(
    model_root: Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    max_file_size: str | int = "5mb",
    collect: Path | None = None,
    sessions: int = SESSION_CAPACITY,
) -> None:
    """Serve the demo until interrupted. Local only by default; `share` asks Gradio for a public link.
    `sessions`: how many sessions' state Gradio keeps (the oldest are dropped), which bounds memory."""
    app = serve(model_root, host, port, share, max_file_size, collect, sessions)
    names = ", ".join(app.digit_demo.models)
    print(f"mnist-edge demo: serving {names} at http://{host}:{app.server_port}", flush=True)
    if share and app.share_url:
        print(f"mnist-edge demo: public link {app.share_url}", flush=True)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, `docker stop`) closes the server like Ctrl+C does.
        signal.signal(signal.SIGTERM, _interrupt)
    app.block_thread()  # until interrupted, then closes the server


def security_headers() -> dict:
    """FastAPI arguments that add DEMO_CSP (and nosniff) to every response of the demo."""
    from starlette.middleware import Middleware

    class SecurityHeaders:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)

            async def send_with_headers(message):
                if message["type"] == "http.response.start":
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"]
                    headers += [(b"content-security-policy", DEMO_CSP.encode()), (b"x-content-type-options", b"nosniff")]
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_headers)

    return {"middleware": [Middleware(SecurityHeaders)]}


def one_line_errors() -> None:
    """A client hanging up mid-upload, or a request Gradio refuses (data that fails its checks), is
    one line in the demo's log, not a traceback: both are normal on a public page."""
    import logging
    import types

    import gradio.queueing
    import gradio.route_utils
    import gradio.routes

    def say(error: BaseException | None) -> str:
        if type(error).__name__ == "ClientDisconnect":
            return "mnist-edge demo: a client hung up mid-request"
        return f"mnist-edge demo: a request failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"

    class OneLine(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info:
                record.msg, record.args = say(record.exc_info[1]), ()
                record.exc_info = record.exc_text = None
            return True

    logging.getLogger("uvicorn.error").addFilter(OneLine())
    shim = types.SimpleNamespace(print_exc=lambda *args, **kwargs: print(say(sys.exc_info()[1]), file=sys.stderr, flush=True))
    for module in (gradio.queueing, gradio.route_utils, gradio.routes):
        module.traceback = shim


def _interrupt(signum, frame):
    raise KeyboardInterrupt
