"""A folder of labelled images in the layout people already use: one subfolder per class, as
Keras' `image_dataset_from_directory` and torchvision's `ImageFolder` read it.

    my-digits/0/a.png  my-digits/0/b.jpg  my-digits/7/scan.png ...

`read_image_folder` lists the samples (it decodes nothing: the runtime's preprocessing turns each
file into a model input); `save_sample` adds one, atomically and without ever overwriting.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from mnist_edge.errors import MnistEdgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm")


class ImageFolderError(MnistEdgeError):
    """The folder is missing, empty, or names classes the model does not have."""

    exit_code = 2


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into the class names


@dataclass(frozen=True)
class ImageFolder:
    root: Path
    class_names: tuple[str, ...]
    samples: tuple[Sample, ...]

    def counts(self) -> dict[str, int]:
        """Samples per class name, every class listed."""
        counts = dict.fromkeys(self.class_names, 0)
        for sample in self.samples:
            counts[self.class_names[sample.label]] += 1
        return counts


def folder_name(class_name: str) -> str:
    """The subfolder a class's images live in: its name, with path separators made safe."""
    return class_name.replace("/", "_").replace("\\", "_")


def read_image_folder(root: str | os.PathLike, class_names: tuple[str, ...]) -> ImageFolder:
    """The labelled image files under `root`, sorted; every subfolder must be a class of the model."""
    root = Path(root)
    if not root.is_dir():
        raise ImageFolderError(f"{root}: no such folder (expected one subfolder per class, e.g. {root}/7/*.png)")
    by_folder = {folder_name(name): i for i, name in enumerate(class_names)}
    samples, unknown = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in by_folder:
            unknown.append(sub.name)
            continue
        samples += [
            Sample(path, by_folder[sub.name])
            for path in sorted(sub.iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
        ]
    if unknown:
        raise ImageFolderError(
            f"{root}: folder{'s' if len(unknown) > 1 else ''} {', '.join(repr(u) for u in unknown)} "
            f"{'are not classes' if len(unknown) > 1 else 'is not a class'} of the model "
            f"(its classes: {', '.join(folder_name(n) for n in class_names)})"
        )
    if not samples:
        raise ImageFolderError(
            f"{root}: no images (expected one subfolder per class holding {', '.join(IMAGE_SUFFIXES[:3])}... files)"
        )
    return ImageFolder(root, tuple(class_names), tuple(samples))


def count_samples(root: str | os.PathLike, class_names: tuple[str, ...]) -> dict[str, int]:
    """Image files per class under `root` (0 for a class without a folder); nothing is decoded."""
    counts = {}
    for name in class_names:
        folder = Path(root) / folder_name(name)
        counts[name] = sum(
            1 for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ) if folder.is_dir() else 0
    return counts


def save_sample(root: str | os.PathLike, class_name: str, content: bytes, suffix: str = ".png") -> Path:
    """Write `content` as a new file in root/<class>/, atomically, never replacing another file."""
    folder = Path(root) / folder_name(class_name)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    tmp = folder / f".{stem}{suffix}.tmp"
    with open(tmp, "xb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    while True:
        target = folder / f"{stem}{suffix}"
        try:
            os.link(tmp, target)  # fails if the name exists: nothing is ever overwritten
            break
        except FileExistsError:
            stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    tmp.unlink()
    return target
