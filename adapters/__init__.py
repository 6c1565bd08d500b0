"""Bridges from foreign objects into the physampler core (installed as ``physampler.adapters``).

The core never imports ``torch.nn``; anything that turns a framework object
(a ``torch.nn.Module`` and its data, an optimizer interface) into a core
System, CV set or integrator lives here.  ``schema`` registers the NN system and the
train config with the core's registry (entry point ``physampler.plugins: nn``).
"""

from .network_task import NetworkTask
from .wand import WanD, wand  # the function wand, not the submodule of that name

__all__ = ["NetworkTask", "WanD", "wand"]
