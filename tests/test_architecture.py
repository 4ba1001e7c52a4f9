"""The house rules that keep bridge's layers apart: only the seam imports wasmtime, and no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bridge"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(p): p
    for p in sorted(PACKAGE.rglob("*.py"))
    if "guest" not in p.relative_to(PACKAGE).parts[:1]
}


def _is_extension(name: str) -> bool:
    """A compiled module of ours (the cffi kernels), which imports nothing back."""
    *package, leaf = name.split(".")
    folder = PACKAGE.parent.joinpath(*package)
    return any(folder.glob(f"{leaf}.*.so")) or any(folder.glob(f"{leaf}.*.pyd"))


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import outside `if TYPE_CHECKING:` blocks, lazy ones included."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES or _is_extension(sub) else target, node.lineno))
    return found


def test_only_the_seam_imports_wasmtime() -> None:
    offenders = [
        f"{_module_name(path)} line {line}: imports {target}"
        for path in MODULES.values()
        for target, line in _imports(path)
        if (target == "wasmtime" or target.startswith("wasmtime."))
        and not _module_name(path).startswith("bridge._seam")
    ]
    assert offenders == []


def test_bridge_has_no_import_cycle() -> None:
    graph = {
        name: sorted({t for t, _ in _imports(path) if t in MODULES and t != name})
        for name, path in MODULES.items()
    }
    # A package's __init__ re-exports its modules; an edge into a package from inside it is a cycle.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["bridge.host", "bridge.memory"])
def test_host_and_memory_do_not_import_guest(module: str) -> None:
    targets = {t for t, _ in _imports(MODULES[module])}
    assert "bridge.guest" not in targets
