"""Modular-arithmetic tasks ([P1] App. A; docs/science.md §8), generated, never downloaded.

Every pair (x, y) ∈ Z_p² is one example; the input is the token sequence
[x, y, "="] with "=" = token p (vocabulary p + 1) and the label is op(x, y) mod p.
A fixed-seed permutation splits the p² examples into train and test.

Operations: ``x+y``; ``x2+y`` (x² + y); ``x3+xy2+y`` (x³ + x·y² + y).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import is_prime

OPERATIONS = {
    "x+y": lambda x, y: x + y,
    "x2+y": lambda x, y: x * x + y,
    "x3+xy2+y": lambda x, y: x * x * x + x * y * y + y,
}


@dataclass
class ModularTask:
    """All p² examples of ``op`` mod p split into train/test (``train_fraction``, ``split_seed``)."""

    op: str
    p: int
    train_fraction: float = 0.5
    split_seed: int = 0

    def __post_init__(self):
        if self.op not in OPERATIONS:
            raise ValueError(f"op: must be one of {', '.join(OPERATIONS)} (got {self.op!r})")
        if not isinstance(self.p, int) or not is_prime(self.p):
            raise ValueError(f"p: must be a prime (got {self.p!r})")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction: must be in (0, 1) (got {self.train_fraction!r})")
        p = self.p
        x = torch.arange(p).repeat_interleave(p)
        y = torch.arange(p).repeat(p)
        self.inputs = torch.stack([x, y, torch.full_like(x, p)], dim=1)  # [p², 3]
        self.labels = OPERATIONS[self.op](x, y) % p  # [p²]
        perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(self.split_seed))
        n_train = int(round(self.train_fraction * p * p))
        if not 0 < n_train < p * p:
            raise ValueError(f"train_fraction: leaves an empty train or test set for p = {p} (got {self.train_fraction})")
        self.train_index, self.test_index = perm[:n_train].sort().values, perm[n_train:].sort().values

    @property
    def vocab(self) -> int:
        return self.p + 1

    def split(self, device=None):
        """((train inputs, train labels), (test inputs, test labels)) on ``device``."""
        tr, te = self.train_index, self.test_index
        return ((self.inputs[tr].to(device), self.labels[tr].to(device)),
                (self.inputs[te].to(device), self.labels[te].to(device)))
