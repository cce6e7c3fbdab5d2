"""Packages whose public names import their module on first use, so importing a package costs nothing.

A package's ``__init__`` lists its public names and the module of each, and calls ``lazy_package``. The
dashboard's first page, for one, reads artifacts and computes metrics without waiting for torch, which
only the model modules import.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


def lazy_package(package: str, names: Mapping[str, str]) -> None:
    """Give ``package`` (a name in ``sys.modules``) the public ``names``, each loaded from the module it maps
    to (relative to the package, e.g. ``".cache"``) when first used."""

    class LazyPackage(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            module = names.get(name)
            if module is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value = getattr(importlib.import_module(module, package), name)
            setattr(self, name, value)  # later lookups find it directly
            return value

        def __dir__(self) -> list[str]:
            return sorted({*vars(self), *names})

        def __setattr__(self, name: str, value: Any) -> None:
            # Importing a submodule binds it to the package's attribute of its name. Where a public name is
            # also its module's name (evaluation.evaluate), keep the public object, as an eager
            # ``from .evaluate import evaluate`` in the package did.
            if name in names and isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                value = getattr(value, name, value)
            super().__setattr__(name, value)

    sys.modules[package].__class__ = LazyPackage
