"""Tasks: modular arithmetic ([P1] App. A; docs/science.md §8), generated; and two small data sets
that ship inside scikit-learn (no download at run time): the 8×8 handwritten digits (UCI
optdigits test set, 1 797 images, 10 classes) and the diabetes regression data (442 patients,
10 standardised features, a disease-progression target) — [P2]'s image and tabular tasks at
CPU scale (§8.2).

Modular arithmetic:

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


def _split(n: int, train_fraction: float, split_seed: int):
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction: must be in (0, 1) (got {train_fraction!r})")
    k = int(round(train_fraction * n))
    if not 0 < k < n:
        raise ValueError(f"train_fraction: leaves an empty train or test set of {n} examples (got {train_fraction})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    return perm[:k].sort().values, perm[k:].sort().values


@dataclass
class DataTask:
    """Inputs and targets of a shipped data set, split into train/test (``train_fraction``,
    ``split_seed``; ``examples`` keeps only the first n of a fixed-seed shuffle, for small runs)."""

    name: str
    train_fraction: float = 0.5
    split_seed: int = 0
    examples: int | None = None

    def __post_init__(self):
        if self.name not in DATA_SETS:
            raise ValueError(f"name: must be one of {', '.join(DATA_SETS)} (got {self.name!r})")
        x, y = DATA_SETS[self.name]()
        if self.examples is not None:
            if isinstance(self.examples, bool) or not isinstance(self.examples, int) or not 2 <= self.examples <= len(y):
                raise ValueError(f"examples: must be an integer in [2, {len(y)}] (got {self.examples!r})")
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(12345))[: self.examples].sort().values
            x, y = x[keep], y[keep]
        self.inputs, self.targets = x, y
        self.train_index, self.test_index = _split(len(y), self.train_fraction, self.split_seed)

    def split(self, device=None, dtype=torch.float32):
        """((train inputs, targets), (test inputs, targets)); float inputs and targets in ``dtype``."""
        def cast(t):
            return t.to(device, dtype) if t.dtype.is_floating_point else t.to(device)

        tr, te = self.train_index, self.test_index
        return ((cast(self.inputs[tr]), cast(self.targets[tr])), (cast(self.inputs[te]), cast(self.targets[te])))


def _digits():
    """8×8 images scaled to [0, 1] as [1797, 64] float64, labels [1797] int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.from_numpy(d.data / 16.0), torch.from_numpy(d.target).long()


def _diabetes():
    """[442, 10] standardised features (as shipped), target standardised to mean 0, variance 1."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    y = torch.from_numpy(d.target)
    return torch.from_numpy(d.data), (y - y.mean()) / y.std()


DATA_SETS = {"digits": _digits, "diabetes": _diabetes}
