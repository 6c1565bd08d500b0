"""One-layer transformer after Nanda et al. ([N]; SCIENCE.md §8) for modular arithmetic.

    h⁰_t = W_E[x_t] + W_pos[t]                                  (no LayerNorm anywhere)
    a_h  = softmax_causal(Q_h K_hᵀ / √d_head) V_h,   Q_h = h⁰ W_Q[h], K_h = h⁰ W_K[h], V_h = h⁰ W_V[h]
    h¹   = h⁰ + Σ_h a_h W_O[h]                                    (no attention biases)
    h²   = h¹ + W_out ReLU(W_in h¹ + b_in) + b_out
    logits = h²_last W_U                                           (untied unembedding, p classes)

Parameter tensors keep the output neurons on their first axis (``W_Q[h]`` is
[d_head, d_model], ``W_in`` is [d_mlp, d_model], …), so the box constraint's
m = first dimension (SCIENCE.md §5) counts output neurons.  Init: N(0, 1/d_model)
(std 1/√d_model), unembedding std 1/√d_vocab, MLP biases 0.

Only the last position's logits are used.  ``forward`` computes just what they
need — keys and values of every position, the query, attention, MLP and
unembedding of the last one — which is exact for one layer; ``forward_full``
runs every position and is kept to test that.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class OneLayerTransformer(nn.Module):
    def __init__(self, p: int, *, d_model: int = 128, n_heads: int = 4, d_head: int = 32, d_mlp: int = 512,
                 n_ctx: int = 3, generator: torch.Generator | None = None, dtype=torch.float32):
        super().__init__()
        for name, v in dict(p=p, d_model=d_model, n_heads=n_heads, d_head=d_head, d_mlp=d_mlp, n_ctx=n_ctx).items():
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: must be a positive integer (got {v!r})")
        self.p, self.d_model, self.n_heads, self.d_head, self.d_mlp = p, d_model, n_heads, d_head, d_mlp
        d_vocab = p + 1
        s = 1.0 / math.sqrt(d_model)

        def init(*shape, std):
            return nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype) * std)

        self.W_E = init(d_vocab, d_model, std=s)
        self.W_pos = init(n_ctx, d_model, std=s)
        self.W_Q = init(n_heads, d_head, d_model, std=s)
        self.W_K = init(n_heads, d_head, d_model, std=s)
        self.W_V = init(n_heads, d_head, d_model, std=s)
        self.W_O = init(d_model, n_heads * d_head, std=s)
        self.W_in = init(d_mlp, d_model, std=s)
        self.b_in = nn.Parameter(torch.zeros(d_mlp, dtype=dtype))
        self.W_out = init(d_model, d_mlp, std=s)
        self.b_out = nn.Parameter(torch.zeros(d_model, dtype=dtype))
        self.W_U = init(p, d_model, std=1.0 / math.sqrt(d_vocab))

    def _embed(self, tokens):
        return self.W_E[tokens] + self.W_pos[: tokens.shape[-1]]  # [B, T, d]

    def _head(self, h1):
        mlp = torch.relu(h1 @ self.W_in.T + self.b_in) @ self.W_out.T + self.b_out
        return (h1 + mlp) @ self.W_U.T

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, p] at the last position (fast path)."""
        h0 = self._embed(tokens)  # [B, T, d]
        last = h0[:, -1]  # [B, d]
        q = torch.einsum("hed,bd->bhe", self.W_Q, last)  # [B, H, dh]
        k = torch.einsum("hed,btd->bhte", self.W_K, h0)  # [B, H, T, dh]
        v = torch.einsum("hed,btd->bhte", self.W_V, h0)
        att = torch.softmax(torch.einsum("bhe,bhte->bht", q, k) / math.sqrt(self.d_head), dim=-1)  # the last
        z = torch.einsum("bht,bhte->bhe", att, v).reshape(tokens.shape[0], -1)  # position sees all: no mask
        return self._head(last + z @ self.W_O.T)

    def forward_full(self, tokens: torch.Tensor) -> torch.Tensor:
        """Every position with a causal mask; logits of the last position [B, p]."""
        h0 = self._embed(tokens)
        T = tokens.shape[-1]
        q = torch.einsum("hed,btd->bhte", self.W_Q, h0)
        k = torch.einsum("hed,btd->bhte", self.W_K, h0)
        v = torch.einsum("hed,btd->bhte", self.W_V, h0)
        scores = torch.einsum("bhse,bhte->bhst", q, k) / math.sqrt(self.d_head)
        mask = torch.ones(T, T, dtype=torch.bool, device=tokens.device).tril()
        att = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        z = torch.einsum("bhst,bhte->bshe", att, v).reshape(tokens.shape[0], T, -1)
        h1 = h0 + z @ self.W_O.T
        return self._head(h1)[:, -1]
