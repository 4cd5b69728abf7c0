"""Page use: digits drawn with the mouse (or a finger) on the page read back as the right class;
then a reload with the network off, and another drawing read right."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .web_chromium import PAGE_TIMEOUT_MS, open_app
from .web_strokes import CANVAS


PAGE_USE_DIGITS = 3


def canvas_box(page) -> dict:
    return page.locator("#pad").bounding_box()


def to_screen(box: dict, point) -> tuple[float, float]:
    return box["x"] + point[0] * box["width"] / CANVAS, box["y"] + point[1] * box["height"] / CANVAS


def draw_with_mouse(page, strokes: list[dict]) -> None:
    box = canvas_box(page)
    for stroke in strokes:
        points = [to_screen(box, p) for p in stroke["points"]]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=2)
        page.mouse.up()


def draw_with_touch(page, strokes: list[dict]) -> None:
    """Finger strokes: Chromium touch events (DevTools protocol), which the page sees as pointer
    events of type "touch", as on a phone."""
    session = page.context.new_cdp_session(page)
    box = canvas_box(page)
    try:
        for stroke in strokes:
            points = [to_screen(box, p) for p in stroke["points"]]
            session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
            for a, b in zip(points, points[1:]):
                for t in (0.5, 1.0):
                    x, y = a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
                    session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    finally:
        session.detach()


def read_drawing(page, strokes: list[dict], *, via: str = "mouse") -> str:
    """Clear the pad, draw `strokes` by mouse or touch, wait for the page's own prediction and
    return the class it shows first."""
    page.click("#clear") if via == "mouse" else page.tap("#clear")
    before = page.evaluate("window.mnistEdge.state.answered")
    (draw_with_mouse if via == "mouse" else draw_with_touch)(page, strokes)
    # Each stroke's end asks for a prediction (a lone bar may be refused as "no digit").
    page.wait_for_function(f"() => window.mnistEdge.state.answered >= {before + len(strokes)}", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#top li .label') !== null", timeout=PAGE_TIMEOUT_MS)
    return page.locator("#top li .label").first.inner_text()


@dataclass(frozen=True)
class PageUse:
    drawn: list[tuple[str, str]]  # (label, what the page showed), mouse
    offline_drawn: list[tuple[str, str]]  # the same after a reload with the network off
    service_worker: bool
    outside_requests: list[str]  # requests to any host but the site's: must stay empty (no CDN)

    @property
    def passed(self) -> bool:
        return (
            self.service_worker
            and bool(self.offline_drawn)
            and all(a == b for a, b in self.drawn + self.offline_drawn)
            and not self.outside_requests
        )


def only_this_host(context, url: str) -> list[str]:
    """Block every request to another host in `context`; returns the list they are recorded in."""
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc
    outside: list[str] = []

    def route(route):
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    return outside


def wait_for_service_worker(page) -> bool:
    try:
        page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.controller !== null", timeout=PAGE_TIMEOUT_MS)
        return True
    except Exception:
        return False


def prove_page_use(browser, url: str, digits: list[tuple[str, list[dict]]], *, screenshots: Path | None = None) -> PageUse:
    """Draw `digits` with the mouse in a fresh browser profile, then reload offline and draw again."""
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    outside = only_this_host(context, url)
    try:
        page = context.new_page()
        open_app(page, url)
        drawn = [(label, read_drawing(page, strokes)) for label, strokes in digits]
        if screenshots:
            page.screenshot(path=str(screenshots / "web-mouse.png"), full_page=True)
        worker = wait_for_service_worker(page)
        offline = []
        if worker:
            context.set_offline(True)
            try:
                open_app(page, url)
                label, strokes = digits[0]
                offline.append((label, read_drawing(page, strokes)))
                if screenshots:
                    page.screenshot(path=str(screenshots / "web-offline.png"), full_page=True)
            finally:
                context.set_offline(False)
        return PageUse(drawn, offline, worker, outside)
    finally:
        context.close()
