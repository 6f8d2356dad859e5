"""The package's imports run one way: no cycle among its modules (counting imports inside functions and under
TYPE_CHECKING), nothing imports the console layer (cli, callbacks), and no test loads a file by path."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("cdyn_bench.cli", "cdyn_bench.callbacks")


def module_name(path: Path) -> str:
    """cdyn_bench.x.y for cdyn_bench/x/y.py; the tasks/ folder installs as cdyn_bench.tasks."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = ("cdyn_bench", *parts) if parts[0] == "tasks" else parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    files = [*(ROOT / "cdyn_bench").rglob("*.py"), *(ROOT / "tasks").rglob("*.py")]
    return {module_name(p): p for p in files}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports anywhere in its file (from-imports of a module's names count as it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules, or []."""
    state, stack = {}, []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_package_has_no_import_cycle():
    assert cycle(graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_nothing_imports_the_console_layer():
    offenders = {name: sorted(set(targets) & set(TOP)) for name, targets in graph().items() if set(targets) & set(TOP)}
    assert offenders == {}


def test_no_test_loads_a_file_by_path():
    loaders = [p.name for p in (ROOT / "tests").glob("*.py") if p != Path(__file__)
               and "spec_from_file_location" in p.read_text()]
    assert loaders == []
