"""The layout keeps its promises: rooms import downwards only, ``import workbench`` stays
cheap, modules stay small, optional packages are imported in one place."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# The rooms from the bottom up: a room may import the rooms before it, never after.
# Leaves (errors, config, optional, sizes, progress) are shared by all.
LEAVES = {"errors", "sizes", "optional", "config", "progress"}
ORDER = ["hardware", "memory", "session", "frame", "engine", "ml", "cluster", "datasets", "lab",
         "diagnostics", "bench", "cli"]
# Rooms that sit side by side (neither above the other) but may use each other's public API.
ALLOWED = {
    ("config", "memory"),  # the variables are checked with the memory room's parser and modes
    ("datasets", "frame"),  # load() returns Frames
}
GPU_LIBRARIES = {"cudf", "cudf_polars", "cuml", "cupy", "rmm", "pylibcudf", "dask_cuda", "dask_cudf",
                 "cuda", "rapidsmpf"}
# One cohesive class each (the reason they may be longer).
LONG_MODULES = {"frame/frame.py", "bench/report.py", "datasets/store.py"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(), str(path))


def _room(rel: Path) -> str:
    return rel.parts[0].removesuffix(".py")


def _imports(tree) -> list[tuple[str, int]]:
    """Every ``workbench.*`` module imported anywhere in the file (functions included)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return out


def test_rooms_import_downwards_only():
    rank = {room: i for i, room in enumerate(ORDER)}
    wrong = []
    for rel, tree in _modules():
        room = _room(rel)
        if room in ("__init__", "__main__"):
            continue  # the public API re-exports the rooms; python -m runs the CLI
        for name, line in _imports(tree):
            parts = name.split(".")
            if parts[0] != "workbench" or len(parts) < 2 or not (PACKAGE / parts[1]).exists() and not (
                    PACKAGE / f"{parts[1]}.py").exists():
                continue
            target = parts[1].removesuffix(".py")
            if target in (room, "__init__") or target in LEAVES or (room, target) in ALLOWED:
                continue
            if room in LEAVES or rank.get(target, -1) > rank.get(room, -1):
                wrong.append(f"workbench/{rel}:{line} ({room}) imports {name} ({target}, a room above)")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules():
    """Module-level imports (those run at import time) form no cycle."""
    graph: dict[str, set[str]] = {}
    names = {}
    for rel, tree in _modules():
        mod = "workbench." + ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        names[mod] = rel
        deps = set()
        for node in tree.body:  # top level only: imports inside functions run later
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workbench"):
                # ``from workbench.x import y`` needs the submodule x.y when y is one.
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found = {m for m in subs if (PACKAGE.parent / (m.replace(".", "/") + ".py")).exists()
                         or (PACKAGE.parent / m.replace(".", "/")).is_dir()}
                deps |= found or {node.module}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("workbench")}
        graph[mod] = deps
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, ()):
            if dep not in graph:
                continue
            if state.get(dep) == 1 and not _package_of(node, dep):
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)


def _package_of(node: str, dep: str) -> bool:
    # A package's __init__ importing its own submodules, which import the package: the
    # way Python packages re-export, not a cycle.
    return node.startswith(dep + ".")


def test_import_workbench_loads_no_gpu_library_and_no_room():
    code = ("import sys, workbench, workbench.config, workbench.errors; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (GPU_LIBRARIES,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    rooms = subprocess.run([sys.executable, "-c", "import sys, workbench; print(sorted(m for m in "
                            "sys.modules if m.startswith('workbench.')))"],
                           capture_output=True, text=True, check=True)
    assert rooms.stdout.strip() == "[]", rooms.stdout


@pytest.mark.parametrize("rel", [rel for rel, _ in _modules()], ids=str)
def test_modules_stay_small(rel):
    lines = len((PACKAGE / rel).read_text().splitlines())
    limit = 600 if rel.as_posix() in LONG_MODULES else 400
    assert lines <= limit, f"workbench/{rel} has {lines} lines; split it by concern"


def test_optional_packages_are_imported_only_lazily():
    """GPU libraries are never imported at module level, but in the modules that exist
    to use them (imported only when a GPU is used)."""
    gpu_modules = {"frame/device.py", "frame/fetch.py"}
    wrong = []
    for rel, tree in _modules():
        if rel.as_posix() in gpu_modules:
            continue
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            wrong += [f"workbench/{rel}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in GPU_LIBRARIES]
    assert not wrong, "\n".join(wrong)


def test_the_cluster_function_survives_importing_its_module():
    code = ("import workbench.cluster, workbench as wb; "
            "print(callable(wb.cluster), hasattr(wb.cluster, 'LocalClient'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
