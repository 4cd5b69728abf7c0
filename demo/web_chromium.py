"""Chromium for the web app's proofs: found on this machine (never Playwright's own download),
launched headless, and the app opened in it."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from mnist_edge.errors import MnistEdgeError


CHROMIUM_ENV = "MNIST_EDGE_CHROMIUM"  # a Chromium binary to use instead of the one on PATH
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]

# The same file in a browser build of an engine and in its Python build: nothing may change class,
PAGE_TIMEOUT_MS = 60_000


class BrowserUnavailable(MnistEdgeError):
    """Chromium (or Playwright) is not there, so no browser proof can run."""


class BrowserProofFailed(MnistEdgeError):
    """A browser proof ran and missed its limit (or could not be set up)."""


def find_chromium() -> str | None:
    """$MNIST_EDGE_CHROMIUM, else chromium on PATH (Debian's /usr/bin/chromium)."""
    wanted = os.environ.get(CHROMIUM_ENV)
    if wanted:
        return wanted if Path(wanted).is_file() and os.access(wanted, os.X_OK) else None
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def launch(playwright):
    """A headless Chromium (never Playwright's own download); BrowserUnavailable says what is missing."""
    executable = find_chromium()
    if executable is None:
        where = os.environ.get(CHROMIUM_ENV) or "PATH (" + ", ".join(CHROMIUM_NAMES) + ")"
        raise BrowserUnavailable(f"no Chromium found in {where}; install it (Debian: apt-get install chromium)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@contextlib.contextmanager
def chromium():
    """`launch` inside its own Playwright session, closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable("Playwright for Python is not installed (pip install 'mnist-edge[dev]')") from None
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()



def open_app(page, url: str) -> None:
    """Open the web app and wait until its first model is loaded. (The site's CSP forbids eval:
    every wait below is a function, which Playwright runs without it.)"""
    page.goto(url)
    page.wait_for_function("() => window.mnistEdge !== undefined", timeout=PAGE_TIMEOUT_MS)
    page.evaluate("window.mnistEdge.ready")
