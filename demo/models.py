"""The demo's models: which exports are on offer, their predictors (loaded once, shared), and what
a pipeline still at work has promised.

    catalog = ModelCatalog.from_root(Path("artifacts"))
    predictor, guard = catalog.predictor("cnn", "onnxruntime", "fp32")
    with guard:
        probabilities = predictor.predict_array(x)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mnist_edge import formats, runtime
from mnist_edge.errors import MnistEdgeError
from mnist_edge.manifest import find_exports, read_manifest

# In the artifacts folder while `mnist-edge pipeline` runs: the models still to come. The pipeline
# writes it (mnist_edge.pipeline imports this name); the demo only reads it.
STATUS_FILE = "pipeline-status.json"
MENU_ORDER = ("cnn", "mlp")  # the model menu lists these first, then the others by name


@dataclass(frozen=True)
class ModelChoice:
    """One exported model: where it is and which engine/precision pairs this install can run."""

    name: str
    export_dir: Path
    precisions: dict[str, tuple[str, ...]]  # engine -> precisions, in formats.PRECISIONS order
    test_accuracy: float | None = None
    created: str = ""  # when the export was made: a re-published model is a new choice

    @property
    def engines(self) -> tuple[str, ...]:
        return tuple(self.precisions)

    @property
    def label(self) -> str:
        """The model menu's text: its name and test accuracy."""
        accuracy = f" (test accuracy {self.test_accuracy:.2%})" if self.test_accuracy is not None else ""
        return f"{self.name}{accuracy}"

    def default_engine(self) -> str:
        return self.engines[0]


def default_precision(available: tuple[str, ...]) -> str:
    """The registry's default precision (fp32, the reference) where there is one, else the first available."""
    return formats.DEFAULT_PRECISION if formats.DEFAULT_PRECISION in available else available[0]


def engine_available(engine: str) -> bool:
    """True when `engine`'s Python module (LiteRT is the optional `ai-edge-litert`) can be imported."""
    try:
        importlib.import_module(formats.ENGINES[engine].module)
    except (ImportError, OSError):  # not installed, or its native library does not load here
        return False
    return True


def find_models(root: Path) -> dict[str, ModelChoice]:
    """The exported models under `root` (artifacts/, artifacts/<model> or its export folder), each
    with the precisions available per engine, in menu order. Engines are offered only where installed."""
    root = Path(root)
    engines = [e for e in formats.ENGINES if engine_available(e)]
    models: dict[str, ModelChoice] = {}
    for export_dir in find_exports(root):
        manifest = read_manifest(export_dir)
        precisions = {}
        for engine in engines:
            found = {a.precision for a in manifest.artifacts if a.engine == engine}
            if found:
                precisions[engine] = tuple(p for p in formats.PRECISIONS if p in found)
        if not precisions:
            continue
        name = manifest.name if manifest.name not in models else str(export_dir.parent)
        models[name] = ModelChoice(name, export_dir, precisions, manifest.model.test_accuracy, manifest.created)
    if not models:
        raise MnistEdgeError(f"no exported model under {root}; run mnist-edge pipeline")
    order = {name: i for i, name in enumerate(MENU_ORDER)}
    return dict(sorted(models.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def best_model(models: dict[str, ModelChoice]) -> str:
    """The model a fresh page selects: the highest test accuracy (menu order breaks ties; a model
    without a recorded accuracy comes last)."""
    ranked = sorted(enumerate(models.values()), key=lambda item: (item[1].test_accuracy is None, -(item[1].test_accuracy or 0.0), item[0]))
    return ranked[0][1].name


def pending_notice(status_file: Path | None, offered: dict[str, ModelChoice]) -> str:
    """What the page says while a pipeline is still making models (read from its status file),
    or nothing: no file, a pipeline that died, or every promised model already on offer."""
    if status_file is None:
        return ""
    try:
        status = json.loads(Path(status_file).read_text())
        os.kill(int(status["pid"]), 0)  # a pipeline that was killed leaves a stale file behind
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    pending = [name for name in status.get("pending", []) if name not in offered]
    if not pending:
        return ""
    doing = f" (now {status['stage']} {status['current']})" if status.get("current") else ""
    return (
        f"Still being made{doing}: **{', '.join(pending)}**. It will appear in the Model menu by itself "
        "when it has been exported and verified."
    )


@dataclass
class ModelCatalog:
    """The models on offer and their predictors: each (model, engine, precision) is loaded on
    first use, once, and reused by every request. onnxruntime sessions may run concurrently;
    a LiteRT interpreter may not, so each LiteRT predictor runs under its own lock."""

    models: dict[str, ModelChoice]
    root: Path | None = None  # the folder the models were found in, looked at again by refresh()
    _predictors: dict[tuple[str, str, str], tuple[runtime.Predictor, contextlib.AbstractContextManager]] = field(
        default_factory=dict, repr=False
    )
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_root(cls, root: Path) -> "ModelCatalog":
        return cls(find_models(Path(root)), root=Path(root))

    def refresh(self) -> bool:
        """Pick up models published, re-published or removed since the page started (a pipeline
        still at work publishes them one by one). True when the menu changed."""
        if self.root is None:
            return False
        try:
            found = find_models(self.root)
        except MnistEdgeError:  # e.g. an export folder half-way through being replaced
            return False
        if found == self.models:
            return False
        with self._loading:
            stale = {name for name, choice in self.models.items() if found.get(name) != choice}
            self._predictors = {key: value for key, value in self._predictors.items() if key[0] not in stale}
            self.models = found
        return True

    def offers(self, model: str) -> bool:
        """True when `model` is on offer, looking again if it is not (published since?)."""
        return model in self.models or (self.refresh() and model in self.models)

    def first_choice(self, model: str) -> tuple[str, str]:
        """The (engine, precision) a model is shown with first."""
        choice = self.models[model]
        engine = choice.default_engine()
        return engine, default_precision(choice.precisions[engine])

    def class_names(self, model: str) -> tuple[str, ...]:
        choice = self.models.get(model) or next(iter(self.models.values()))
        return read_manifest(choice.export_dir).class_names

    def predictor(self, model: str, engine: str, precision: str):
        """The cached (Predictor, run guard) for this choice, loading it the first time."""
        key = (model, engine, precision)
        with self._loading:
            if key not in self._predictors:
                choice = self.models.get(model)
                if choice is None:
                    raise MnistEdgeError(f"unknown model {model!r}; choose from {', '.join(self.models)}")
                if precision not in choice.precisions.get(engine, ()):
                    offered = ", ".join(f"{e}: {'/'.join(p)}" for e, p in choice.precisions.items())
                    raise MnistEdgeError(f"{model} has no {engine} {precision} artifact here ({offered})")
                predictor = runtime.load(choice.export_dir, engine=engine, precision=precision)
                # An engine whose sessions may not serve two threads at once (the registry says) gets a lock.
                guard = contextlib.nullcontext() if formats.ENGINES[engine].thread_safe else threading.Lock()
                self._predictors[key] = (predictor, guard)
            return self._predictors[key]
