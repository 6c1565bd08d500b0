"""Bridges from foreign objects into the physampler core (installed as ``physampler.adapters``).

The core never imports ``torch.nn``; anything that turns a framework object
(a ``torch.nn.Module`` and its data, an optimizer interface) into a core
System, CV set or integrator lives here.
"""

from .network_task import NetworkTask
from .wand import WanD, wand

__all__ = ["NetworkTask", "WanD", "wand"]
