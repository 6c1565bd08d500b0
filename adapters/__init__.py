"""Bridges from foreign objects into the physampler core (installed as ``physampler.adapters``).

The core never imports ``torch.nn``; anything that turns a framework object
(a ``torch.nn.Module`` and its data, an optimizer interface) into a core
System, CV set or integrator lives here.
"""

from importlib import import_module

# imported on first use (PEP 562): the registry loads .schema when a config is checked, which
# must not import torch
_WHERE = {"NetworkTask": ".network_task", "WanD": ".wand", "wand": ".wand"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
