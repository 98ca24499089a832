"""Package faces that import on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable, Callable]:
    """(`__getattr__`, `__dir__`) for `package` whose public `names` live in submodules.

    `names` maps each public name to the submodule (relative to `package`) defining it; the
    submodule is imported the first time the name is looked up, then cached in the package.
    """
    space = importlib.import_module(package).__dict__

    def getattr_(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        space[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(space) | set(names))

    return getattr_, dir_
