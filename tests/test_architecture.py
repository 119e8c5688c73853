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
    ("softzoo.cli", "softzoo.demo", "softzoo.bench", "softzoo.reproduce"),
    ("softzoo.sklearn", "softzoo.tune"),
)
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
