"""Factories for ``[system] kind = "python"``: [P2]'s image and tabular tasks at CPU scale
(docs/science.md §8.2), each a :class:`~physampler.adapters.NetworkTask` on a data set that
ships inside scikit-learn (no download).  Configs name them as ``system.factory``, e.g.
``"physampler.models.factories:digits_cnn"`` (examples/data/).  They double as templates for a
user's own network: copy one, swap the module and the data.
"""
from __future__ import annotations

import torch

from ..adapters.network_task import NetworkTask
from .cnn import SmallCNN
from .mlp import MLP
from .tasks import DataTask


def digits_cnn(dtype=torch.float64, device=None) -> NetworkTask:
    """The 666-parameter :class:`SmallCNN` on 600 of the 8×8 digits — 300 train (of which 60 are
    held out for validation) and 300 test — in the box c = 3 (m = output channels); CVs
    ln L_train, Ã_test (or its logit), ln L_val and Ã_val."""
    (train, test) = DataTask("digits", train_fraction=0.5, split_seed=0, examples=600).split(dtype=dtype)

    def make(generator):
        return SmallCNN(8, 10, (4, 8), generator=generator, dtype=dtype)

    return NetworkTask(make(torch.Generator().manual_seed(0)), train, test, constraint="box", box_c=3.0,
                       init=make, validation=0.2, validation_seed=0)


def diabetes_mlp(dtype=torch.float64, device=None) -> NetworkTask:
    """A 10→32→1 :class:`MLP` (385 parameters) regressing the standardised diabetes target —
    221 train patients (of which 44 are held out for validation) and 221 test — in the box
    c = 3; CVs ln MSE_train (``log_train_loss``), ln MSE_test and ln MSE_val."""
    (train, test) = DataTask("diabetes", train_fraction=0.5, split_seed=0).split(dtype=dtype)

    def make(generator):
        return MLP((10, 32, 1), generator=generator, dtype=dtype)

    return NetworkTask(make(torch.Generator().manual_seed(0)), train, test, constraint="box", box_c=3.0,
                       init=make, loss="mse", validation=0.2, validation_seed=0)
