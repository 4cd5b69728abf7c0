"""Your own handwriting: measure an export on a labelled folder, fine-tune on it without
forgetting MNIST, and ship the result like any other model.

The "new writer" is not MNIST: digits printed in the machine's TrueType fonts (DejaVu, Liberation;
sans, serif and mono, regular and bold), at random sizes, angles and ink, saved as PNG and JPEG
photos of paper. An MNIST model reads them clearly worse than MNIST's own digits; fine-tuning on
part of them must lift the rest while MNIST stays within the limit."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_edge.files import sha256_file

PER_CLASS = 30

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from handwriting import write_printed_digits  # noqa: E402  (the benchmark's new writer, shared)


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> Path:
    return write_printed_digits(tmp_path_factory.mktemp("printed") / "my-digits", PER_CLASS)


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_edge", *map(str, args)], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- evaluate: the runtime only ---------------------------------------------------------------


def test_evaluate_a_folder_lists_bad_files_and_writes_the_report(mlp_export, printed, tmp_path):
    data = tmp_path / "my-digits"
    shutil.copytree(printed, data)
    (data / "3" / "broken.png").write_bytes(b"not an image")
    Image.new("L", (200, 200), 255).save(data / "5" / "blank.png")
    out = tmp_path / "evaluation"
    result = _cli("evaluate", mlp_export, "--data", data, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads((out / "evaluation.json").read_text())
    assert report["images"] == 10 * PER_CLASS
    assert {Path(p["path"]).name for p in report["left_out"]} == {"broken.png", "blank.png"}
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == 10 * PER_CLASS and matrix.sum(axis=1).tolist() == [PER_CLASS] * 10
    assert report["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum(), abs=1e-6)
    assert len(report["mistakes"]) == matrix.sum() - np.trace(matrix)
    # The terminal table and the written report say the same.
    first = result.stdout.splitlines()[0]
    assert f"accuracy {report['accuracy']:.2%}" in first and f"of {10 * PER_CLASS} images" in first
    assert "left out 2 file(s):" in result.stdout
    markdown = (out / "evaluation.md").read_text()
    assert f"**{report['accuracy']:.2%}**" in markdown and "broken.png" in markdown
    if report["mistakes"]:
        assert (out / "mistakes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nthe small MLP reads {report['accuracy']:.1%} of the printed digits")


def test_evaluate_refuses_a_folder_that_is_not_the_models_classes(mlp_export, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _cli("evaluate", mlp_export, "--data", tmp_path / "empty")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no images" in result.stderr
    (tmp_path / "odd" / "seven").mkdir(parents=True)
    result = _cli("evaluate", mlp_export, "--data", tmp_path / "odd")
    assert result.returncode == 2 and "folder 'seven' is not a class of the model" in result.stderr
    result = _cli("evaluate", mlp_export, "--data", tmp_path / "nowhere")
    assert result.returncode == 2 and "no such folder" in result.stderr


# --- fine-tune ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_keys(tmp_path_factory) -> dict[str, Path] | None:
    """The owner's key pair the fine-tuning signs with (docs/security.md); None without the 'signing' extra."""
    if importlib.util.find_spec("model_signing") is None:
        return None
    from mnist_edge.signature import generate_key_pair

    folder = tmp_path_factory.mktemp("keys")
    generate_key_pair(folder / "owner.pem", folder / "owner.pub.pem")
    return {"private": folder / "owner.pem", "public": folder / "owner.pub.pem"}


@pytest.fixture(scope="module")
def finetuned(trained_mlp, printed, signing_keys, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finetuned") / "mlp-mine"
    source_before = _snapshot(trained_mlp)
    signing = ["--signing-key", signing_keys["private"]] if signing_keys else []
    result = _cli("finetune", trained_mlp, "--data", printed, "--out", out, "--epochs", "4", *signing)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""
    assert _snapshot(trained_mlp) == source_before  # the source model is never touched
    print("\n" + result.stdout)
    return out


def test_finetuning_learns_the_new_writer_and_keeps_mnist(finetuned):
    metrics = json.loads((finetuned / "metrics.json").read_text())
    tune = metrics["finetune"]
    before, after = tune["before"], tune["after"]
    print(f"\nheld-out printed digits {before['personal']:.1%} -> {after['personal']:.1%}; "
          f"MNIST {before['mnist']:.2%} -> {after['mnist']:.2%}")
    assert tune["held_out"] == 10 * round(PER_CLASS * 0.3) and tune["images"] == 10 * PER_CLASS
    assert after["personal"] >= before["personal"] + 0.15  # clearly better on the new writer
    assert before["mnist"] - after["mnist"] <= 0.003  # and did not forget MNIST
    assert metrics["test_accuracy"] == pytest.approx(after["mnist"], abs=1e-4)
    report = (finetuned / "report.md").read_text()
    assert f"| {before['personal']:.2%} | {after['personal']:.2%} |" in report
    assert f"| {before['mnist']:.2%} | {after['mnist']:.2%} |" in report
    for file in ("model.keras", "history.json", "curves.png", "confusion.png", "misclassified.png"):
        assert (finetuned / file).is_file(), file


def test_a_finetuned_model_exports_predicts_and_shows_in_the_demo(finetuned, printed, mnist, tmp_path):
    from mnist_edge.demo.app import find_models

    result = _cli("export", finetuned, "--formats", "onnx", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    image = tmp_path / "seven.png"
    Image.fromarray(255 - mnist.test.images[0]).resize((140, 140)).save(image)
    result = _cli("predict", "--model", finetuned, "--json", image)
    assert result.returncode == 0 and json.loads(result.stdout)["digit"] == 7
    assert "mlp-mine" in find_models(finetuned.parent)
    result = _cli("verify", finetuned / "export")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_signed_finetune_and_its_signed_export_load_only_as_signed(finetuned, signing_keys, mnist, tmp_path):
    """End to end (docs/security.md): `mnist-edge finetune --signing-key` signed the model folder it
    published, its export/ left out; exporting it with the key signs every file of the export;
    runtime.load with the public key runs it; a tampered copy of either is refused; a bad key
    leaves the published export as it was."""
    if signing_keys is None:
        pytest.skip("the 'signing' extra (model-signing) is not installed")
    from mnist_edge import runtime
    from mnist_edge.export.exporter import export_model
    from mnist_edge.signature import SIGNATURE_NAME, SignatureError, SigningFailed, verify_signature

    public = signing_keys["public"]
    assert {"model.keras", "metrics.json", "report.md"} <= set(verify_signature(finetuned, public_key=public).digests)
    mine = tmp_path / "mlp-mine"  # a copy: the other tests export the fine-tuned folder unsigned
    shutil.copytree(finetuned, mine, ignore=shutil.ignore_patterns("export*"))
    export_model(mine, families=("onnx",), precisions=("fp32",), dataset=mnist, signing_key=signing_keys["private"])
    signed = verify_signature(mine / "export", public_key=public)
    published = {p.name for p in (mine / "export").iterdir()}
    assert {"manifest.json", "model.onnx", "parity.md", SIGNATURE_NAME} <= published
    assert set(signed.digests) == published - {SIGNATURE_NAME}  # every file, the signature aside
    assert "model.keras" in verify_signature(mine, public_key=public).digests  # the folder's signature leaves export/ out
    predictor = runtime.load(mine / "export", public_key=public)
    assert predictor.signature.startswith("verified: signed by key ")
    assert predictor.predict(mnist.test.images[0]).digit == mnist.test.labels[0]

    tampered = tmp_path / "tampered"
    shutil.copytree(mine, tampered)
    model = bytearray((tampered / "export" / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0x01
    (tampered / "export" / "model.onnx").write_bytes(bytes(model))
    with pytest.raises(SignatureError, match=r"changed: model.onnx\)"):
        runtime.load(tampered / "export", public_key=public)
    (tampered / "model.keras").write_bytes(b"swapped")
    with pytest.raises(SignatureError, match=r"changed: model.keras\)"):
        verify_signature(tampered, public_key=public)

    before = _snapshot(mine / "export")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(SigningFailed, match="cannot read the signing key"):
        export_model(mine, families=("onnx",), precisions=("fp32",), dataset=mnist, signing_key=garbage)
    assert _snapshot(mine / "export") == before


def test_forgetting_too_much_refuses_to_publish(trained_mlp, printed, tmp_path):
    out = tmp_path / "mlp-mine"
    source_before = _snapshot(trained_mlp)
    result = _cli("finetune", trained_mlp, "--data", printed, "--out", out, "--epochs", "1", "--max-mnist-drop", "-1")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("mnist-edge: error: fine-tuned model not published: MNIST test accuracy fell")
    assert "your held-out images" in line and "MNIST test" in line and "is untouched" in line
    assert not out.exists() and not list(tmp_path.glob(".mlp-mine*"))
    assert _snapshot(trained_mlp) == source_before


@pytest.mark.parametrize("case", ["empty", "unknown class", "too few", "unreadable"])
def test_bad_fine_tuning_input_is_one_line_and_writes_nothing(case, trained_mlp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if case == "unknown class":
        (data / "eleven").mkdir()
    elif case in ("too few", "unreadable"):
        for digit in ("1", "7"):
            (data / digit).mkdir()
            Image.fromarray(np.eye(28, dtype=np.uint8)[::-1] * 255).resize((100, 100)).save(data / digit / "a.png")
        if case == "unreadable":
            (data / "7" / "b.png").write_bytes(b"\x89PNG broken")
    expected = {
        "empty": "no images",
        "unknown class": "folder 'eleven' is not a class of the model",
        "too few": "are too few to hold 30% out",
        "unreadable": "1 of 3 files in",
    }[case]
    out = tmp_path / "mlp-mine"
    result = _cli("finetune", trained_mlp, "--data", data, "--out", out)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
    assert not out.exists()
