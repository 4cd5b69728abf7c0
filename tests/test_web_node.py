"""The page's JavaScript against the Python runtime without a browser, in seconds: the golden
drawings and manifest are written by the Python side (tests/js/write_goldens.py), then
`node --test tests/js/{preprocess,contract}.test.mjs` runs the page's own preprocessing and
manifest check on them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_TESTS = ROOT / "tests" / "js"
SUITES = ("preprocess.test.mjs", "contract.test.mjs")  # signature.test.mjs is test_signing's


def _writer():
    spec = importlib.util.spec_from_file_location("write_goldens", NODE_TESTS / "write_goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_node_suite_matches_the_python_goldens(mnist, mlp_export, tmp_path):
    node = shutil.which("node")
    assert node, "node is needed (make system-deps installs it)"
    index = _writer().write(tmp_path / "goldens", mnist.test.images[:36], mlp_export)
    assert sum(1 for case in index if case["no_digit"]) == 2  # the blank and the line
    result = subprocess.run(
        [node, "--test", *(str(NODE_TESTS / suite) for suite in SUITES)],
        env={**os.environ, "MNIST_EDGE_GOLDEN_DIR": str(tmp_path / "goldens")},
        capture_output=True, text=True, timeout=120,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 6" in result.stdout
