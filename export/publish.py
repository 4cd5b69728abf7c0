"""The export's last step: the manifest, parity.md, and an atomic publish or a kept rejection.

`Staging` is the folder an export is built in, next to `export/`:

    with Staging(model_dir) as staging:       # also removes what killed exports left behind
        ... make files in staging.folder (intermediates in staging.scratch) ...
        staging.write(manifest, failures)
        staging.reject(failures)               # -> export.rejected/, raises ExportFailed
        staging.publish()                      # -> export/, swapped in with renames

The published `export/` is never modified in place: it is replaced whole, or left as it was.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TextIO

from mnist_edge import __version__
from mnist_edge.data import Dataset, fingerprint
from mnist_edge.errors import MnistEdgeError
from mnist_edge.files import FolderNotReplaceable, atomic_write_text, check_replaceable, process_alive, written_by_toolkit
from mnist_edge.manifest import (
    EXPORT_DIR,
    SCHEMA_VERSION,
    Artifact,
    DataInfo,
    InputSpec,
    Manifest,
    ModelInfo,
    OutputSpec,
    write_manifest,
)
from mnist_edge.termination import deferred_stops

REJECTED_DIR = "export.rejected"
PREVIOUS_DIR = "export.previous"
STAGING_PREFIX = ".export-staging-"
PARITY_FILE = "parity.md"


class ExportFailed(MnistEdgeError):
    """At least one artifact could not be made or failed its checks; nothing was published."""

    def __init__(self, failures: list[str], rejected: Path):
        self.failures = failures
        self.rejected = rejected
        super().__init__(
            f"export rejected, previous export left in place; {len(failures)} check(s) failed: "
            + "; ".join(failures)
            + f" (files kept in {rejected})"
        )


# --- the manifest --------------------------------------------------------------------------------


def library_versions() -> dict[str, str]:
    """The installed versions of the packages that made and proved the files (from the registry)."""
    from mnist_edge.formats import CONVERTER_DISTRIBUTIONS, ENGINES

    versions = {}
    for name in (*CONVERTER_DISTRIBUTIONS, *(engine.distribution for engine in ENGINES.values())):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(
    *,
    model_dir: Path,
    keras_model,
    keras_accuracy: float,
    record,
    dataset: Dataset,
    artifacts: list[Artifact],
    thresholds,
    calibration: dict,
    opset: int | None,
    input_name: str,
    output_name: str,
) -> Manifest:
    from mnist_edge.files import sha256_file

    classes = len(record.class_names)
    return Manifest(
        schema_version=SCHEMA_VERSION,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        toolkit={"name": "mnist-edge", "version": __version__},
        libraries=library_versions(),
        platform={"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()},
        model=ModelInfo(
            name=model_dir.name,
            file="model.keras",
            sha256=sha256_file(model_dir / "model.keras"),
            params=int(keras_model.count_params()),
            test_accuracy=round(keras_accuracy, 6),
            accuracy_is=record.accuracy_is,
            recipe_mean=record.recipe_mean,
        ),
        input=InputSpec.for_images(input_name, *(int(d) for d in keras_model.input_shape[1:]), record.preprocessing),
        output=OutputSpec(output_name, (None, classes), "float32"),
        class_names=tuple(record.class_names),
        test_set=DataInfo(dataset.source, int(len(dataset.test)), fingerprint(dataset.test)),
        calibration=calibration,
        thresholds=thresholds.as_dict(),
        onnx_opset=opset,
        artifacts=tuple(artifacts),
    )


# --- parity.md and the progress lines ------------------------------------------------------------


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def print_artifact_line(file: str, artifact: Artifact | None, failures: list[str], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    verdict = "pass" if not failures else "FAIL"
    if artifact is None:
        print(f"  {file:<20} {verdict}: {'; '.join(failures)}", file=stream, flush=True)
        return
    p = artifact.parity
    print(
        f"  {file:<20} {artifact.bytes / 1024:9.1f} KiB  accuracy {p.test_accuracy:.4f}  "
        f"agreement {p.argmax_agreement:.4%}  max|Δp| {p.max_abs_diff:.2e}  {artifact.export_seconds:5.1f}s  {verdict}",
        file=stream,
        flush=True,
    )


def _recipe_mean_text(recipe_mean: dict | None) -> str:
    """', this seed's result; its recipe averages X% +- Y over N seeds', or '' when not recorded."""
    if not recipe_mean:
        return ""
    return (
        f", this seed's result; its recipe averages {recipe_mean['test_accuracy_mean']:.2%} "
        f"± {recipe_mean['test_accuracy_sd'] * 100:.2f} points over {len(recipe_mean['seeds'])} seeds"
    )


def render_parity(manifest: Manifest, failures: list[str] = ()) -> str:
    """parity.md: every artifact against the Keras model on the full test set."""
    from mnist_edge.formats import ENGINES

    model, test = manifest.model, manifest.test_set
    lines = [
        f"# Parity of the {model.name} export against Keras",
        "",
        f"Every artifact was run through its own engine on all {test.images:,} test images "
        f"({test.source}) and compared with the Keras model ({model.file}, test accuracy "
        f"{model.test_accuracy:.2%}{_recipe_mean_text(model.recipe_mean)}). "
        f"Thresholds: {_thresholds_text(manifest.thresholds)}.",
        "",
        "| artifact | format | precision | engine | size | vs fp32 | accuracy | Δ accuracy | argmax agreement "
        "| max abs Δp | mean abs Δp | export s | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in manifest.artifacts:
        p = a.parity
        ratio = "" if a.size_ratio is None else f"{a.size_ratio:.1%}"
        result = "pass" if p.passed else f"**FAIL**: {p.failure}"
        lines.append(
            f"| `{a.file}` | {a.format} | {a.precision} | {ENGINES[a.engine].label} | {_kb(a.bytes)} | {ratio} "
            f"| {p.test_accuracy:.2%} | {p.accuracy_delta * 100:+.2f} pts | {p.argmax_agreement:.2%} "
            f"({p.changed_predictions} changed) | {p.max_abs_diff:.2e} | {p.mean_abs_diff:.2e} "
            f"| {a.export_seconds:.1f} | {result} |"
        )
    lines += _same_file_lines(manifest) + _reader_lines(manifest.reader)
    listed = {a.file for a in manifest.artifacts} | ({manifest.reader.file} if manifest.reader else set())
    unlisted = [f for f in failures if f.split(":")[0] not in listed]
    if unlisted:
        lines += ["", "Not made or not comparable:", ""] + [f"- {f}" for f in unlisted]
    return "\n".join(lines) + "\n"


def published_line(manifest: Manifest, model_dir: Path) -> str:
    reader = f" and the number reader ({manifest.reader.file})" if manifest.reader else ""
    return f"Published {len(manifest.artifacts)} artifacts{reader} to {model_dir / EXPORT_DIR}"


def _reader_lines(reader) -> list[str]:
    """The number reader's proof, under the table: fields read whole, three ways, by group."""
    if reader is None:
        return []
    proof = reader.proof
    groups = ("all", "separated", "touching or overlapping")

    def row(name: str, figures: dict) -> str:
        return f"| {name} | " + " | ".join(f"{figures[g]:.1%}" if g in figures else "" for g in groups) + " |"

    result = "pass" if proof.passed else f"**FAIL**: {proof.failure}"
    return [
        "",
        f"## The number reader: `{reader.file}` ({_kb(reader.bytes)}, {reader.params:,} parameters)",
        "",
        f"Read by {proof.engine} (docs/reading.md) on {proof.fields:,} generated fields of MNIST test digits "
        f"(seed {proof.seed}); ONNX and Keras read the same text on {proof.keras_agreement:.1%} of them. Trained on "
        f"{reader.trained_on}. Result: {result}.",
        "",
        "| fields read whole | " + " | ".join(groups) + " |",
        "|---|---|---|---|",
        row("digit by digit", proof.digits),
        row("the sequence model alone", proof.sequence),
        row("**both combined (`read`)**", proof.combined),
    ]


def _same_file_lines(manifest: Manifest) -> list[str]:
    """The proofs against another engine's run of the same file, under the table."""
    from mnist_edge.formats import ENGINES

    lines = []
    for a in manifest.artifacts:
        for p in a.proofs[1:]:
            result = "pass" if p.passed else f"**FAIL**: {p.failure}"
            lines.append(
                f"- `{a.file}` in {ENGINES[p.engine].label} against {ENGINES[p.reference].label}'s run of the file it "
                f"was made from: argmax agreement {p.argmax_agreement:.2%} ({p.changed_predictions} changed), "
                f"max abs Δp {p.max_abs_diff:.2e}: {result}"
            )
    return ["", *lines] if lines else []


# How parity.md states each check of mnist_edge.formats.PROOF_RULES, given its limit.
RULE_TEXT = {
    "argmax_agreement": lambda limit: f"argmax agreement ≥ {limit:.2%}",
    "max_abs_diff": lambda limit: f"max |Δp| ≤ {limit:g}",
    "accuracy_drop": lambda limit: f"accuracy drop ≤ {limit * 100:.2f} points",
    "size_ratio": lambda limit: f"size ≤ {limit:.0%} of fp32",
}


def _thresholds_text(t: dict) -> str:
    """Every precision's proof rules with the limits this export used, from the registry's table."""
    from mnist_edge.formats import PROOF_RULES, SAME_FILE_RULES

    tables = {**PROOF_RULES, "two engines on one file": SAME_FILE_RULES}
    return "; ".join(
        f"{what} " + ", ".join(RULE_TEXT[check](t[limit]) for check, limit in rules if limit in t)
        for what, rules in tables.items()
    )


# --- staging, publishing, rejecting --------------------------------------------------------------


class ExportWriteError(MnistEdgeError):
    """The export cannot be written where it goes (a read-only or full disk, a folder in the way)."""


def check_target(model_dir: Path, data: Path | None = None) -> None:
    """Before any work: export/ (and export.rejected/) may be replaced only if they are absent or
    an export this toolkit wrote, never the data the export reads; and `model_dir` must be writable."""
    for name in (EXPORT_DIR, REJECTED_DIR, PREVIOUS_DIR):
        check_replaceable(model_dir / name, protected=(data,) if data else (), option="export", advice="move it away")
    if not model_dir.is_dir():
        return  # no model here: the exporter says so in its own words
    try:
        with deferred_stops():  # a stop between the two calls would leave the probe behind
            os.rmdir(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=model_dir))
    except OSError as exc:
        raise ExportWriteError(f"cannot write in {model_dir} ({exc.strerror or exc}); nothing was changed") from exc


def _remove_own(folder: Path) -> None:
    """Remove a folder an export wrote (export.previous, export.rejected); refuse any other."""
    if os.path.lexists(folder) and not written_by_toolkit(folder):
        raise FolderNotReplaceable(f"{folder} exists and was not written by mnist-edge; move it away (nothing was changed)")
    shutil.rmtree(folder, ignore_errors=True)


def clean_leftovers(model_dir: Path) -> list[Path]:
    """Remove what an export killed mid-way left in `model_dir`: staging folders of processes
    that are gone, and a previous export orphaned between the two renames of a publish (it is put
    back if no export stands in its place). The published export is never touched."""
    removed = []
    for folder in model_dir.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name[len(STAGING_PREFIX) :].split("-")[0]
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    previous, target = model_dir / PREVIOUS_DIR, model_dir / EXPORT_DIR
    if previous.is_dir() and written_by_toolkit(previous):
        if target.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(previous, target)
    return removed


def remove_tree(folder: Path, attempts: int = 5) -> None:
    """Remove `folder` even while a thread that is being stopped still adds files to it: a single
    rmtree fails with "directory not empty" and would leave a part behind."""
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            return
        time.sleep(0.05)


class Staging:
    """The folder an export is built in; removed on exit unless published or rejected. The
    exporter runs the converters inside `termination.exit_at_once(staging.remove)`, so a SIGTERM
    or Ctrl+C among them removes it too."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)

    def __enter__(self) -> "Staging":
        try:
            clean_leftovers(self.model_dir)
            self.folder = None
            try:
                # __exit__ does not run when __enter__ raises: a stop (held back while the folder is
                # made, raised as they end) or a failed mkdir removes the folder here.
                with deferred_stops():
                    self.folder = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.model_dir))
                    self.scratch = self.folder / ".scratch"
                    self.scratch.mkdir()
                return self
            except BaseException:
                if self.folder is not None:
                    remove_tree(self.folder)
                raise
        except OSError as exc:
            raise ExportWriteError(f"cannot write in {self.model_dir} ({exc.strerror or exc}); nothing was changed") from exc

    def remove(self) -> None:
        """Remove the staging folder and put back a previous export caught between the two
        renames of a publish."""
        remove_tree(self.folder)
        clean_leftovers(self.model_dir)

    def __exit__(self, exc_type, exc, traceback) -> None:
        remove_tree(self.folder)
        if exc_type is not None and issubclass(exc_type, OSError):  # a full or read-only disk: one line
            raise ExportWriteError(
                f"cannot write the export in {self.model_dir} ({exc.strerror or exc}); the previous export is left in place"
            ) from exc

    def write(self, manifest: Manifest, failures: list[str]) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        write_manifest(self.folder, manifest)
        atomic_write_text(self.folder / PARITY_FILE, render_parity(manifest, failures))

    def reject(self, failures: list[str]) -> None:
        """Keep the files for inspection in export.rejected/ and raise ExportFailed."""
        rejected = self.model_dir / REJECTED_DIR
        _remove_own(rejected)
        os.replace(self.folder, rejected)
        raise ExportFailed(failures, rejected)

    def publish(self) -> None:
        """Swap the staging folder in for export/ with renames, never a half-written folder."""
        os.chmod(self.folder, 0o755)  # mkdtemp made it private; an export is meant to be shared
        target = self.model_dir / EXPORT_DIR
        previous = self.model_dir / PREVIOUS_DIR
        check_replaceable(target, option="export", advice="move it away")  # again: it may have changed meanwhile
        _remove_own(previous)
        if target.exists():
            os.replace(target, previous)
        os.replace(self.folder, target)
        shutil.rmtree(previous, ignore_errors=True)
        _remove_own(self.model_dir / REJECTED_DIR)
