"""Adding an artifact kind and an engine is one registry entry each plus their converter and
session: a dummy kind ("model.dummy", converted from the fp32 ONNX file) and a dummy engine (an
onnxruntime session under another name) are added in ONE place, the registry's tables, and go
end to end: the export plan and manifest, runtime.load, verify, the real command line's choices
and run, the demo's menus, and the extras a missing module is reported with."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from mnist_edge import formats
from mnist_edge.runtime.backends import OnnxSession

DUMMY_FILE = "model.dummy"
DUMMY_ENGINE = "dummy-engine"


def copy_the_onnx_file(job, kind, path: Path) -> None:
    """The dummy kind's converter: its registered source, copied."""
    shutil.copyfile(job.source(kind.source), path)


class DummySession(OnnxSession):
    """The dummy engine's session: onnxruntime, reached through the registry under another name."""


def _dotted(name: str) -> str:
    return f"{__name__}:{name}"


@pytest.fixture
def registry(monkeypatch):
    """The one place the dummy kind and engine are declared."""
    engine = formats.Engine(
        DUMMY_ENGINE, "Dummy", "onnxruntime", _dotted("DummySession"), "", "onnxruntime", thread_safe=False
    )
    kind = formats.ArtifactKind(
        DUMMY_FILE, "dummyformat", "dummyfamily", "fp32", DUMMY_ENGINE, _dotted("copy_the_onnx_file"),
        source="model.onnx",
    )
    monkeypatch.setitem(formats.ENGINES, DUMMY_ENGINE, engine)
    monkeypatch.setattr(formats, "KINDS", formats.KINDS + (kind,))
    return kind


@pytest.fixture
def dummy_export(registry, trained_mlp, mnist, tmp_path) -> Path:
    from mnist_edge.export.exporter import export_model

    model_dir = tmp_path / "mlp"
    shutil.copytree(trained_mlp, model_dir, ignore=shutil.ignore_patterns("export*", ".export-*"))
    manifest = export_model(model_dir, families=("dummyfamily",), precisions=("fp32",), dataset=mnist, stream=sys.stderr)
    (artifact,) = manifest.artifacts
    assert (artifact.file, artifact.format, artifact.engine) == (DUMMY_FILE, "dummyformat", DUMMY_ENGINE)
    assert artifact.parity.passed and artifact.parity.argmax_agreement == 1.0
    assert not (model_dir / "export" / "model.onnx").exists()  # its source was made in scratch, not published
    return model_dir / "export"


@pytest.mark.slow
def test_a_dummy_kind_and_engine_go_end_to_end(dummy_export, mnist, mnist_dir, tmp_path):
    import contextlib
    import io

    from mnist_edge import runtime
    from mnist_edge.cli import build_parser, main
    from mnist_edge.demo.app import find_models
    from mnist_edge.export.verify import verify_export
    from mnist_edge.manifest import read_manifest

    # The manifest and runtime.load: the dummy engine is asked for by name and runs the dummy file.
    assert [a.file for a in read_manifest(dummy_export).artifacts] == [DUMMY_FILE]
    predictor = runtime.load(dummy_export, engine=DUMMY_ENGINE)
    assert isinstance(predictor.session, DummySession) and predictor.artifact.file == DUMMY_FILE
    digits = [predictor.predict(image).digit for image in mnist.test.images[:50]]
    assert sum(d == label for d, label in zip(digits, mnist.test.labels[:50])) >= 40

    # verify re-checks it with its own engine (not only its checksum).
    (check,) = verify_export(dummy_export, data_dir=mnist_dir)
    assert (check.file, check.status) == (DUMMY_FILE, "ok")

    # The real command line: the engine is a valid choice of predict and verify, and runs.
    image = tmp_path / "digit.png"
    Image.fromarray(mnist.test.images[0]).save(image)
    build_parser()  # its modules imported before stdout is redirected (several bind it as a default)
    predicted, verified = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(predicted):
        assert main(["predict", "--model", str(dummy_export), "--engine", DUMMY_ENGINE, "--json", str(image)]) == 0
    assert f'"digit": {digits[0]}' in predicted.getvalue()
    with contextlib.redirect_stdout(verified):
        assert main(["verify", str(dummy_export), "--engine", DUMMY_ENGINE, "--data-dir", str(mnist_dir)]) == 0
    assert verified.getvalue().startswith(f"ok      {DUMMY_FILE}")

    # The demo's menus offer the engine with the precision it has.
    (choice,) = find_models(dummy_export).values()
    assert choice.precisions == {DUMMY_ENGINE: ("fp32",)}


def test_the_cli_choices_and_the_plan_follow_the_registry(registry):
    import contextlib
    import io

    from mnist_edge.cli import build_parser
    from mnist_edge.export.exporter import plan_artifacts

    parser = build_parser()  # before any redirection: several subcommand modules bind sys.stdout as a default
    for command in (["predict", "--model", "e", "--engine", DUMMY_ENGINE, "x.png"], ["verify", "e", "--engine", DUMMY_ENGINE]):
        assert parser.parse_args(command).engine == DUMMY_ENGINE
    err = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(err):
        parser.parse_args(["predict", "--model", "e", "--engine", "no-such-engine", "x.png"])
    assert "dummy-engine" in err.getvalue()  # the error lists the choices, the new one among them
    assert plan_artifacts(("dummyfamily",), ("fp32",)) == (registry,)
    assert "dummyfamily" in formats.families()


def test_a_new_engines_extra_is_named_when_its_module_is_missing(monkeypatch):
    from mnist_edge.errors import EXTRA_FOR_MODULE, MissingExtraError, ensure_installed

    assert EXTRA_FOR_MODULE["ai_edge_litert"] == formats.ENGINES["litert"].extra  # derived, not listed
    engine = formats.Engine(
        "absent", "Absent", "mnist_edge_absent_engine.runtime", _dotted("DummySession"), "absent-extra", "absent"
    )
    monkeypatch.setitem(formats.ENGINES, "absent", engine)
    kind = formats.ArtifactKind("model.absent", "absentformat", "absentfamily", "fp32", "absent", _dotted("copy_the_onnx_file"))
    monkeypatch.setattr(formats, "KINDS", formats.KINDS + (kind,))
    assert "mnist_edge_absent_engine" in formats.export_modules()
    with pytest.raises(MissingExtraError, match=r"pip install 'mnist-edge\[absent-extra\]'"):
        ensure_installed(*formats.export_modules())


def test_a_new_browser_engine_reaches_the_pages_engine_table(monkeypatch):
    """The page's engines.json is written from BROWSER_ENGINES: a new entry shows up in it (and the
    checked-in file is then stale until `python -m mnist_edge.contract` rewrites it)."""
    from mnist_edge import contract

    browser = formats.BrowserEngine(
        "dummy-web", "Dummy Web", "dummy-npm", "onnxruntime", ("onnx",), ("dummy-npm/index.js",),
        bundled=False, page_module="engines/dummy-web.js",
    )
    monkeypatch.setitem(formats.BROWSER_ENGINES, "dummy-web", browser)
    assert formats.browser_table()["engines"]["dummy-web"]["page_module"] == "engines/dummy-web.js"
    assert "dummy-web" in formats.browser_engines_for("onnx")
    stale = [path.name for path, text in contract.generated_files().items() if path.read_text(encoding="utf-8") != text]
    assert stale == ["engines.json"]


def test_the_precisions_the_registry_singles_out_decide_for_the_apps(monkeypatch):
    """The browser's tolerance and the site's default precisions are registry attributes: changing
    one there changes what the web proofs hold a file to and what the site ships."""
    from mnist_edge.demo.web_build import DEFAULT_PRECISIONS
    from mnist_edge.demo.web_model_parity import MAX_ABS_DIFF, browser_limits

    for singled_out in (formats.INTEGER_PRECISIONS, formats.SITE_PRECISIONS, (formats.SOURCE_PRECISION,)):
        assert set(singled_out) <= set(formats.PRECISIONS)
    assert DEFAULT_PRECISIONS == formats.SITE_PRECISIONS
    assert [browser_limits(p)[1] for p in ("fp32", "int8")] == [MAX_ABS_DIFF, None]
    monkeypatch.setattr(formats, "INTEGER_PRECISIONS", ("fp16", "int8"))
    assert browser_limits("fp16")[1] is None
