"""The shape of the code, checked: imports point down the layers (no module imports one above
its own layer, and no two modules import each other, even inside functions), and no function in
runtime/, export/ or demo/ is longer than 60 lines. Source only, in well under a second."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"mnist_edge": "mnist_edge", "trainer": "mnist_edge.trainer", "export": "mnist_edge.export",
           "runtime": "mnist_edge.runtime", "demo": "mnist_edge.demo"}

# Lowest first. A module may import its own layer and the ones before it, never a later one.
# "mnist_edge" is the package's __init__ only: a new top-level module must be placed here.
LAYERS = (
    ("base", (
        "mnist_edge", "mnist_edge.errors", "mnist_edge.quiet", "mnist_edge.files", "mnist_edge.termination",
        "mnist_edge.schema", "mnist_edge.formats", "mnist_edge.manifest", "mnist_edge.contract",
        "mnist_edge.download", "mnist_edge.data", "mnist_edge.imagefolder", "mnist_edge.metrics", "mnist_edge.timing",
        "mnist_edge.signature", "mnist_edge.site", "mnist_edge.fields",
    )),
    ("runtime", ("mnist_edge.runtime", "mnist_edge.evaluate")),  # evaluate runs with the runtime only
    ("trainer", ("mnist_edge.trainer",)),
    ("export", ("mnist_edge.export",)),
    ("apps", ("mnist_edge.demo",)),
    ("tools", ("mnist_edge.bench", "mnist_edge.pipeline", "mnist_edge.scale")),
    ("cli", ("mnist_edge.cli", "mnist_edge.__main__")),
)

MAX_FUNCTION_LINES = 60
SHORT_FUNCTION_FOLDERS = ("runtime", "export", "demo")


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, package: str) -> set[str]:
    """Every project module `path` imports, at the top or inside a function."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            targets |= {f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names}
    return {t for t in targets if t in MODULES}


def _layer(module: str) -> int:
    best = max(
        ((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
         if module == prefix or (prefix != "mnist_edge" and module.startswith(prefix + "."))),
        default=None,
    )
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


GRAPH = {name: _imports(path, name) for name, path in MODULES.items()}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        _layer(module)


def test_imports_point_down_the_layers():
    upward = [
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})"
        for a, targets in GRAPH.items()
        for b in targets
        if _layer(b) > _layer(a)
    ]
    assert not upward, upward


def test_no_two_modules_import_each_other():
    """A cycle of imports (even lazy, inside functions) means two modules share one job."""
    def is_package_of(a: str, b: str) -> bool:  # a package's __init__ re-exporting its modules
        return b.startswith(a + ".") and MODULES[a].name == "__init__.py"

    cycles = []
    for a, targets in GRAPH.items():
        for b in targets:
            if a < b and a in GRAPH.get(b, ()) and not is_package_of(a, b) and not is_package_of(b, a):
                cycles.append(f"{a} <-> {b}")
    assert not cycles, cycles


def _long_functions() -> dict[str, int]:
    found = {}
    for folder in SHORT_FUNCTION_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        found[f"{path.relative_to(ROOT).as_posix()}:{node.name}"] = lines
    return found


def test_no_function_over_60_lines_in_runtime_export_and_demo():
    long = _long_functions()
    assert not long, f"split these into functions of at most {MAX_FUNCTION_LINES} lines: {long}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The checkers themselves: an upward import and a long function are both seen."""
    upward = tmp_path / "up.py"
    upward.write_text("def f():\n    from mnist_edge.cli import main\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert "mnist_edge.cli" in _imports(upward, "mnist_edge.runtime.up")
    assert _layer("mnist_edge.cli") > _layer("mnist_edge.runtime.up")
    tree = ast.parse(upward.read_text())
    (function,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert function.end_lineno - function.lineno + 1 > MAX_FUNCTION_LINES
