"""Re-check an export from its files alone, with the runtime dependencies only (no TensorFlow),
so it can run on the target device: every artifact's sha256 against the manifest, and its test
accuracy recomputed through its own runtime and compared with the manifest's figure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from export.parity import accuracy
from mnist_edge.errors import MnistEdgeError
from runtime.backends import open_session
from runtime.manifest import read_manifest, read_verified
from trainer.data import fingerprint, load_dataset, scale_images

# Another CPU or library build may round a borderline image the other way; allow a few.
ACCURACY_TOLERANCE = 0.0005  # 5 of 10,000 test images


class VerifyFailed(MnistEdgeError):
    """One or more artifacts are tampered with, missing, or no longer reach their accuracy."""


@dataclass(frozen=True)
class ArtifactCheck:
    file: str
    ok: bool
    detail: str
    accuracy: float | None = None
    expected_accuracy: float | None = None


def verify_export(
    export_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    tolerance: float = ACCURACY_TOLERANCE,
    backends: tuple[str, ...] = ("onnx", "litert"),
) -> list[ArtifactCheck]:
    """Check every artifact of the export; return one ArtifactCheck per artifact.

    A LiteRT artifact on a machine without `ai-edge-litert` is reported as not checked (a
    failure), never as passing."""
    manifest = read_manifest(export_dir)
    dataset = load_dataset(data_dir, download=False)
    expected_fingerprint = manifest.data.get("test_set", {}).get("sha256")
    if expected_fingerprint and fingerprint(dataset.test) != expected_fingerprint:
        raise VerifyFailed(
            f"the test set at {dataset.source} is not the one this export was measured on "
            f"({manifest.data['test_set'].get('source')}); point --data-dir at the same data"
        )
    test_x = scale_images(dataset.test.images)
    results = []
    for artifact in manifest.artifacts:
        try:
            content = read_verified(manifest, artifact)
            if artifact.backend not in backends:
                results.append(ArtifactCheck(artifact.file, True, f"sha256 ok; accuracy skipped (--backend {backends[0]})"))
                continue
            session = open_session(artifact.backend, content, name=artifact.file, format=artifact.format)
            measured = accuracy(session.run(test_x), dataset.test.labels)
        except MnistEdgeError as exc:  # IntegrityError, ModelLoadError, MissingExtraError
            results.append(ArtifactCheck(artifact.file, False, str(exc)))
            continue
        expected = artifact.test_accuracy
        if expected is None:
            results.append(ArtifactCheck(artifact.file, False, "manifest has no test_accuracy", measured))
        elif abs(measured - expected) > tolerance:
            results.append(
                ArtifactCheck(
                    artifact.file, False,
                    f"test accuracy {measured:.4%} differs from the manifest's {expected:.4%} by "
                    f"{abs(measured - expected) * 100:.2f} points (tolerance {tolerance * 100:.2f})",
                    measured, expected,
                )
            )
        else:
            results.append(ArtifactCheck(artifact.file, True, "sha256 ok, accuracy reproduced", measured, expected))
    return results

