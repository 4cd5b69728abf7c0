"""The web app's number reading (demo/web/js/number.js) under `node --test`, against golden
readings the Python recipe writes just now (tests/js/make_number_fixture.py): every test in
tests/js/number.test.mjs runs here; the other JS suites run in test_web_node.py and test_signing.py. The Chromium proofs of the Number
mode are in tests/test_web.py."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from mnist_edge import runtime

JS_TESTS = Path(__file__).parent / "js"


def test_node_tests_pass_with_number_js_equal_to_the_python_recipe_on_30_fields(mlp_export, mnist, tmp_path):
    sys.path.insert(0, str(JS_TESTS))
    from make_number_fixture import FIELDS, make_fixture

    fixture = make_fixture(tmp_path / "number.json.gz", runtime.load(mlp_export), mnist.test.images, mnist.test.labels)
    golden = json.loads(gzip.decompress(fixture.read_bytes()))
    # The fields exercise the recipe's hard parts: cuts through touching digits, lines removed.
    assert len(golden["fields"]) == FIELDS
    assert sum(any(part[6] > 0 for part in f.get("parts", [])) for f in golden["fields"]) >= 3
    assert sum(bool(f.get("dividers")) for f in golden["fields"]) >= 2  # combs: the one-digit-per-cell term
    assert sum("reading" in f for f in golden["fields"]) >= FIELDS - 2
    result = subprocess.run(
        # The other suites in tests/js need their own goldens: test_web_node.py and test_signing.py run them.
        ["node", "--test", str(JS_TESTS / "number.test.mjs")], capture_output=True, text=True, timeout=300,
        env={**os.environ, "NUMBER_FIXTURE": str(fixture)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed_fields = [line for line in result.stdout.splitlines() if line.startswith("ok ") and " - field " in line]
    assert "# fail 0" in result.stdout and len(passed_fields) == FIELDS, result.stdout[-1500:]
