"""The package's shape, kept true by a test: layers that only point down, no import cycles, every
stage package with the same parts, and its flow and commands named after it.

    schema, config_base, storage  <-  stage packages  <-  flows  <-  cli
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "thresher"
# Pure code: no Prefect, no command line, usable from a notebook or a worker process.
PURE = ("storage", "scorers", "dedup", "perplexity", "dsir", "judges", "embeddings", "augment", "export",
        "llm", "models", "dashboards")
# Stages a user runs: each has config.py, flows/<stage>.py and cli/<stage>.py.
STAGES = ("dedup", "perplexity", "dsir", "judges", "embeddings", "augment", "export")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, list[str]]]:
    """(module imported, names imported from it) for every import in `name`, deferred ones included."""
    path = MODULES[name]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [alias.name for alias in node.names]))
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        for module, names in _imports(name):
            for target in [module] + [f"{module}.{n}" for n in names]:
                if target in MODULES and target != name:
                    graph[name].add(target)
    return graph


def test_no_import_cycles():
    graph, cycles = _graph(), []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_neither_prefect_nor_the_cli(package):
    offenders = []
    for name in MODULES:
        if name == f"thresher.{package}" or name.startswith(f"thresher.{package}."):
            for module, _ in _imports(name):
                top = module.split(".")
                if top[0] in ("prefect", "typer") or top[:2] in (["thresher", "flows"], ["thresher", "cli"]):
                    offenders.append(f"{name} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_the_same_parts(stage):
    assert (PACKAGE / stage / "__init__.py").is_file()
    assert (PACKAGE / stage / "config.py").is_file(), f"thresher/{stage}/config.py holds the stage's settings"
    assert (PACKAGE / "flows" / f"{stage}.py").is_file(), f"its Prefect flow is thresher/flows/{stage}.py"
    assert (PACKAGE / "cli" / f"{stage}.py").is_file(), f"its commands are thresher/cli/{stage}.py"


def test_no_private_names_cross_packages():
    crossing = []
    for name in MODULES:
        own = name.split(".")[1] if name.count(".") else ""
        for module, names in _imports(name):
            parts = module.split(".")
            if parts[0] == "thresher" and len(parts) > 1 and parts[1] != own:
                crossing += [f"{name}: {module}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert crossing == []


def test_cli_package_only_mounts_commands():
    source = (PACKAGE / "cli" / "__init__.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert defined == ["main"], "commands live in thresher/cli/<stage>.py"
