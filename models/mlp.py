"""MLPs: one for modular arithmetic, one for vectors (tabular data, flattened images).

``ModularMLP``: one-hot(x) ⊕ one-hot(y) → ReLU(W_1 · + b_1) → W_2 · + b_2 (p logits).
``MLP``: x → ReLU(W_1 x + b_1) → … → W_L h + b_L, widths ``sizes = (in, h_1, …, out)``.

Weights keep output neurons on their first axis ([out, in]); init as torch's ``nn.Linear``
default (uniform ±1/√fan_in), from an explicit generator.  ``forward_batched`` evaluates W
parameter sets with one ``baddbmm`` per layer (the adapter's ``batched`` strategy).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _uniform(shape, fan_in, generator, dtype):
    b = 1.0 / math.sqrt(fan_in)
    return nn.Parameter((torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * b)


class MLP(nn.Module):
    def __init__(self, sizes: tuple[int, ...], *, generator: torch.Generator | None = None, dtype=torch.float32):
        super().__init__()
        sizes = tuple(sizes)
        if len(sizes) < 2 or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in sizes):
            raise ValueError(f"sizes: must be two or more positive integers (got {sizes!r})")
        self.sizes = sizes
        self.weights = nn.ParameterList([_uniform((o, i), i, generator, dtype) for i, o in zip(sizes, sizes[1:])])
        self.biases = nn.ParameterList([_uniform((o,), i, generator, dtype) for i, o in zip(sizes, sizes[1:])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.addmm(b, h, w.T)
            h = torch.relu(h) if k < len(self.weights) - 1 else h
        return h

    def forward_batched(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Outputs [W, B, out] of W parameter sets (``params[name]`` is [W, *shape])."""
        n = len(self.weights)
        h = x.flatten(1).expand(params["weights.0"].shape[0], -1, -1)
        for k in range(n):
            h = torch.baddbmm(params[f"biases.{k}"][:, None], h, params[f"weights.{k}"].transpose(1, 2))
            h = torch.relu(h) if k < n - 1 else h
        return h


class ModularMLP(nn.Module):
    def __init__(self, p: int, hidden: int = 64, *, generator: torch.Generator | None = None, dtype=torch.float32):
        super().__init__()
        for name, v in dict(p=p, hidden=hidden).items():
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: must be a positive integer (got {v!r})")
        self.p = p

        def uniform(*shape, fan_in):
            b = 1.0 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * b)

        self.W1 = uniform(hidden, 2 * p, fan_in=2 * p)
        self.b1 = uniform(hidden, fan_in=2 * p)
        self.W2 = uniform(p, hidden, fan_in=hidden)
        self.b2 = uniform(p, fan_in=hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_batched({n: p[None] for n, p in self.named_parameters()}, tokens)[0]

    def forward_batched(self, params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """Logits [W, B, p] of W parameter sets (``params[name]`` is [W, *shape])."""
        W1 = params["W1"]
        # one-hot(x) ⊕ one-hot(y) times W1 is a sum of two gathered columns
        h = W1.index_select(2, tokens[:, 0]) + W1.index_select(2, self.p + tokens[:, 1]) + params["b1"][:, :, None]
        return torch.baddbmm(params["b2"][:, None], torch.relu(h).transpose(1, 2), params["W2"].transpose(1, 2))
