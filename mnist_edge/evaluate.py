"""How well does an export read *your* images? `mnist-edge evaluate EXPORT --data my-digits/`.

Runs one exported artifact, through the runtime only (no TensorFlow), on a labelled image folder
(mnist_edge.imagefolder): accuracy, recall per class, the confusion matrix and the mistakes with
the input the model actually saw. Files that cannot be read, or hold no digit, are listed and
left out, never fatal. Writes evaluation.md, evaluation.json and mistakes.png.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from mnist_edge.files import atomic_write_bytes, atomic_write_text
from mnist_edge.imagefolder import ImageFolder, ImageFolderError
from mnist_edge.metrics import confusion_matrix, per_class_scores

MISTAKES_SHOWN = 40
TILE = 112  # each mistake: the 28x28 model input enlarged 4x
CAPTION = 30


@dataclass(frozen=True)
class Evaluation:
    model: str
    artifact: str
    folder: ImageFolder
    paths: tuple[Path, ...]  # the samples that could be read, in folder order
    labels: np.ndarray  # [n] true class indices
    probabilities: np.ndarray  # [n, classes]
    inputs: np.ndarray  # [n, H, W] what the model saw
    problems: tuple[tuple[Path, str], ...]  # files left out, and why

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.labels).mean())

    def matrix(self) -> np.ndarray:
        return confusion_matrix(self.labels, self.predicted, len(self.folder.class_names))

    def mistakes(self) -> np.ndarray:
        """Indices of the misread samples, most confident first."""
        wrong = np.flatnonzero(self.predicted != self.labels)
        return wrong[np.argsort(-self.probabilities[wrong].max(axis=1), kind="stable")]

    def as_dict(self) -> dict:
        names = self.folder.class_names
        return {
            "model": self.model,
            "artifact": self.artifact,
            "data": str(self.folder.root),
            "images": len(self.labels),
            "accuracy": round(self.accuracy, 6),
            "per_class": per_class_scores(self.matrix(), names),
            "confusion_matrix": self.matrix().tolist(),
            "mistakes": [
                {
                    "path": str(self.paths[i]),
                    "true": names[self.labels[i]],
                    "predicted": names[self.predicted[i]],
                    "confidence": round(float(self.probabilities[i].max()), 4),
                }
                for i in self.mistakes()
            ],
            "left_out": [{"path": str(path), "reason": reason} for path, reason in self.problems],
        }


def evaluate_folder(predictor, folder: ImageFolder) -> Evaluation:
    """Prepare every sample as the model's manifest says, predict them in one batch."""
    from mnist_edge.runtime import PreprocessError

    paths, labels, inputs, problems = [], [], [], []
    for sample in folder.samples:
        try:
            inputs.append(predictor.prepare(sample.path))
        except PreprocessError as exc:
            problems.append((sample.path, str(exc)))
            continue
        paths.append(sample.path)
        labels.append(sample.label)
    if not inputs:
        raise ImageFolderError(f"{folder.root}: none of its {len(folder.samples)} files could be read ({problems[0][1]})")
    x = np.stack(inputs)
    return Evaluation(
        model=predictor.manifest.name,
        artifact=predictor.artifact.file,
        folder=folder,
        paths=tuple(paths),
        labels=np.asarray(labels),
        probabilities=predictor.predict_array(x),
        inputs=x,
        problems=tuple(problems),
    )


# --- what a person reads ------------------------------------------------------------------------


def summary_lines(evaluation: Evaluation) -> list[str]:
    """The terminal table: accuracy, then recall per class."""
    names = evaluation.folder.class_names
    scores = per_class_scores(evaluation.matrix(), names)
    width = max(len("class"), *(len(n) for n in names))
    lines = [
        f"{evaluation.model} ({evaluation.artifact}) on {evaluation.folder.root}: accuracy {evaluation.accuracy:.2%} "
        f"({int((evaluation.predicted == evaluation.labels).sum())} of {len(evaluation.labels)} images)",
        f"{'class':<{width}}  {'images':>6}  {'recall':>7}  {'precision':>9}",
    ]
    lines += [
        f"{s['class']:<{width}}  {s['support']:>6}  {s['recall']:>7.1%}  {s['precision']:>9.1%}"
        for s in scores
        if s["support"]
    ]
    if evaluation.problems:
        lines.append(f"left out {len(evaluation.problems)} file(s):")
        lines += [f"  {path}: {reason}" for path, reason in evaluation.problems]
    return lines


def render_markdown(evaluation: Evaluation, picture: str | None) -> str:
    names = evaluation.folder.class_names
    matrix = evaluation.matrix()
    present = [i for i in range(len(names)) if matrix[i].sum() or matrix[:, i].sum()]
    lines = [
        f"# {evaluation.model} on {evaluation.folder.root.name}",
        "",
        f"`{evaluation.artifact}` read **{evaluation.accuracy:.2%}** of {len(evaluation.labels)} images in "
        f"`{evaluation.folder.root}` correctly, each prepared by the runtime exactly as `mnist-edge predict` does.",
        "",
        "| class | images | recall | precision |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {s['class']} | {s['support']} | {s['recall']:.1%} | {s['precision']:.1%} |"
        for s in per_class_scores(matrix, names)
        if s["support"]
    ]
    lines += ["", "Confusion matrix (rows: true class, columns: predicted):", ""]
    lines.append("| true \\ predicted | " + " | ".join(names[i] for i in present) + " |")
    lines.append("|---" * (len(present) + 1) + "|")
    lines += [f"| {names[t]} | " + " | ".join(str(matrix[t, p]) for p in present) + " |" for t in present]
    mistakes = evaluation.mistakes()
    lines += ["", f"## Mistakes ({len(mistakes)})", ""]
    if picture and len(mistakes):
        lines += [
            f"![the misread images as the model saw them]({picture})",
            "",
            f"The {min(len(mistakes), MISTAKES_SHOWN)} most confident mistakes, each as the model received it "
            "(after the runtime's preprocessing): a digit cut off, too thin or too thick, or placed oddly here "
            "points at the photo or the drawing rather than the model.",
            "",
        ]
    lines += [
        f"- `{evaluation.paths[i]}`: {names[evaluation.labels[i]]} read as {names[evaluation.predicted[i]]} "
        f"({evaluation.probabilities[i].max():.0%})"
        for i in mistakes
    ]
    if evaluation.problems:
        lines += ["", f"## Left out ({len(evaluation.problems)})", ""]
        lines += [f"- `{path}`: {reason}" for path, reason in evaluation.problems]
    return "\n".join(lines) + "\n"


def draw_mistakes(evaluation: Evaluation) -> bytes | None:
    """A PNG of the most confident mistakes, each the enlarged model input captioned 'true → read'."""
    from io import BytesIO

    from PIL import Image, ImageDraw

    mistakes = evaluation.mistakes()[:MISTAKES_SHOWN]
    if not len(mistakes):
        return None
    names = evaluation.folder.class_names
    columns = min(8, len(mistakes))
    rows = -(-len(mistakes) // columns)
    sheet = Image.new("L", (columns * TILE, rows * (TILE + CAPTION)), 255)
    pen = ImageDraw.Draw(sheet)
    for k, i in enumerate(mistakes):
        x, y = (k % columns) * TILE, (k // columns) * (TILE + CAPTION)
        tile = Image.fromarray(np.round(evaluation.inputs[i] * 255).astype(np.uint8)).resize((TILE - 8, TILE - 8), Image.NEAREST)
        sheet.paste(tile, (x + 4, y + 4))
        caption = f"{names[evaluation.labels[i]]} -> {names[evaluation.predicted[i]]} {evaluation.probabilities[i].max():.0%}"
        pen.text((x + 4, y + TILE), caption[:18], fill=0)
    buffer = BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()


def write_evaluation(evaluation: Evaluation, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    picture = draw_mistakes(evaluation)
    if picture:
        atomic_write_bytes(out / "mistakes.png", picture)
    atomic_write_text(out / "evaluation.md", render_markdown(evaluation, "mistakes.png" if picture else None))
    atomic_write_text(out / "evaluation.json", json.dumps(evaluation.as_dict(), indent=2) + "\n")
    return out / "evaluation.md"


def run_evaluation(predictor, folder: ImageFolder, out: Path, stream: TextIO | None = None) -> Evaluation:
    stream = stream or sys.stdout
    evaluation = evaluate_folder(predictor, folder)
    for line in summary_lines(evaluation):
        print(line, file=stream)
    report = write_evaluation(evaluation, out)
    print(f"wrote {report}", file=stream)
    return evaluation
