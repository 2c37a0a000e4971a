"""The shape of the code a maintainer relies on: no import cycles, no private names reached
across modules, modules of a readable size, and a new model picked up from one file + one YAML."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "fer_exp"
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported fer_exp module, names taken from it) for every import, at any depth, but
    those only for type checkers."""
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, []) for a in child.names if a.name.startswith("fer_exp"))
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("fer_exp"):
                for alias in child.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{child.module}.{alias.name}"
                    found.append((sub, []) if sub in modules else (child.module, [alias.name]))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target, _ in _imports(path, modules):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
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

    for v in list(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_no_cycles_between_packages():
    """config, data, augment, models, training, runs, tracking, analysis, cli: each package
    depends only on packages below it."""
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        for target in targets:
            a, b = ".".join(module.split(".")[:2]), ".".join(target.split(".")[:2])
            if a != b and b != "fer_exp":
                packages[a].add(b)
    assert _cycles(packages) == []


def test_the_cycle_check_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_across_modules():
    modules = _modules()
    private = [
        f"{name}: {target}.{n}"
        for name, path in modules.items()
        for target, names in _imports(path, modules)
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert private == []


def test_modules_are_short_or_say_why():
    long = [
        f"{p.relative_to(REPO)} ({n} lines)"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
        and f"longer than {MAX_LINES} lines" not in (ast.get_docstring(ast.parse(p.read_text())) or "")
    ]
    assert long == []


TINY_MODEL = '''"""A test model: one dense layer on the flattened image."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from fer_exp.models.base import ModelSpec, head


class TinyDense(ModelSpec):
    """Flatten -> Dense -> the classifier head."""

    name: Literal["tiny_dense"]
    units: PositiveInt = 8

    def build(self, input_shape, num_classes, class_mode="categorical"):
        import keras

        inputs = keras.Input(shape=input_shape, name="image")
        x = keras.layers.Dense(self.units, activation="relu")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, head(x, num_classes, class_mode), name=self.name)
'''


@pytest.mark.parametrize("with_file", [True, False])
def test_a_new_model_is_one_file_and_one_yaml(tmp_path, with_file):
    """As the "Extending fer_exp" page tells: models/tiny_dense.py + conf/model/tiny_dense.yaml."""
    copy = tmp_path / "fer_exp"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "conf" / "model" / "tiny_dense.yaml").write_text("name: tiny_dense\nunits: 4\n")
    if with_file:
        (copy / "models" / "tiny_dense.py").write_text(TINY_MODEL)
    code = (
        "from fer_exp.config import compose; from fer_exp.models import registered; "
        "cfg = compose(['model=tiny_dense']); print(sorted(registered())); print(cfg.model)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    if with_file:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "tiny_dense" in proc.stdout and "units=4" in proc.stdout
    else:  # the YAML alone names a model nobody defined: a config error listing the known ones
        assert proc.returncode != 0 and "tiny_dense" in proc.stderr
