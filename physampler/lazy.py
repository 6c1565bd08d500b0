"""Packages whose public names are imported on first use (PEP 562), so that importing the
package — for the command line's ``--help``, or for the registry a config check loads — costs
nothing until a name is used."""
from __future__ import annotations

import sys
from importlib import import_module


def exports(package: str, where: dict[str, str]):
    """The module ``__getattr__`` of ``package`` for names ``where`` = {name: relative module}:
    the first access imports the module and caches the value in the package."""
    def __getattr__(name: str):
        if name in where:
            value = getattr(import_module(where[name], package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
