"""Write an export's manifest.json (the contract runtime/ reads) and its parity.md table."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from mnist_edge import __version__
from mnist_edge.files import atomic_write_text
from runtime.manifest import MANIFEST_NAME, SCHEMA_VERSION

LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")

PREPROCESSING = (
    "28x28 grey image, light digit on a dark background (MNIST convention), pixel values divided by "
    "255 to [0, 1]; the digit fits a 20x20 box and its centre of mass is at the image centre. "
    "runtime.preprocess.to_mnist turns an arbitrary photo or drawing into this form."
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_manifest(
    *,
    model: dict,
    class_names: list[str],
    test_set: dict,
    artifacts: list[dict],
    thresholds: dict,
    calibration: dict,
    opset: int,
) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "toolkit": {"name": "mnist-edge", "version": __version__},
        "libraries": library_versions(),
        "platform": {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()},
        "model": model,
        "input": {
            "name": "image",
            "shape": [None, 28, 28],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "preprocessing": PREPROCESSING,
        },
        "output": {"name": "probabilities", "shape": [None, len(class_names)], "dtype": "float32"},
        "class_names": class_names,
        "test_set": test_set,
        "calibration": calibration,
        "onnx_opset": opset,
        "thresholds": thresholds,
        "artifacts": artifacts,
    }


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = Path(folder) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def render_parity(manifest: dict) -> str:
    """parity.md: every artifact against the Keras model on the full test set."""
    model = manifest["model"]
    test = manifest["test_set"]
    lines = [
        f"# Parity of the {model['name']} export against Keras",
        "",
        f"Every artifact was run through its own runtime on all {test['images']:,} test images "
        f"({test['source']}) and compared with the Keras model ({model['file']}, test accuracy "
        f"{model['test_accuracy']:.2%}). Thresholds: {_thresholds_text(manifest['thresholds'])}.",
        "",
        "| artifact | format | precision | runtime | size | vs fp32 | accuracy | Δ accuracy | argmax agreement "
        "| max abs Δp | mean abs Δp | export s | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for a in manifest["artifacts"]:
        p = a["parity"]
        ratio = "" if p.get("size_ratio") is None else f"{p['size_ratio']:.1%}"
        result = "pass" if a["passed"] else f"**FAIL**: {a['failure']}"
        lines.append(
            f"| `{a['file']}` | {a['format']} | {a['precision']} | {a['runtime']} | {_kb(a['bytes'])} | {ratio} "
            f"| {a['test_accuracy']:.2%} | {p['accuracy_delta'] * 100:+.2f} pts | {p['argmax_agreement']:.2%} "
            f"({p['changed_predictions']} changed) | {p['max_abs_diff']:.2e} | {p['mean_abs_diff']:.2e} "
            f"| {a['export_seconds']:.1f} | {result} |"
        )
    return "\n".join(lines) + "\n"


def _thresholds_text(t: dict) -> str:
    return (
        f"fp32 argmax agreement ≥ {t['fp32_min_agreement']:.2%} and max |Δp| ≤ {t['fp32_max_abs_diff']:g}; "
        f"fp16 agreement ≥ {t['fp16_min_agreement']:.2%}; int8 accuracy drop ≤ {t['int8_max_accuracy_drop'] * 100:.2f} "
        f"points, agreement ≥ {t['int8_min_agreement']:.2%}, size ≤ {t['int8_max_size_ratio']:.0%} of fp32"
    )
