"""The tree's rules (docs/ARCHITECTURE.md): imports point one way, no import cycles between
modules nor between folders (imports inside functions count), and only `realtime.clock` reads
the wall clock. Read from the source with `ast`; nothing is imported."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("kernels", "models", "realtime", "benchmarks")
# package -> the project packages it may import (besides itself)
ALLOWED = {
    "kernels": set(),
    "models": {"kernels"},
    "realtime": {"models", "kernels"},
    "benchmarks": {"realtime", "models", "kernels"},
}
# the one module that finds the repository's folders from its own location (every layer may
# import models); "app" is the entry script: its demo recording path should come from
# `realtime.assets.demo_recording` once the script is split (#22)
REPO_FINDERS = {"models.env", "app"}
CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"),
               ("time", "time_ns"), ("time", "monotonic_ns"), ("time", "perf_counter_ns"),
               ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today")}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path = REPO, packages: tuple[str, ...] = PACKAGES,
                    scripts: tuple[str, ...] = ("app",)) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    for script in scripts:
        found[script] = root / f"{script}.py"
    return found


def imports(path: Path, name: str) -> Iterator[tuple[str, int]]:
    """Every module imported anywhere in the file (top level or inside functions), with its
    line; relative imports resolved against ``name``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:  # `from models import checkpoint` imports a module
                yield f"{base}.{alias.name}", node.lineno


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``target`` names (or the nearest package above it)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[tuple[str, int]]]:
    """module -> the project modules it imports (anywhere in the file), with the line."""
    edges: dict[str, set[tuple[str, int]]] = {}
    for name, path in modules.items():
        edges[name] = set()
        for target, line in imports(path, name):
            found = resolve(target, modules)
            if found and found != name and not name.startswith(found + "."):
                edges[name].add((found, line))
    return edges


@pytest.fixture(scope="module")
def graph() -> dict[str, set[tuple[str, int]]]:
    return import_graph(project_modules())


def folder_of(name: str) -> str:
    """The folder node of module ``name``: a sub-package (``realtime.dashboard.people`` ->
    ``realtime.dashboard``, its ``__init__`` included); a module directly in a top-level
    package, or a script, is a node of its own (``realtime.pipeline``)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else name


def folder_graph(graph: dict[str, set[tuple[str, int]]]) -> dict[str, dict[str, str]]:
    """folder -> {folder it imports: one import that makes the edge, as "module:line"}."""
    folders: dict[str, dict[str, str]] = {}
    for name, targets in graph.items():
        here = folder_of(name)
        out = folders.setdefault(here, {})
        for target, line in sorted(targets):
            there = folder_of(target)
            if there != here and not here.startswith(there + "."):
                out.setdefault(there, f"{name}:{line} imports {target}")
    return folders


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first node repeated at the end) for each back edge of a depth-first walk."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_the_graph_sees_the_project(graph):
    assert {"kernels.gate_mask", "models.mmlatch", "realtime.pipeline", "app"} <= set(graph)
    assert any(t.startswith("kernels") for t, _ in graph["models.mmlatch"])
    assert ("realtime.engine", 0) not in graph["realtime.pipeline"]  # lines are real
    assert any(t == "realtime.engine" and line > 0 for t, line in graph["realtime.pipeline"])


def test_imports_point_one_way(graph):
    bad = []
    for name, targets in graph.items():
        top = name.split(".")[0]
        if top == "app":
            continue
        for target, line in targets:
            other = target.split(".")[0]
            if other != top and other not in ALLOWED[top]:
                bad.append(f"{name}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_the_core_of_realtime_does_not_import_its_consumers(graph):
    consumers = ("realtime.dashboard", "realtime.calibration", "realtime.eval")
    bad = [f"{name}:{line} imports {target}"
           for name, targets in graph.items()
           if name.startswith(("realtime.", "models.", "kernels."))
           and not name.startswith(consumers)
           for target, line in targets if target.startswith(consumers)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles(graph):
    cycles = find_cycles({name: {t for t, _ in targets} for name, targets in graph.items()})
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_folder_imports_a_folder_that_imports_it_back(graph):
    folders = folder_graph(graph)
    cycles = find_cycles({f: set(out) for f, out in folders.items()})
    assert not cycles, "\n".join(
        " -> ".join(c) + "\n" + "\n".join(f"  {folders[a][b]}" for a, b in pairwise(c))
        for c in cycles)


def test_the_folder_check_sees_a_cycle_through_an_import_inside_a_function(tmp_path):
    files = {"__init__.py": "", "ui/__init__.py": "", "store/__init__.py": "",
             "ui/page.py": "from pkg.store.rules import keep\n",
             "store/rules.py": "def keep():\n    from pkg.ui.page import show\n"}
    for name, text in files.items():
        (tmp_path / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    modules = project_modules(tmp_path, ("pkg",), ())
    folders = folder_graph(import_graph(modules))
    assert folders["pkg.store"] == {"pkg.ui": "pkg.store.rules:2 imports pkg.ui.page"}
    assert find_cycles({f: set(out) for f, out in folders.items()}) == [
        ["pkg.store", "pkg.ui", "pkg.store"]]


def test_only_the_clock_reads_the_wall_clock():
    readers = []
    for name, path in project_modules().items():
        if name == "realtime.clock":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and (node.value.id, node.attr) in CLOCK_CALLS):
                readers.append(f"{name}:{node.lineno} {node.value.id}.{node.attr}")
    assert not readers, "\n".join(readers)


def test_only_models_env_finds_the_repository_from_its_own_file():
    finders = sorted(
        f"{name}:{node.lineno}"
        for name, path in project_modules().items()
        if not name.startswith("benchmarks") and name not in REPO_FINDERS
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Name) and node.id == "__file__")
    assert not finders, "\n".join(finders)


THREAD_NAME = re.compile(r"`([a-z<][a-z<>_:*-]*)`")


def _doc_thread_names() -> set[str]:
    """The thread names in the first column of docs/ARCHITECTURE.md's Threads table."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    table = text.split("## Threads", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith(("| thread", "| ---")):
            names.update(THREAD_NAME.findall(line.split(" | ", 1)[0]))
    return names


def _code_thread_names() -> set[str]:
    """Every thread name the code gives (``name=`` of a Thread or a BatchingExecutor), an
    f-string's fields as ``*``; `Pipeline._spawn`'s threads are ``pipeline:<what>``."""
    names = set()
    for name, path in project_modules().items():
        if not name.startswith("realtime"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            if func in ("Thread", "BatchingExecutor"):
                for kw in node.keywords:
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        names.add(kw.value.value)
                    elif kw.arg == "name" and isinstance(kw.value, ast.JoinedStr):
                        names.add("".join(v.value if isinstance(v, ast.Constant) else "*"
                                          for v in kw.value.values))
    return names


def _matches(pattern: str, name: str) -> bool:
    """Whether a code name (``*`` for a field) can be the doc's name (``<...>`` a field)."""
    regex = ".+".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, re.sub(r"<[^>]+>", "x", name)) is not None


def test_the_thread_table_names_the_threads_the_code_starts():
    doc, code = _doc_thread_names(), _code_thread_names()
    assert {"pipeline:tick", "session-reaper", "executor:asr"} <= doc  # the table was read
    assert "pipeline:*" in code and "retention" in code  # and the code
    unknown = sorted(n for n in doc if not any(_matches(c, n) for c in code))
    undocumented = sorted(c for c in code if not any(_matches(c, n) for n in doc))
    assert not unknown, f"docs/ARCHITECTURE.md names threads the code never starts: {unknown}"
    assert not undocumented, f"threads missing from docs/ARCHITECTURE.md: {undocumented}"
