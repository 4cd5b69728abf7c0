"""Model parity: every artifact of each bundled export, run by each browser engine that takes its
format (onnxruntime-web, LiteRT.js) on the whole test set, against the Python engine's run of the
same file on the same inputs. An engine that cannot run a file is recorded with its error."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_edge import formats
from mnist_edge.manifest import Manifest, Proof

from .web_chromium import PAGE_TIMEOUT_MS
from .web_proof_server import engine_runtime_urls


# The same file in a browser build of an engine and in its Python build: nothing may change class,
# and float artifacts may differ only by rounding.
MIN_AGREEMENT = 1.0
MAX_ABS_DIFF = 1e-5  # files of float precisions; integer ones (formats.INTEGER_PRECISIONS) are held to agreement only
MODEL_BATCH = 1000  # images per call for engines taking any batch


@dataclass(frozen=True)
class EngineRun:
    """One artifact in one browser engine: its proof, or why it could not run."""

    model: str
    file: str
    precision: str
    engine: str  # a key of formats.BROWSER_ENGINES
    reference: str  # the Python engine it was compared with
    expected: bool  # the registry says this engine runs this kind
    proof: Proof | None = None
    cannot_run: str | None = None
    load_ms: float | None = None
    run_ms: float | None = None

    @property
    def passed(self) -> bool:
        if self.proof is not None:
            return self.proof.passed
        return not self.expected  # an expected incompatibility, recorded with its reason


def browser_limits(precision: str) -> tuple[float, float | None]:
    """(minimum argmax agreement, maximum |delta p| or None) for a file of this precision."""
    return MIN_AGREEMENT, (None if precision in formats.INTEGER_PRECISIONS else MAX_ABS_DIFF)


def reference_probabilities(manifest: Manifest, artifact, engine: str, x: np.ndarray) -> np.ndarray:
    """The Python engine's probabilities for the same file on the same inputs."""
    from mnist_edge.runtime.backends import open_session
    from mnist_edge.runtime.integrity import read_verified

    session = open_session(engine, read_verified(manifest, artifact), name=str(manifest.path_of(artifact)), format=artifact.format)
    return np.concatenate([session.run(x[i : i + MODEL_BATCH]) for i in range(0, len(x), MODEL_BATCH)])


def prove_models(page, base_url: str, site: Path, manifests: list[Manifest], x: np.ndarray, labels: np.ndarray, data_file: str) -> list[EngineRun]:
    """Every artifact of `manifests` in every browser engine that takes its format, on all of `x`."""
    from mnist_edge.export.parity import compare

    page.goto(base_url + "proof/")
    page.wait_for_function("() => window.proofReady === true", timeout=PAGE_TIMEOUT_MS)
    runs = []
    for manifest in manifests:
        for artifact in manifest.artifacts:
            for engine in formats.browser_engines_for(artifact.format):
                spec = formats.BROWSER_ENGINES[engine]
                expected = engine in formats.kind(artifact.file).browser_engines
                common = dict(model=manifest.name, file=artifact.file, precision=artifact.precision, engine=engine,
                              reference=spec.reference, expected=expected)
                result = page.evaluate(
                    "args => window.runArtifact(args)",
                    {
                        "entry": {"manifest": f"{base_url}proof/exports/{manifest.name}/manifest.json", "file": artifact.file, "engine": engine},
                        "runtime": {k: base_url + v.lstrip("/") for k, v in engine_runtime_urls(engine, site).items()},
                        "data": f"{base_url}proof/data/{data_file}",
                        "batch": 1 if artifact.batch == 1 else MODEL_BATCH,
                    },
                )
                if not result["ok"]:
                    runs.append(EngineRun(**common, cannot_run=result["error"]))
                    continue
                got = np.frombuffer(base64.b64decode(result["probabilities"]), dtype="<f4").reshape(len(x), -1)
                reference = reference_probabilities(manifest, artifact, spec.reference, x)
                report = compare(reference, got, labels)
                agreement, max_diff = browser_limits(artifact.precision)
                failures = []
                if report.argmax_agreement < agreement:
                    failures.append(
                        f"argmax agreement {report.argmax_agreement:.4%} below {agreement:.4%} "
                        f"({report.changed_predictions} of {report.images} images changed class)"
                    )
                if max_diff is not None and report.max_abs_diff > max_diff:
                    failures.append(f"max |delta p| {report.max_abs_diff:.3g} above {max_diff:g}")
                runs.append(
                    EngineRun(**common, proof=report.proof(engine, spec.reference, failures),
                              load_ms=round(result["loadMs"], 1), run_ms=round(result["runMs"], 1))
                )
    return runs
