"""The core looks only down: gradtensor's modules in layers, read from the source.

Imports inside functions count as much as module-level ones. A module may import modules of its
own layer or below, never above, and no chain of imports comes back to where it started.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gradtensor"
KERNELS = ROOT / "kernels"

# Bottom to top. A module belongs to the layer of the longest name that it starts with.
LAYERS = [
    ("gradtensor.backend", "gradtensor.errors", "gradtensor.kernels"),
    ("gradtensor.autograd.graph",),  # nodes, saved values, grad mode
    ("gradtensor.tensor",),  # the Tensor: an array, its gradient, its node
    ("gradtensor.autograd.engine",),  # backward() and grad()
    ("gradtensor.ops.registry",),  # primitives: record and dispatch
    ("gradtensor.ops",),  # the ops themselves
    ("gradtensor.ops.methods",),  # the Tensor's op methods
    ("gradtensor.autograd", "gradtensor.autograd.functional", "gradtensor.testing"),
    (
        "gradtensor.nn",
        "gradtensor.optim",
        "gradtensor.data",
        "gradtensor.serialization",
        "gradtensor.distributed",
    ),
    ("gradtensor.viz", "gradtensor.cuda", "gradtensor.compile"),
    ("gradtensor",),
]


def _layer(name: str) -> int:
    best, found = -1, None
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{name} is in no layer: place it in LAYERS"
    return found


def _module_name(path: Path, top: Path, package: str) -> str:
    parts = [package, *path.relative_to(top).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The gradtensor modules `path` imports, anywhere in it, by absolute name."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for a in node.names:  # `from . import engine` imports a module, not a name
                full = f"{module}.{a.name}"
                found.add(full if full in known else module)
    return {m for m in found if m.startswith("gradtensor")}


def _graph() -> dict[str, set[str]]:
    files = {
        _module_name(p, PACKAGE, "gradtensor"): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "kernels" not in p.relative_to(PACKAGE).parts
    }
    files.update(
        {_module_name(p, KERNELS, "gradtensor.kernels"): p for p in sorted(KERNELS.glob("*.py"))}
    )
    known = set(files)
    return {name: _imports(path, name, known) - {name} for name, path in files.items()}


GRAPH = _graph()


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_one_above_it(name):
    mine = _layer(name)
    above = sorted(m for m in GRAPH[name] if _layer(m) > mine)
    assert not above, f"{name} (layer {mine}) imports {above}, which sit above it"


def test_no_import_cycle():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done or name not in GRAPH:
            return
        for m in sorted(GRAPH[name]):
            visit(m, path + [name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def test_the_kernels_know_no_tensor():
    for name, imported in GRAPH.items():
        if name.startswith("gradtensor.kernels"):
            assert all(m.startswith("gradtensor.kernels") for m in imported), (name, imported)


def test_the_scan_sees_imports_inside_functions(tmp_path):
    """An upward import hidden in a function is found, relative or absolute."""
    path = tmp_path / "fake.py"
    path.write_text("def f():\n    from ..nn import functional\n    import gradtensor.optim\n")
    found = _imports(path, "gradtensor.ops.fake", {"gradtensor.nn.functional"})
    assert found == {"gradtensor.nn.functional", "gradtensor.optim"}
    assert all(_layer(m) > _layer("gradtensor.ops.fake") for m in found)
