"""One-layer transformer after Nanda et al. ([N]; docs/science.md §8) for modular arithmetic.

    h⁰_t = W_E[x_t] + W_pos[t]                                  (no LayerNorm anywhere)
    a_h  = softmax_causal(Q_h K_hᵀ / √d_head) V_h,   Q_h = h⁰ W_Q[h], K_h = h⁰ W_K[h], V_h = h⁰ W_V[h]
    h¹   = h⁰ + Σ_h a_h W_O[h]                                    (no attention biases)
    h²   = h¹ + W_out ReLU(W_in h¹ + b_in) + b_out
    logits = h²_last W_U                                           (untied unembedding, p classes)

Parameter tensors keep the output neurons on their first axis (``W_Q[h]`` is
[d_head, d_model], ``W_in`` is [d_mlp, d_model], …), so the box constraint's
m = first dimension (docs/science.md §5) counts output neurons.  Init: N(0, 1/d_model)
(std 1/√d_model), unembedding std 1/√d_vocab, MLP biases 0.

Only the last position's logits are used.  ``forward`` / ``forward_batched``
compute just what they need — keys and values of every position, the query,
attention, MLP and unembedding of the last one — which is exact for one layer;
``forward_full`` runs every position, as a plain implementation would, and is kept
to test that.
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
        """Logits [B, p] at the last position (fast path; see :meth:`forward_batched`)."""
        return self.forward_batched({n: p[None] for n, p in self.named_parameters()}, tokens)[0]

    def forward_batched(self, params: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        """Logits [W, B, p] of W parameter sets at once: ``params[name]`` is [W, *shape].

        The walker axis is an explicit batch axis of every matmul (bmm), so W networks
        cost one call per layer; the adapter uses this instead of vmap when a module
        has it.  Only the last position's logits are computed.  When the batch holds
        more examples than there are (position, token) pairs (B > T·d_vocab: 2 244
        training pairs against 3·68 for p = 67), keys, values and the query are
        computed once per (position, token) and gathered per example, since h⁰_t
        depends only on the token at t: exact, and it removes the attention
        projections from the per-example cost.
        """
        W_E, W_pos = params["W_E"], params["W_pos"]
        n_w, V, d = W_E.shape
        B, T = tokens.shape
        H, dh = self.n_heads, self.d_head
        w_kv = torch.cat([params["W_K"], params["W_V"]], dim=1).reshape(n_w, 2 * H * dh, d)
        w_q = params["W_Q"].reshape(n_w, H * dh, d)
        last_tok = tokens[:, -1]
        if B > T * V:
            e = (W_E[:, None] + W_pos[:, :T, None]).reshape(n_w, T * V, d)  # h⁰ of every (position, token)
            k_tab, v_tab = torch.bmm(e, w_kv.transpose(1, 2)).split(H * dh, dim=2)  # [W, T·V, H·dh] each
            e_last = e[:, (T - 1) * V:]
            q_tab = torch.bmm(e_last, w_q.transpose(1, 2))  # [W, V, H·dh]: queries of the last position
            # Scores of every (query token, key position, key token) per head, one bmm: the
            # per-example scores are then a gather, not a [W, B, T, H, dh] product and sum.
            qh = q_tab.reshape(n_w, V, H, dh).transpose(1, 2).reshape(n_w * H, V, dh)
            kh = k_tab.reshape(n_w, T * V, H, dh).permute(0, 2, 3, 1).reshape(n_w * H, dh, T * V)
            table = torch.bmm(qh, kh).reshape(n_w, H, V * T * V) / math.sqrt(dh)
            # position-major [T, B] layouts: the softmax over T = 3 and the sum over T then run over
            # contiguous slabs of B examples (a softmax over a last axis of 3 does not vectorise)
            flat_t = (torch.arange(T, device=tokens.device)[:, None] * V + tokens.T).reshape(-1)  # [T·B]
            pick = (last_tok[None, :] * (T * V)).expand(T, B).reshape(-1) + flat_t
            att = torch.softmax(table.index_select(2, pick).reshape(n_w, H, T, B), dim=2)  # [W, H, T, B]
            v = v_tab.index_select(1, flat_t).reshape(n_w, T, B, H, dh)
            z = (att.permute(0, 2, 3, 1)[..., None] * v).sum(1).reshape(n_w, B, H * dh)
            h_last = e_last.index_select(1, last_tok)  # [W, B, d]
        else:
            h0 = W_E.index_select(1, tokens.reshape(-1)).reshape(n_w, B, T, d) + W_pos[:, None, :T]
            kv = torch.bmm(h0.reshape(n_w, B * T, d), w_kv.transpose(1, 2))
            h_last = h0[:, :, -1]
            q = torch.bmm(h_last, w_q.transpose(1, 2))
            kv = kv.reshape(n_w, B, T, 2 * H, dh)
            k, v = kv.split(H, dim=3)  # split, not slicing: its backward is one cat, not two zero-filled copies
            q = q.reshape(n_w, B, 1, H, dh)
            att = torch.softmax((q * k).sum(-1) / math.sqrt(dh), dim=2)  # [W, B, T, H]: the last position sees all
            z = (att[..., None] * v).sum(2).reshape(n_w, B, H * dh)
        h1 = h_last + torch.bmm(z, params["W_O"].transpose(1, 2))
        pre = torch.baddbmm(params["b_in"][:, None], h1, params["W_in"].transpose(1, 2))
        h2 = h1 + torch.baddbmm(params["b_out"][:, None], torch.relu(pre), params["W_out"].transpose(1, 2))
        return torch.bmm(h2, params["W_U"].transpose(1, 2))

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
