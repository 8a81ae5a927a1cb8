"""The core looks only down: what each layer of gradtensor may import, read from the source.

Imports inside functions count as much as module-level ones. Today's rules: the kernels know no
part of gradtensor but themselves; the autodiff core (backend, autograd, ops, tensor) never reaches
up into what is built on it (nn, optim, data, serialization, viz, testing); the array backend sits
at the bottom. (The core's own modules still import each other in a loop: tensor, the engine and
the ops; breaking it is open work.)
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gradtensor"
KERNELS = ROOT / "kernels"

CORE = ("gradtensor.backend", "gradtensor.errors", "gradtensor.autograd", "gradtensor.ops")
CORE += ("gradtensor.tensor",)
ABOVE_CORE = ("gradtensor.nn", "gradtensor.optim", "gradtensor.data", "gradtensor.serialization")
ABOVE_CORE += ("gradtensor.viz", "gradtensor.testing", "gradtensor.cuda")


def _module_name(path: Path, top: Path, package: str) -> str:
    parts = [package, *path.relative_to(top).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports, anywhere in it, as absolute names."""
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
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from . import engine`
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = {
    _module_name(p, PACKAGE, "gradtensor"): p
    for p in sorted(PACKAGE.rglob("*.py"))
    if "kernels" not in p.relative_to(PACKAGE).parts
}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _under(n, CORE)))
def test_the_core_never_imports_what_is_built_on_it(name):
    upward = sorted(m for m in _imports(MODULES[name], name) if _under(m, ABOVE_CORE))
    assert not upward, f"{name} imports {upward}, which are built on the core"


def test_the_backend_imports_nothing_of_gradtensor():
    assert not [m for m in _imports(MODULES["gradtensor.backend"], "gradtensor.backend")
                if m.startswith("gradtensor")]  # fmt: skip


@pytest.mark.parametrize("path", sorted(KERNELS.glob("*.py")), ids=lambda p: p.name)
def test_the_kernels_know_no_tensor(path):
    name = _module_name(path, KERNELS, "gradtensor.kernels")
    outside = sorted(
        m
        for m in _imports(path, name)
        if m.startswith("gradtensor") and not _under(m, ("gradtensor.kernels",))
    )
    assert not outside, f"kernels/{path.name} imports {outside}"


def test_the_scan_sees_imports_inside_functions(tmp_path):
    """An upward import hidden in a function is found, relative or absolute."""
    path = tmp_path / "fake.py"
    path.write_text("def f():\n    from ..nn import functional\n    import gradtensor.optim\n")
    found = _imports(path, "gradtensor.ops.fake")
    assert {"gradtensor.nn.functional", "gradtensor.optim"} <= found
    assert any(_under(m, ABOVE_CORE) for m in found)
