"""Proof, in a real Chromium, that the web app computes what the Python runtime computes.

- Model parity: every artifact of each bundled export, run by each browser engine that takes its
  format (onnxruntime-web, LiteRT.js) on the whole test set, against the Python engine's run of
  the same file on the same inputs. An engine that cannot run a file is recorded with its error.
- Preprocessing parity: digits drawn as strokes on the page's own canvas (traced from MNIST test
  digits, at varied sizes, positions and pen widths); the page's 28x28 against Python `to_mnist`
  on the PNG of the same canvas, and the class the model gives each.
- Page use: digits drawn with the mouse on the page read back as the right class; then a reload
  with the network off, and another drawing read right.

`mnist-edge web` runs them (when Chromium is there) and writes site/parity.md and parity.json;
the tests call the same functions. Nothing here is reported unless it ran.

The proofs live one kind per module: `web_chromium` (finding and launching Chromium),
`web_proof_server` (what the proof server mounts), `web_model_parity`, `web_strokes` (drawings
traced from MNIST), `web_preprocessing_parity`, `web_page_use`, `web_report`. This module runs
them all for a staged site (`run_proofs`) and hands the build its steps (`STEPS`); it never
imports the build.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_edge import formats

from .web_chromium import (  # noqa: F401 (the proofs' public names, in one place)
    CHROMIUM_ARGS, CHROMIUM_ENV, CHROMIUM_NAMES, PAGE_TIMEOUT_MS, BrowserProofFailed, BrowserUnavailable, chromium,
    find_chromium, launch, open_app,
)
from .web_model_parity import (  # noqa: F401
    MAX_ABS_DIFF, MIN_AGREEMENT, MODEL_BATCH, EngineRun, browser_limits, prove_models, reference_probabilities,
)
from .web_page_use import (  # noqa: F401
    PAGE_USE_DIGITS, PageUse, canvas_box, draw_with_mouse, draw_with_touch, only_this_host, prove_page_use, read_drawing,
    to_screen, wait_for_service_worker,
)
from .web_preprocessing_parity import (  # noqa: F401
    DRAWINGS, MAX_MEAN_PIXEL_DIFF, MIN_SAME_PREDICTION, PREPARE_ON_PAGE, PreprocessingParity, prove_preprocessing,
)
from .web_proof_server import PROOF_PREFIXES, engine_runtime_urls, proof_mounts, write_test_images  # noqa: F401
from .web_report import (  # noqa: F401
    ProofReport, compatibility_table, parity_markdown, record_in_manifests, write_report,
)
from .web_source import manifests_of, package_version
from .web_strokes import CANVAS, PEN_WIDTHS, digit_strokes, readable_digits, render_strokes, skeleton_paths, thin  # noqa: F401


# --- everything, for the build ----------------------------------------------------------------


def run_proofs(site: Path, models, node_modules: Path, dataset, *, screenshots: Path | None = None) -> ProofReport:
    """Every proof for a staged site (see module docstring). Raises BrowserUnavailable."""
    from mnist_edge import runtime
    from mnist_edge.data import scale_images
    from mnist_edge.demo.web_server import SiteServer

    started = time.monotonic()
    manifests = manifests_of(models)
    x = scale_images(dataset.test.images)
    labels = dataset.test.labels
    predictor = runtime.load(manifests[0].root)
    # Page use draws digits: for a model of drawn digits only (not Fashion-MNIST's "plain" pictures).
    digits = None
    if predictor.manifest.input.preprocessing.kind == "digit":
        digits = readable_digits(predictor, dataset.test.images, labels, PAGE_USE_DIGITS)
    versions = {spec.npm_package: package_version(node_modules, spec.npm_package) for spec in formats.BROWSER_ENGINES.values()}
    with tempfile.TemporaryDirectory(prefix="mnist-edge-proofs-") as tmp, chromium() as browser:
        work = Path(tmp)
        data_file = write_test_images(x, work)
        with SiteServer(proof_mounts(site, manifests, node_modules, work), csp_exempt=PROOF_PREFIXES) as server:
            page = browser.new_page()
            runs = prove_models(page, server.url, site, manifests, x, labels, data_file)
            open_app(page, server.url)
            preprocessing = prove_preprocessing(page, predictor, dataset.test.images)
            page.close()
            page_use = prove_page_use(browser, server.url, digits, screenshots=screenshots) if digits else None
        report = ProofReport(
            chromium=browser.version, versions=versions, images=len(x), runs=runs,
            preprocessing=preprocessing, page_use=page_use, seconds=time.monotonic() - started,
        )
    record_in_manifests(site, runs, versions, report.chromium)
    return report


@dataclass(frozen=True)
class ProofSteps:
    """What the build needs from the proofs, passed to it as an argument (web_build.build_site's
    `steps`), so the build never imports them."""

    chromium_binary: Callable[[], str | None]  # the Chromium the proofs would use, or None
    run: Callable[..., ProofReport]  # (staged site, models, node_modules, dataset, screenshots=) -> report
    not_run: Callable[[str], ProofReport]  # why no proof ran -> the report saying so
    write_report: Callable[[Path, ProofReport, list], None]
    failed: type[Exception]  # raised when a proof failed: the site is not published
    unavailable: type[Exception]  # raised by `run` when Chromium cannot be used


STEPS = ProofSteps(
    chromium_binary=find_chromium,
    run=run_proofs,
    not_run=lambda reason: ProofReport(not_run=reason),
    write_report=write_report,
    failed=BrowserProofFailed,
    unavailable=BrowserUnavailable,
)
