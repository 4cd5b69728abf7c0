"""The shape of the code, checked: imports point down the layers (no module imports one above
its own layer, and no two modules import each other, even inside functions), no function in
runtime/, export/ or demo/ is longer than 60 lines, and no kind, format, precision or engine is
spelled outside the registry. Source only, in well under a second."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mnist_edge import formats

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


# --- registry names: spelled in mnist_edge/formats.py only ---------------------------------------

# Every name the registry gives: precisions, engines, browser engines, file formats, --formats
# families and artifact files. Anywhere else, a string equal to one is a list of, or a branch on,
# a kind that adding a kind or engine would have to find and edit; code asks the registry instead.
REGISTRY_NAMES = frozenset({
    *formats.PRECISIONS, *formats.ENGINES, *formats.BROWSER_ENGINES, *formats.formats(), *formats.families(),
    *(k.file for k in formats.KINDS),
})
NAME_CHECKED_FOLDERS = (*FOLDERS, "bench")
WEB = ROOT / "demo" / "web"


def _module_path(dotted: str) -> str:
    """"mnist_edge.export.convert:to_onnx" -> "export/convert.py"."""
    parts = dotted.partition(":")[0].split(".")
    return "/".join(parts[1:] if parts[1:2] and parts[1] in FOLDERS else parts) + ".py"


# Where a name may be spelled: the registry, and the code of one kind or one engine that the
# registry names itself (a converter knows its own format and precisions, to_tflite picks its
# TFLite options by precision; a session knows its format). Derived from the registry, so the list
# cannot grow by hand: ("mnist_edge/formats.py", "export/convert.py", "export/micro.py",
# "runtime/backends.py", "runtime/micro.py", and the page's demo/web/js/engines/*.js).
NAMES_ALLOWED_IN = frozenset({
    "mnist_edge/formats.py",
    *(_module_path(k.converter) for k in formats.KINDS),
    *(_module_path(e.session) for e in formats.ENGINES.values()),
    *(f"demo/web/js/{b.page_module}" for b in formats.BROWSER_ENGINES.values()),
})


def _names_in_python(source: str) -> list[tuple[int, str]]:
    """(line, name) of every string constant equal to a registry name: in a comparison, an if, a
    tuple, a dict, a default, a call, an f-string's {'fp32':<9}; docstrings and prose never equal one."""
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in REGISTRY_NAMES
    )


_JS_STRING = re.compile(r"""(['"`])([^'"`\n]*)\1""")


def _names_in_javascript(source: str) -> list[tuple[int, str]]:
    """(line, name) of every quoted string equal to a registry name, in code or in a comment
    (a comment names a kind unquoted)."""
    return [
        (source.count("\n", 0, match.start()) + 1, match.group(2))
        for match in _JS_STRING.finditer(source)
        if match.group(2) in REGISTRY_NAMES
    ]


def _spelled_names() -> list[str]:
    found = []
    paths = [p for folder in NAME_CHECKED_FOLDERS for p in (ROOT / folder).rglob("*.py")]
    paths += [*WEB.glob("*.js"), *(WEB / "js").rglob("*.js"), *(WEB / "proof").rglob("*.js")]  # not node_modules/
    for path in sorted(paths):
        where = path.relative_to(ROOT).as_posix()
        if where in NAMES_ALLOWED_IN:
            continue
        text = path.read_text(encoding="utf-8")
        names = _names_in_python(text) if path.suffix == ".py" else _names_in_javascript(text)
        found += [f"{where}:{line}: {name!r}" for line, name in names]
    return found


def test_no_kind_format_precision_or_engine_is_named_outside_the_registry():
    spelled = _spelled_names()
    assert not spelled, (
        "ask mnist_edge.formats instead (an attribute of the kind, engine or precision, or a table there): "
        + "; ".join(spelled)
    )


def test_the_names_allowed_in_are_the_converters_and_sessions():
    """The allow-list is real files: a converter or session moved elsewhere moves it too."""
    missing = [where for where in NAMES_ALLOWED_IN if not (ROOT / where).is_file()]
    assert not missing, missing
    assert "runtime/predictor.py" not in NAMES_ALLOWED_IN


def test_the_name_check_catches_a_branch_on_a_name():
    assert _names_in_python('if kind == "onnx":\n    pass\n') == [(1, "onnx")]
    assert _names_in_python('SHIPPED = ("int8",)\nx = {"litert": 1}\n') == [(1, "int8"), (2, "litert")]
    assert _names_in_python('"""The onnx and int8 files."""\nf"{p:<9} fp32"\n') == []
    assert _names_in_javascript("// runs 'onnx' files\nif (precision === 'int8') {}\n") == [(1, "onnx"), (2, "int8")]
    assert _names_in_javascript("const engine = entry.engine;\n") == []


def _streams_bound_at_import(path: Path) -> list[str]:
    """Functions of `path` whose default argument is sys.stdout or sys.stderr: bound when the module
    is imported, so a caller's later redirection (contextlib.redirect_stdout, pytest's capture) is
    ignored and a closed stream is written to. Such a parameter defaults to None instead."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
            if any(ast.unparse(d) in ("sys.stdout", "sys.stderr") for d in defaults):
                found.append(f"{path.name}:{getattr(node, 'name', 'lambda')}")
    return found


def test_no_default_argument_is_sys_stdout_or_stderr(tmp_path):
    found = [f for path in MODULES.values() for f in _streams_bound_at_import(path)]
    assert not found, f"default these to None and use sys.stdout at call time: {found}"
    bound = tmp_path / "bound.py"
    bound.write_text("import sys\ndef report(x, *, stream=sys.stderr):\n    print(x, file=stream)\n")
    assert _streams_bound_at_import(bound) == ["bound.py:report"]  # the check sees what it is for
