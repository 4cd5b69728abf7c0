"""The number reader (a CTC sequence model published with an export): trained by
`mnist-edge train-reader`, proven and published by `export --reader`, recorded in the manifest,
re-proven by `verify`, and used by `predictor.read` / `mnist-edge read` with digit-by-digit
reading. The reader here is trained briefly (tests/conftest.py); accuracy is the benchmark's job."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mnist_edge import runtime
from mnist_edge.cli import main
from mnist_edge.manifest import ManifestError, read_manifest
from mnist_edge.runtime import number, sequence


@pytest.fixture(scope="module")
def predictor(reader_export):
    return runtime.load(reader_export, threads=1)


@pytest.fixture(scope="module")
def fields(mnist):
    from mnist_edge.fields import make_fields

    return list(make_fields(mnist.test.images, mnist.test.labels, 40, seed=99))


def test_train_reader_writes_the_model_its_record_and_its_fields(trained_reader):
    record = json.loads((trained_reader / "reader.json").read_text())
    assert (trained_reader / "reader.keras").is_file() and (trained_reader / "fields-1.npz").is_file()
    assert record["params"] == 170_043 and record["geometry"] == number.load_spec()["sequence"]
    assert len(record["losses"]) == 4 and record["losses"][-1] < record["losses"][0]
    assert "MNIST training digits" in record["trained_on"]


def test_the_manifest_records_the_reader_and_its_proof(reader_export):
    manifest = read_manifest(reader_export)
    reader = manifest.reader
    assert manifest.schema_version == "2.2" and reader.file == "reader.onnx"
    assert (reader_export / "reader.onnx").stat().st_size == reader.bytes
    proof = reader.proof
    assert proof.passed and proof.fields == 60 and proof.engine == "onnxruntime" and proof.keras_agreement >= 0.99
    for way in (proof.digits, proof.sequence, proof.combined):
        assert set(way) == {"all", "separated", "touching or overlapping"} and all(0 <= v <= 1 for v in way.values())
    assert "reader.onnx" in (reader_export / "parity.md").read_text()


def test_verify_reads_the_proofs_fields_again_and_catches_a_changed_reader(reader_export, tmp_path):
    from mnist_edge.export.verify import verify_export

    checks = {c.file: c for c in verify_export(reader_export)}
    assert checks["reader.onnx"].status == "ok" and "reading reproduced" in checks["reader.onnx"].detail

    copy = tmp_path / "export"
    shutil.copytree(reader_export, copy)
    data = bytearray((copy / "reader.onnx").read_bytes())
    data[-100] ^= 0xFF
    (copy / "reader.onnx").write_bytes(bytes(data))
    checks = {c.file: c for c in verify_export(copy)}
    assert checks["reader.onnx"].status == "FAIL" and "sha256" in checks["reader.onnx"].detail
    assert checks["model.onnx"].status == "ok"

    # A manifest whose recorded accuracy was edited (the file untouched) is caught by reading again.
    shutil.copy(reader_export / "reader.onnx", copy / "reader.onnx")
    data = json.loads((copy / "manifest.json").read_text())
    data["reader"]["proof"]["combined"]["all"] = 1.0 if data["reader"]["proof"]["combined"]["all"] < 0.9 else 0.5
    (copy / "manifest.json").write_text(json.dumps(data))
    check = {c.file: c for c in verify_export(copy)}["reader.onnx"]
    assert check.status == "FAIL" and "the manifest says" in check.detail


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(file="../reader.onnx"), "must be a plain name"),
        (lambda r: r.update(height=100000), "height 100000"),
        (lambda r: r.update(max_width=10), "max_width 10"),
        (lambda r: r.update(blank=3), "blank class 3"),
        (lambda r: r.update(stride="4"), "expected an integer"),
        (lambda r: r["proof"].pop("combined"), "missing field 'combined'"),
    ],
)
def test_a_hostile_reader_entry_is_one_manifest_error(reader_export, tmp_path, change, message):
    copy = tmp_path / "export"
    shutil.copytree(reader_export, copy)
    data = json.loads((copy / "manifest.json").read_text())
    change(data["reader"])
    (copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message):
        read_manifest(copy)


def test_sequence_reading_gives_digits_boxes_top3_and_what_the_model_saw(predictor, fields):
    assert predictor.has_reader
    read = 0
    for f in fields:
        try:
            reading = predictor.read(f.image, reader="sequence")
        except runtime.PreprocessError:
            continue
        read += 1
        assert reading.reader == "sequence" and len(reading.digits) == len(reading.text)
        assert reading.confidence == pytest.approx(np.prod([d.confidence for d in reading.digits]))
        width, height = _size(f.image)
        for d in reading.digits:
            assert d.top[0] == (d.label, d.confidence) and len(d.top) == 3
            assert d.top[0][1] >= d.top[1][1] >= d.top[2][1]
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert d.input.shape[0] == 32 and d.input.shape[1] >= 1
    assert read >= 30  # the brief reader reads most fields; a reader that emits nothing would fail here


def _size(image: bytes) -> tuple[int, int]:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image)).size


def test_auto_reading_is_the_combination_of_both_readers(predictor, fields):
    sequence_used = 0
    for f in fields:
        auto = predictor.read(f.image)
        digits = predictor.read(f.image, reader="digits")
        try:
            line = predictor.read(f.image, reader="sequence")
        except runtime.PreprocessError:
            assert auto == digits
            continue
        assert auto == sequence.combine(digits, line)
        sequence_used += auto.reader == "sequence"
    assert sequence_used >= 1


def _reading(text: str, confidence: float, reader: str) -> number.Reading:
    digits = tuple(
        number.ReadDigit(int(c), c, confidence ** (1 / len(text)), ((c, 0.9),), (0, 0, 1, 1), np.zeros((1, 1))) for c in text
    )
    return number.Reading(text, confidence, False, digits, reader)


def test_combine_keeps_the_digit_reading_when_it_counts_as_many_digits_and_is_as_sure():
    assert sequence.combine(_reading("37", 0.9, "digits"), _reading("31", 0.8, "sequence")).text == "37"
    assert sequence.combine(_reading("37", 0.9, "digits"), _reading("37", 0.9, "sequence")).reader == "digits"
    assert sequence.combine(_reading("37", 0.7, "digits"), _reading("31", 0.8, "sequence")).text == "31"
    # A count that differs: neighbours the digit-by-digit reader merged, whatever its confidence.
    assert sequence.combine(_reading("8", 0.99, "digits"), _reading("37", 0.6, "sequence")).text == "37"


def _piece(x0: int, x1: int, pixels: np.ndarray, label: int = 1) -> number.Piece:
    return number.Piece(label, x0, 0, x1, pixels.shape[0], int(pixels.sum()), pixels)


def test_each_digit_gets_the_marks_it_owns():
    tall = np.ones((20, 10), bool)
    # Two separate marks, one peak over each: each digit's box is its mark.
    boxes = sequence._assign([_piece(0, 10, tall), _piece(20, 30, tall, 2)], [2.0, 22.0])
    assert boxes == [(0, 0, 10, 20), (20, 0, 30, 20)]
    # A flag under no peak goes to the last digit whose peak is left of its right end.
    flag = np.ones((3, 6), bool)
    boxes = sequence._assign([_piece(0, 10, tall), _piece(12, 18, flag, 2), _piece(30, 40, tall, 3)], [2.0, 32.0])
    assert boxes == [(0, 0, 18, 20), (30, 0, 40, 20)]
    # One mark under two peaks (touching digits): parted at the thinnest column right of their midpoint.
    pair = np.ones((20, 30), bool)
    pair[9:11, 17] = True
    pair[:9, 17] = pair[11:, 17] = False
    (left, _, right, _), (left2, _, right2, _) = sequence._assign([_piece(0, 30, pair)], [3.0, 22.0])
    assert (left, right, left2, right2) == (0, 17, 17, 30)


def test_cli_read_uses_the_reader_and_says_so(reader_export, fields, tmp_path, capsys):
    path = tmp_path / "field.png"
    path.write_bytes(fields[0].image)
    assert main(["read", "--model", str(reader_export), "--reader", "sequence", "--json", str(path)]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["reader"] == "sequence" and row["text"] and len(row["digits"]) == len(row["text"])
    assert main(["read", "--model", str(reader_export), str(path)]) == 0
    assert "model.onnx and reader.onnx" in capsys.readouterr().out


def test_cli_read_refuses_a_missing_or_changed_reader_in_one_line(reader_export, mlp_export, tmp_path, capsys):
    image = tmp_path / "field.png"
    image.write_bytes(b"not read")
    assert main(["read", "--model", str(mlp_export), "--reader", "sequence", str(image)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no number reader" in err[0]

    copy = tmp_path / "export"
    shutil.copytree(reader_export, copy)
    (copy / "reader.onnx").write_bytes(b"x" * (copy / "reader.onnx").stat().st_size)
    assert main(["read", "--model", str(copy), str(image)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reader.onnx" in err[0] and "sha256" in err[0]


def test_export_rejects_a_reader_that_does_not_beat_digit_by_digit_reading(trained_mlp, trained_reader, mnist, tmp_path):
    from mnist_edge.export.exporter import ExportError, export_model
    from mnist_edge.export.parity import Thresholds
    from mnist_edge.export.publish import ExportFailed

    model_dir = tmp_path / "mlp"
    shutil.copytree(trained_mlp, model_dir, ignore=shutil.ignore_patterns("export*"))
    export_model(model_dir, families=("onnx",), precisions=("fp32",), dataset=mnist)  # the previous good export
    before = (model_dir / "export" / "manifest.json").read_bytes()
    with pytest.raises(ExportFailed, match="reader.onnx: read with it"):
        export_model(
            model_dir, families=("onnx",), precisions=("fp32",), dataset=mnist, reader=trained_reader, reader_fields=20,
            thresholds=Thresholds(reader_min_gain=100.0),
        )
    assert (model_dir / "export" / "manifest.json").read_bytes() == before  # left in place
    assert (model_dir / "export.rejected" / "reader.onnx").is_file()

    with pytest.raises(ExportError, match="--reader needs model.onnx"):
        export_model(model_dir, families=("tflite",), dataset=mnist, reader=trained_reader)
    from mnist_edge.trainer.reader import ReaderTrainingError

    with pytest.raises(ReaderTrainingError, match="no trained reader in"):
        export_model(model_dir, families=("onnx",), dataset=mnist, reader=tmp_path)
    assert (model_dir / "export" / "manifest.json").read_bytes() == before


def test_the_pipeline_exports_again_when_the_reader_changes(reader_export, trained_reader, tmp_path):
    from mnist_edge.pipeline import _export_is_current

    model_dir = reader_export.parent
    assert _export_is_current(model_dir, trained_reader)
    assert not _export_is_current(model_dir, tmp_path)  # no reader there
    other = tmp_path / "reader"
    shutil.copytree(trained_reader, other)
    (other / "reader.keras").write_bytes((other / "reader.keras").read_bytes() + b"\0")
    assert not _export_is_current(model_dir, other)


def test_train_reader_refuses_a_file_as_its_folder(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["train-reader", "--out", str(target), "--fields", "5", "--seeds", "1", "--epochs", "1"]) == 1
    assert target.read_text() == "keep me"
    assert "is a file" in capsys.readouterr().err
    # A folder of the user's own files (the data folder, say) is not written into.
    assert main(["train-reader", "--out", str(tmp_path), "--fields", "5", "--seeds", "1", "--epochs", "1"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert "not a number reader's" in capsys.readouterr().err


def test_the_demos_number_tab_reads_with_the_reader_and_names_it(reader_export, predictor, fields, tmp_path):
    from mnist_edge.demo.app import DigitDemo

    demo = DigitDemo.from_root(reader_export.parent.parent)
    named = 0
    for k, f in enumerate(fields[:15]):
        path = tmp_path / f"{k}.png"
        path.write_bytes(f.image)
        text, status, boxed, digits = demo.read_number(str(path), "mlp", "fp32", "onnxruntime", 0.0)
        reading = predictor.read(path, min_confidence=0.0)
        assert text == reading.text and len(digits) == len(reading.digits) and boxed is not None
        if reading.reader == "sequence":
            named += 1
            assert "mlp/model.onnx + reader.onnx" in status
            tile, caption = digits[0]
            assert tile.shape[0] == 96 and caption.startswith(reading.digits[0].label)  # 32 rows enlarged 3x
        else:
            assert "reader.onnx" not in status
    assert named >= 1


def test_specks_only_or_a_blank_field_is_one_error_with_the_reader_too(predictor):
    specks = np.full((120, 400), 255, np.uint8)
    specks[[20, 60, 90], [50, 200, 330]] = 0  # three lone dots: specks, no digit
    specks[40, 120:122] = 0
    for reader in ("auto", "sequence", "digits"):
        with pytest.raises(runtime.NoDigitError):
            predictor.read(specks, reader=reader)
        with pytest.raises(runtime.NoDigitError):
            predictor.read(np.full((120, 400), 255, np.uint8), reader=reader)



def test_fields_made_in_spawned_workers_equal_those_made_in_one_process(tmp_path, mnist_dir):
    import io

    from mnist_edge.trainer.reader import ReaderConfig, make_data

    for name in ("workers", "one"):
        (tmp_path / name).mkdir()
    apart = make_data(tmp_path / "workers", ReaderConfig(fields=15, seeds=(3, 4), jobs=2), mnist_dir, io.StringIO())
    together = make_data(tmp_path / "one", ReaderConfig(fields=15, seeds=(3, 4), jobs=1), mnist_dir, io.StringIO())
    for a, b in zip(apart, together):
        x, y = np.load(a), np.load(b)
        assert all(np.array_equal(x[k], y[k]) for k in ("images", "widths", "texts", "groups"))
        assert len(x["texts"]) == 15


def test_a_ray_actors_copy_of_the_export_reads_with_the_reader(reader_export, predictor, fields):
    """`mnist-edge batch --mode number` ships the export as bytes to its actors: the reader goes too."""
    from mnist_edge.scale import load_shipped, ship_model

    shipped = ship_model(predictor)
    assert shipped["reader"] == (reader_export / "reader.onnx").read_bytes()
    actor = load_shipped(shipped)
    assert actor.has_reader
    for f in fields[:8]:
        assert actor.read(f.image) == predictor.read(f.image)
    shipped["reader"] = shipped["reader"][:-1] + bytes([shipped["reader"][-1] ^ 1])
    with pytest.raises(runtime.IntegrityError, match="do not match"):
        load_shipped(shipped)

