"""The package's imports run one way, as docs/architecture.md draws them: a module imports
only its own layer and the layers below (function-level imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

#: Lowest first; the same order as the table in docs/architecture.md.
LAYERS = (
    (
        "softzoo._io",
        "softzoo._names",
        "softzoo._codes",
        "softzoo._lightning",
        "softzoo._options",
        "softzoo._quiet",
        "softzoo._state",
        "softzoo.configs",
        "softzoo.recipe",
    ),
    ("softzoo.datasets",),
    ("softzoo.data",),
    ("softzoo.nn",),
    ("softzoo.families",),
    ("softzoo.metrics",),
    ("softzoo.models",),
    ("softzoo.onnx", "softzoo.zoo"),
    ("softzoo.report",),
    ("softzoo.callbacks",),
    ("softzoo.runner",),
    ("softzoo.demo", "softzoo.bench", "softzoo.reproduce", "softzoo.sklearn", "softzoo.tune"),
    ("softzoo.cli",),
)
#: No module of the package is longer than this (lines).
LONGEST_MODULE = 600
#: `import softzoo` re-exports the zoo lazily (inside __getattr__): a facade, not a layer.
FACADE = "softzoo"


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: add it (and to the docs)")


def _module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path) -> list[tuple[str, int]]:
    """The softzoo modules a file imports (``from softzoo import x`` names softzoo.x)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("softzoo")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("softzoo"):
            if node.module == "softzoo":
                found += [(f"softzoo.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((node.module, node.lineno))
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted((ROOT / "softzoo").rglob("*.py")):
        importer = _module_name(path)
        if importer == FACADE:
            continue
        for imported, line in _imports(path):
            if imported == "softzoo.__version__":
                continue  # the version constant of the facade
            if _layer(imported) > _layer(importer):
                problems.append(f"{path.relative_to(ROOT)}:{line} {importer} imports {imported}")
    return problems


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports() == []


def test_the_walk_finds_an_upward_import(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "softzoo" / "nn"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from softzoo.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert upward_imports() == ["softzoo/nn/bad.py:2 softzoo.nn.bad imports softzoo.cli"]


def test_importing_the_zoo_does_not_import_the_cli() -> None:
    code = "import sys, softzoo.zoo; print(sorted(m for m in sys.modules if 'softzoo.cli' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_the_docs_draw_the_same_layers() -> None:
    doc = (ROOT / "docs/architecture.md").read_text()
    positions = [doc.index(f"`{prefixes[0]}`") for prefixes in LAYERS]
    assert positions == sorted(positions)


def _modules() -> dict[str, object]:
    return {_module_name(p): p for p in sorted((ROOT / "softzoo").rglob("*.py"))}


def import_cycles() -> list[list[str]]:
    """The groups of package modules that import each other round in a circle (function-
    level and TYPE_CHECKING imports included): Tarjan's strongly connected components."""
    modules = _modules()

    def targets(name: str) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(modules[name].read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                # ``from package import submodule`` imports the submodule
                found |= {
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                }
        return {m for m in found if m in modules and m not in (name, FACADE)}

    graph = {name: targets(name) for name in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert import_cycles() == []


def test_the_walk_finds_a_circle(tmp_path, monkeypatch) -> None:
    package = tmp_path / "softzoo"
    package.mkdir()
    (package / "a.py").write_text("from softzoo.b import x\n")
    (package / "b.py").write_text("def f():\n    from softzoo.a import y\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_cycles() == [["softzoo.a", "softzoo.b"]]


def test_no_module_is_longer_than_the_house_allows() -> None:
    lengths = {name: len(p.read_text().splitlines()) for name, p in _modules().items()}
    assert {n: k for n, k in lengths.items() if k > LONGEST_MODULE} == {}


def _third_party(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return {n for n in names if not n.startswith(("softzoo", "__future__"))}


def test_importing_softzoo_changes_no_warnings_filter() -> None:
    """What softzoo's own modules do at import; the libraries they import (whose filters
    are theirs) are imported first."""
    modules = _modules()
    libraries = sorted(set().union(*(_third_party(p) for p in modules.values())))
    code = (
        "import importlib, warnings\n"
        f"for name in {libraries!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "before = list(warnings.filters)\n"
        f"for name in {sorted(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print([f for f in warnings.filters if f not in before])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
