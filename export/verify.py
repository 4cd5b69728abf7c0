"""Re-check an export from its files alone, with the runtime dependencies only (no TensorFlow),
so it can run on the target device: every artifact's size and sha256 against the manifest, the
loaded model against the manifest's input and output, and its test accuracy recomputed through
its own engine and compared with the manifest's figure.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mnist_edge import formats
from mnist_edge.data import fingerprint, load_measured_on, scale_images
from mnist_edge.errors import MnistEdgeError
from mnist_edge.export.parity import accuracy
from mnist_edge.files import sha256_file
from mnist_edge.manifest import Manifest, read_manifest, read_manifest_json
from mnist_edge.runtime import load
from mnist_edge.runtime.integrity import read_verified
from mnist_edge.signature import verify_signature

# Another CPU or library build may round a borderline image the other way; allow a few.
ACCURACY_TOLERANCE = 0.0005  # 5 of 10,000 test images


class VerifyFailed(MnistEdgeError):
    """One or more artifacts are tampered with, missing, or no longer reach their accuracy."""


@dataclass(frozen=True)
class ArtifactCheck:
    file: str
    status: str  # "ok": checksum and accuracy; "sha256": checksum only; "skipped": unknown kind; "FAIL"
    detail: str
    accuracy: float | None = None

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"


def verify_export(
    export_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    tolerance: float = ACCURACY_TOLERANCE,
    engines: tuple[str, ...] | None = None,
    public_key: str | os.PathLike | None = None,
) -> list[ArtifactCheck]:
    """Check every artifact of the export; return one ArtifactCheck per artifact.

    With `public_key` the export's signature is checked first, over every file (SignatureError
    if it is unsigned, signed by another key, or a file changed, was added or removed), and each
    artifact is loaded through the same check.

    Artifacts of engines not in `engines`, and of kinds this version does not know, get their
    size and sha256 checked only. An artifact whose manifest records a failed proof fails. A
    LiteRT artifact on a machine without `ai-edge-litert` is reported as not checked (a
    failure), never as passing. The test set is the one the manifest records (see
    mnist_edge.data.load_measured_on), refused unless its fingerprint matches."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise VerifyFailed(f"--tolerance must be a finite number of at least 0, got {tolerance}")
    engines = tuple(formats.ENGINES) if engines is None else engines  # the registry as it is now
    if public_key:
        manifest = verify_signature(export_dir, public_key=public_key).read_manifest()
    else:
        manifest = read_manifest(export_dir)
    dataset = measured_test_set(manifest, data_dir)
    test_x = scale_images(dataset.test.images)
    results = check_skipped(export_dir, manifest)
    for artifact in manifest.artifacts:
        failed = [p for p in artifact.proofs if not p.passed]
        if failed:
            results.append(ArtifactCheck(artifact.file, "FAIL", f"the manifest records a failed proof: {failed[0].failure or failed[0].engine}"))
            continue
        try:
            if artifact.engine not in engines:
                read_verified(manifest, artifact)
                results.append(ArtifactCheck(artifact.file, "sha256", f"sha256 ok; accuracy not run (--engine {','.join(engines)})"))
                continue
            predictor = load(export_dir, file=artifact.file, public_key=public_key)
            measured = accuracy(predictor.predict_array(test_x), dataset.test.labels)
        except MnistEdgeError as exc:  # IntegrityError, ModelLoadError, MissingExtraError
            results.append(ArtifactCheck(artifact.file, "FAIL", str(exc)))
            continue
        expected = artifact.test_accuracy
        if abs(measured - expected) > tolerance:
            results.append(
                ArtifactCheck(
                    artifact.file, "FAIL",
                    f"test accuracy {measured:.4%} differs from the manifest's {expected:.4%} by "
                    f"{abs(measured - expected) * 100:.2f} points (tolerance {tolerance * 100:.2f})",
                    measured,
                )
            )
        else:
            results.append(ArtifactCheck(artifact.file, "ok", "sha256 ok, accuracy reproduced", measured))
    if manifest.reader is not None:
        results.append(check_reader(export_dir, manifest, dataset, public_key))
    return results


def check_reader(export_dir, manifest: Manifest, dataset, public_key) -> ArtifactCheck:
    """The number reader: its recorded proof, its bytes, and its fields read again by the runtime."""
    from mnist_edge.export.reader import verify_reader

    reader = manifest.reader
    if not reader.proof.passed:
        return ArtifactCheck(reader.file, "FAIL", f"the manifest records a failed proof: {reader.proof.failure}")
    try:
        predictor = load(export_dir, file=formats.reader_partner().file, public_key=public_key)
        status, detail = verify_reader(predictor, dataset)
    except MnistEdgeError as exc:
        return ArtifactCheck(reader.file, "FAIL", str(exc))
    return ArtifactCheck(reader.file, status, detail, reader.proof.combined.get("all"))


def measured_test_set(manifest: Manifest, data_dir: str | os.PathLike | None):
    """The test set the export was measured on, refused unless its fingerprint matches."""
    dataset = load_measured_on(manifest.test_set.source, manifest.test_set.sha256, data_dir)
    if fingerprint(dataset.test) != manifest.test_set.sha256:
        raise VerifyFailed(
            f"the test set at {dataset.source} is not the one this export was measured on "
            f"({manifest.test_set.source}); point --data-dir at the same data"
        )
    return dataset


def check_skipped(export_dir: str | os.PathLike, manifest: Manifest) -> list[ArtifactCheck]:
    """The artifacts of kinds this version does not know: not run, but their size and sha256
    are still checked (a tampered file is caught whoever runs it)."""
    _, data = read_manifest_json(export_dir)
    known = {a.file for a in manifest.artifacts}
    checks = []
    for entry in data["artifacts"]:
        file = entry.get("file")
        if file in known:
            continue
        kind = f"{entry.get('format')}/{entry.get('precision')}"
        problem = _hash_problem(manifest.root, entry)
        if problem:
            checks.append(ArtifactCheck(str(file), "FAIL", f"{kind}, a kind this version does not run: {problem}"))
        else:
            checks.append(ArtifactCheck(file, "skipped", f"sha256 ok; {kind} is a kind this version of mnist-edge does not run"))
    return checks


def _hash_problem(root: Path, entry: dict) -> str | None:
    """Why an artifact entry's file does not match its recorded size and sha256, or None."""
    file, size, digest = entry.get("file"), entry.get("bytes"), entry.get("sha256")
    if not isinstance(file, str) or "\x00" in file or Path(file).name != file or file in ("", ".", ".."):
        return f"file {file!r} is not a plain name inside the export folder"
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(digest, str):
        return "the manifest gives no size and sha256 to check it against"
    path = root / file
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is not a regular file"
        if info.st_size != size:
            return f"{path}: size {info.st_size} bytes differs from the manifest's {size}"
        if sha256_file(path) != digest:
            return f"{path}: sha256 does not match the manifest's; the file was modified"
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror or exc})"
    return None
