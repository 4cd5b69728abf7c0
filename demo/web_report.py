"""What the build proved, recorded: the report (site/parity.md and parity.json), the compatibility
table, and each bundled manifest's browser proofs. Nothing is reported unless it ran."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mnist_edge import formats
from mnist_edge.manifest import Manifest, Proof

from .web_chromium import BrowserProofFailed  # noqa: F401 (raised by the build on a failed report)
from .web_model_parity import MAX_ABS_DIFF, MIN_AGREEMENT, EngineRun
from .web_page_use import PageUse
from .web_preprocessing_parity import MAX_MEAN_PIXEL_DIFF, MIN_SAME_PREDICTION, PreprocessingParity
from .web_strokes import PEN_WIDTHS





@dataclass
class ProofReport:
    """Everything the build proved (or why it proved nothing)."""

    not_run: str | None = None
    chromium: str | None = None
    versions: dict = field(default_factory=dict)  # npm package -> version
    images: int = 0
    runs: list[EngineRun] = field(default_factory=list)
    preprocessing: PreprocessingParity | None = None
    page_use: PageUse | None = None
    seconds: float = 0.0

    def failures(self) -> list[str]:
        problems = []
        for run in self.runs:
            if run.passed:
                continue
            why = run.proof.failure if run.proof else f"cannot run it: {run.cannot_run}"
            problems.append(f"{run.model}/{run.file} in {formats.BROWSER_ENGINES[run.engine].label}: {why}")
        if self.preprocessing and not self.preprocessing.passed:
            p = self.preprocessing
            problems.append(
                f"preprocessing: mean |delta| {p.mean_abs_diff:.3g} (limit {MAX_MEAN_PIXEL_DIFF}), same class "
                f"{p.same_prediction:.2%} (limit {MIN_SAME_PREDICTION:.1%}), {p.no_digit_one_side} drawings refused by one side only"
            )
        if self.page_use and not self.page_use.passed:
            use = self.page_use
            problems.append(f"page use: drawn {use.drawn}, offline {use.offline_drawn}, service worker "
                            f"{'active' if use.service_worker else 'never took control'}, requests elsewhere {use.outside_requests}")
        return problems

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.not_run is None and not self.failures()
        return data


def record_in_manifests(site: Path, runs: list[EngineRun], versions: dict, chromium: str) -> None:
    """Append each bundled artifact's browser proofs to the site's copy of its manifest."""
    import dataclasses

    from mnist_edge.manifest import read_manifest, write_manifest

    for folder in sorted((site / "models").iterdir()):
        manifest = read_manifest(folder)
        artifacts = []
        for artifact in manifest.artifacts:
            extra = tuple(r.proof for r in runs if r.model == manifest.name and r.file == artifact.file and r.proof)
            artifacts.append(dataclasses.replace(artifact, proofs=artifact.proofs + extra))
        libraries = {**manifest.libraries, **versions, "chromium": chromium}
        write_manifest(folder, dataclasses.replace(manifest, artifacts=tuple(artifacts), libraries=libraries))


def compatibility_table(manifest: Manifest, runs: list[EngineRun]) -> str:
    """Markdown: every artifact of one export x every engine, from the export's proofs (Python
    engines, against Keras) and the browser runs (against the Python engine)."""
    engines = [(name, e.label) for name, e in formats.ENGINES.items()]
    browsers = [(name, f"{e.label} (Chromium)") for name, e in formats.BROWSER_ENGINES.items()]
    lines = [
        "| artifact | " + " | ".join(label for _, label in engines + browsers) + " |",
        "|---|" + "---|" * (len(engines) + len(browsers)),
    ]
    for artifact in manifest.artifacts:
        cells = []
        for name, _ in engines:
            proof = next((p for p in artifact.proofs if p.engine == name), None)
            cells.append(_cell(proof) if proof else "–")
        for name, _ in browsers:
            run = next((r for r in runs if r.model == manifest.name and r.file == artifact.file and r.engine == name), None)
            if run is None:
                cells.append("–")
            elif run.proof is None:
                cells.append(f"cannot run: {run.cannot_run}")
            else:
                cells.append(_cell(run.proof))
        lines.append(f"| `{artifact.file}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(proof: Proof) -> str:
    mark = "✓" if proof.passed else "✗ FAILED"
    return f"{mark} {proof.argmax_agreement:.2%}, max \\|Δp\\| {proof.max_abs_diff:.2g} (vs {proof.reference})"


def parity_markdown(report: ProofReport, manifests: list[Manifest]) -> str:
    lines = ["# What this site was proven to compute", ""]
    if report.not_run:
        lines += [
            f"**No browser proof ran**: {report.not_run}.",
            "",
            "Nothing on this page is measured in a browser. The export proofs below (Python engines against Keras) "
            "come from each model's manifest.",
            "",
        ]
    else:
        versions = ", ".join(f"{name} {version}" for name, version in report.versions.items())
        lines += [f"Measured in headless Chromium {report.chromium} with {versions}, in {report.seconds:.0f} s.", ""]
        lines += _model_parity_lines(report)
        lines += _preprocessing_lines(report.preprocessing)
        lines += _page_use_lines(report.page_use)
    lines += ["## Compatibility: every artifact in every engine it was proven in", ""]
    lines += [
        "Python engines: the export's proof against the Keras model on the test set. Browser engines: the same file "
        "in Chromium against the Python engine's run of it on the same inputs. A percentage is the argmax agreement.",
        "",
    ]
    for manifest in manifests:
        lines += [f"### {manifest.name}", "", compatibility_table(manifest, report.runs), ""]
    return "\n".join(lines)


def _float_precisions() -> str:
    """The precisions whose files are held to MAX_ABS_DIFF, in words: "fp32 and fp16"."""
    names = [p for p in formats.PRECISIONS if p not in formats.INTEGER_PRECISIONS]
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def _model_parity_lines(report: ProofReport) -> list[str]:
    lines = [
        f"## Model parity: the browser against Python, on the {report.images:,}-image test set",
        "",
        f"Limits: {MIN_AGREEMENT:.0%} argmax agreement; max |Δp| ≤ {MAX_ABS_DIFF:g} for {_float_precisions()} files.",
        "",
        "| model | artifact | engine | compared with | agreement | changed | max \\|Δp\\| | mean \\|Δp\\| | accuracy | load ms | run ms | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report.runs:
        label = formats.BROWSER_ENGINES[run.engine].label
        if run.proof is None:
            verdict = "not supported (expected)" if run.passed else "FAILED"
            lines.append(f"| {run.model} | `{run.file}` | {label} | {run.reference} | – | – | – | – | – | – | – | {verdict}: {run.cannot_run} |")
            continue
        p = run.proof
        lines.append(
            f"| {run.model} | `{run.file}` | {label} | {p.reference} | {p.argmax_agreement:.2%} | {p.changed_predictions} | "
            f"{p.max_abs_diff:.2g} | {p.mean_abs_diff:.2g} | {p.test_accuracy:.2%} | {run.load_ms:.0f} | {run.run_ms:.0f} | "
            f"{'passed' if p.passed else 'FAILED: ' + (p.failure or '')} |"
        )
    return lines + [""]


def _preprocessing_lines(p: PreprocessingParity | None) -> list[str]:
    if p is None:
        return []
    return [
        "## Preprocessing parity: the page's canvas, JavaScript against Python `to_mnist`",
        "",
        f"{p.drawings} MNIST test digits traced as strokes on the page's canvas (pen {min(PEN_WIDTHS)}-{max(PEN_WIDTHS)} px, "
        f"varied size, position and slant); the page's model input against Python's on the PNG of the same canvas, "
        f"and the class the {p.model} model gives each.",
        "",
        "| drawings compared | refused by both | refused by one side | mean \\|Δ\\| per pixel | worst drawing's mean | max \\|Δ\\| | same class | page preprocessing (median) | result |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {p.compared} | {p.no_digit_both} | {p.no_digit_one_side} | {p.mean_abs_diff:.2g} | {p.worst_mean_abs_diff:.2g} | "
        f"{p.max_abs_diff:.2g} | {p.same_prediction:.2%} | {p.js_ms_median:.1f} ms | {'passed' if p.passed else 'FAILED'} |",
        "",
        f"Limits: mean |Δ| ≤ {MAX_MEAN_PIXEL_DIFF}, same class for ≥ {MIN_SAME_PREDICTION:.1%}.",
        "",
    ]


def _page_use_lines(use: PageUse | None) -> list[str]:
    if use is None:
        return []
    drawn = ", ".join(f"{a} read as {b}" for a, b in use.drawn)
    offline = ", ".join(f"{a} read as {b}" for a, b in use.offline_drawn) or "not run (no service worker)"
    return [
        "## The page used as a person would",
        "",
        f"- Mouse strokes on the pad: {drawn}.",
        f"- Reload with the network off (service worker {'in control' if use.service_worker else 'never took control'}): {offline}.",
        f"- Requests to any other host than the site's: {len(use.outside_requests)}.",
        f"- Result: {'passed' if use.passed else 'FAILED'}.",
        "",
    ]


def write_report(site: Path, report: ProofReport, manifests: list[Manifest]) -> None:
    from mnist_edge.files import atomic_write_text

    atomic_write_text(site / "parity.md", parity_markdown(report, manifests))
    atomic_write_text(site / "parity.json", json.dumps(report.to_dict(), indent=2, default=str) + "\n")
