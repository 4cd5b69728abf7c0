"""notebooks/walkthrough.ipynb runs end to end, so it never rots: executed in a real Jupyter
kernel (nbclient + ipykernel) with small settings (one epoch on a slice, an ONNX fp32 export)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"
SMALL = {
    "WALKTHROUGH_EPOCHS": "1",
    "WALKTHROUGH_LIMIT": "3000",
    "WALKTHROUGH_FORMATS": "onnx",
    "WALKTHROUGH_PRECISIONS": "fp32",
}


def _text(cell) -> str:
    return "".join(
        output.get("text", "") + "".join(output.get("data", {}).get("text/plain", ""))
        for output in cell.get("outputs", [])
    )


@pytest.mark.slow
def test_walkthrough_notebook_runs_end_to_end(tmp_path, mnist_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    for name, value in {**SMALL, "WALKTHROUGH_OUT": str(tmp_path / "out"), "MNIST_DATA_DIR": str(mnist_dir)}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits this environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"\nthe walkthrough ran in {time.perf_counter() - start:.0f} s with {SMALL}")

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code)  # every cell ran
    errors = [output for cell in code for output in cell.outputs if output.output_type == "error"]
    assert not errors, errors
    pictures = sum("image/png" in output.get("data", {}) for cell in code for output in cell.outputs)
    assert pictures >= 7  # the digits, curves, grid, maps (two), reliability, occlusion
    text = "\n".join(_text(cell) for cell in code)
    assert "1 epochs on 3,000 images" in text
    assert "Verdict:" in text and "ECE (15 bins)" in text
    assert "model.onnx" in text
    assert "without TensorFlow: 7" in text  # the first test digit, read in a process that cannot import TensorFlow
    assert (tmp_path / "out" / "mlp" / "export" / "manifest.json").is_file()
