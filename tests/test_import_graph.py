"""The layers of ``clipadapt/`` show in its imports: no cycle, and ``models/`` depends on nothing above it.

Every import counts, at module level, inside functions, and under ``TYPE_CHECKING``: a cycle that only a
lazy import keeps from failing is still a cycle to a reader. An import names a module (``from .hooks import
X`` is an edge to ``models.hooks``, not to ``models/__init__``), as import-linter counts them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clipadapt"
# What models/ may import from clipadapt: itself only (models/hooks.py is the whole of what it knows of plugins).
MODELS = "clipadapt.models"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """``{module: the clipadapt modules it imports}``."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in modules else module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_clipadapt_has_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_models_import_nothing_above_them() -> None:
    graph = import_graph()
    wrong = {
        module: sorted(t for t in targets if not (t == MODELS or t.startswith(MODELS + ".")))
        for module, targets in graph.items()
        if module == MODELS or module.startswith(MODELS + ".")
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_the_checker_sees_a_cycle_and_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    source = PACKAGE / "models" / "clip.py"
    assert "clipadapt.models.hooks" in import_graph()[_module_name(source)]
