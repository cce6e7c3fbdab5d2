"""The package's layers: a module imports only from its own layer or below, so the folder tree is the
architecture (README "Architecture") and nothing reaches upwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "celeba_model"

# Lowest first. Above the foundation (layer 0), packages of one layer do not import each other.
LAYERS: list[set[str]] = [
    {"errors", "attributes", "utils"},
    {"workspace"},
    {"data"},
    {"models", "metrics"},
    {"evaluation"},
    {"training", "analysis", "photo"},
    {"catalogue"},
    {"cli", "__init__", "__main__"},
]


def _unit(module: str) -> str:
    """The top-level part of a module path inside the package: ``data`` for ``celeba_model.data.cache``."""
    return module.split(".")[1] if "." in module else "__init__"


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Every celeba_model module ``path`` imports, as absolute names (at any depth of the file)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "celeba_model" or target.startswith("celeba_model."):
                # `from . import x` names a module when x is one
                found += [f"{target}.{a.name}" if target.count(".") == 0 else target for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("celeba_model")]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_package_part_has_a_layer():
    units = {_unit(_module_name(p)) for p in MODULES}
    assert units <= set().union(*LAYERS), units - set().union(*LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_one_above_it(path):
    here = _unit(_module_name(path))
    for target in _imports(path):
        there = _unit(target)
        assert _layer(there) <= _layer(here), f"{_module_name(path)} (layer {_layer(here)}) imports {target} " \
                                              f"(layer {_layer(there)})"
        if _layer(there) == _layer(here) and _layer(here) not in (0, len(LAYERS) - 1):
            assert there == here, f"{_module_name(path)} imports {target}: packages of one layer stay apart"
