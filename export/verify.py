"""Re-check an export from its files alone, with the runtime dependencies only (no TensorFlow),
so it can run on the target device: every artifact's size and sha256 against the manifest, the
loaded model against the manifest's input and output, and its test accuracy recomputed through
its own engine and compared with the manifest's figure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mnist_edge import formats
from mnist_edge.data import fingerprint, load_dataset, scale_images
from mnist_edge.errors import MnistEdgeError
from mnist_edge.export.parity import accuracy
from mnist_edge.manifest import read_manifest
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

    Artifacts of engines not in `engines` get their sha256 checked only. A LiteRT artifact on a
    machine without `ai-edge-litert` is reported as not checked (a failure), never as passing."""
    engines = tuple(formats.ENGINES) if engines is None else engines  # the registry as it is now
    if public_key:
        manifest = verify_signature(export_dir, public_key=public_key).read_manifest()
    else:
        manifest = read_manifest(export_dir)
    dataset = load_dataset(data_dir, download=False)
    if fingerprint(dataset.test) != manifest.test_set.sha256:
        raise VerifyFailed(
            f"the test set at {dataset.source} is not the one this export was measured on "
            f"({manifest.test_set.source}); point --data-dir at the same data"
        )
    test_x = scale_images(dataset.test.images)
    results = [ArtifactCheck(skipped.file, "skipped", str(skipped)) for skipped in manifest.skipped]
    for artifact in manifest.artifacts:
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
    return results
