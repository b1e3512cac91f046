"""The house: no module imports another in a circle (imports inside functions included), none is over 300 lines,
`--help` and `--cfg job` import neither torch nor Optuna, and the private API of Hydra and Optuna that the sweeper
uses still holds (a pinned upgrade that changes it fails here, with a message that says what)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, environment
from fashionlab.search import hydra_internals, optuna_internals

SRC = ROOT / "src"
OURS = ("fashionlab", "hydra_plugins.fashionlab_optuna_sweeper")


def modules() -> dict[str, Path]:
    """Every module of ours, by its dotted name (a package by its __init__)."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name.startswith(OURS):
            found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours that `name` imports, at the top or inside a function (not for type checking only)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: from the package this module is in
                package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], node.module])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def test_no_module_imports_another_in_a_circle():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    assert sum(len(v) for v in graph.values()) > 50  # the graph was read (a parser that finds nothing passes)


def test_no_module_is_over_300_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > 300} == {}


def test_the_private_api_of_optuna_and_hydra_still_holds():
    """Fails after an upgrade of the pinned versions that moves what the sweeper relies on, naming it."""
    problems = optuna_internals.check()
    assert problems == [], optuna_internals.upgrade_message(problems)
    problems = hydra_internals.check()
    assert problems == [], hydra_internals.upgrade_message(problems)


@pytest.mark.parametrize("args", [("--help",), ("--cfg", "job")])
def test_help_and_the_composed_config_import_neither_torch_nor_optuna(args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(SRC / "train.py"), *args],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"torch", "optuna", "fashionlab.search.loop"} & imported == set()
    assert "fashionlab.hydra_setup" in imported  # the import log was read
