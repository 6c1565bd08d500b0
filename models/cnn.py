"""A small convolutional network for small images ([P2]'s CNN task at CPU scale; docs/science.md §8.2).

    h¹ = maxpool₂(ReLU(conv₃ₓ₃(x; K¹) + b¹))          [B, c₁, H/2, W/2]   (padding 1)
    h² = maxpool₂(ReLU(conv₃ₓ₃(h¹; K²) + b²))         [B, c₂, H/4, W/4]
    logits = W_o · flatten(h²) + b_o                   [B, classes]

For 8×8 digits with c₁ = 4, c₂ = 8: 4·9+4 + 8·4·9+8 + 10·32+10 = 666 parameters; for 28×28
images with c₁ = c₂ = 2 the head sees 2·7·7 = 98 features: 1 048 parameters at 10 classes.
Init as torch's ``nn.Conv2d`` / ``nn.Linear`` default (uniform ±1/√fan_in), from an explicit
generator.  Weight tensors keep output channels on their first axis (the box's m, §5).

``forward_batched`` evaluates W parameter sets at once, so the adapter needs neither vmap nor a
loop.  It computes the same function in another order, chosen for tiny channel counts, where
the library's convolutions run at a few per cent of the machine (benchmarks/RESULTS.md):

* ReLU and the bias commute with the max-pool, since both are monotone:
  maxpool₂(ReLU(z + b)) = ReLU(maxpool₂(z) + b), so both act on the pooled, 4× smaller tensor.
* Layer 1's input (the data) is shared by all walkers, so its W·c₁ kernels are one GEMM of the
  image patches, [B·H·W, 9] × [9, W·c₁], pooled block by block (:class:`_SharedConvPool`).
* Layer 2 is one grouped convolution (groups = W: walker w's channels see only its own kernels)
  in channels-last layout, the head one bmm.

A max-pool tie between distinct values routes the gradient to the first of them in both
orders; ties between identical patches give identical gradients whichever wins.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class SmallCNN(nn.Module):
    def __init__(self, image: int = 8, classes: int = 10, channels: tuple[int, int] = (4, 8), *,
                 generator: torch.Generator | None = None, dtype=torch.float32):
        super().__init__()
        c1, c2 = channels
        for name, v in dict(image=image, classes=classes, c1=c1, c2=c2).items():
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: must be a positive integer (got {v!r})")
        if image % 4:
            raise ValueError(f"image: must be a multiple of 4, for two 2×2 poolings (got {image})")
        self.image, self.classes, self.channels = image, classes, (c1, c2)
        features = c2 * (image // 4) ** 2

        def uniform(*shape, fan_in):
            b = 1.0 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * b)

        self.K1 = uniform(c1, 1, 3, 3, fan_in=9)
        self.b1 = uniform(c1, fan_in=9)
        self.K2 = uniform(c2, c1, 3, 3, fan_in=9 * c1)
        self.b2 = uniform(c2, fan_in=9 * c1)
        self.W_o = uniform(classes, features, fan_in=features)
        self.b_o = uniform(classes, fan_in=features)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 1, self.image, self.image)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] of images x [B, H·W] or [B, 1, H, W] (plain convolutions)."""
        h = F.max_pool2d(torch.relu(F.conv2d(self._images(x), self.K1, self.b1, padding=1)), 2)
        h = F.max_pool2d(torch.relu(F.conv2d(h, self.K2, self.b2, padding=1)), 2)
        return h.flatten(1) @ self.W_o.T + self.b_o

    def forward_batched(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits [W, B, classes] of W parameter sets (``params[name]`` is [W, *shape])."""
        n_w = params["K1"].shape[0]
        c1, c2 = self.channels
        img = self._images(x)
        n = img.shape[0]
        if img.requires_grad:  # the fused layer 1 has no input gradient
            z = F.conv2d(img.expand(-1, n_w, -1, -1), params["K1"].reshape(n_w * c1, 1, 3, 3), padding=1, groups=n_w)
            z = F.max_pool2d(z, 2)
        else:
            z = _SharedConvPool.apply(img, params["K1"].reshape(n_w * c1, 9).T)  # [B, W·c1, H/2, W/2]
        h = torch.relu(z + params["b1"].reshape(1, -1, 1, 1))
        h = h.contiguous(memory_format=torch.channels_last)
        z = F.conv2d(h, params["K2"].reshape(n_w * c2, c1, 3, 3), padding=1, groups=n_w)
        h = torch.relu(F.max_pool2d(z, 2) + params["b2"].reshape(1, -1, 1, 1))  # [B, W·c2, H/4, W/4]
        feats = h.reshape(n, n_w, c2, -1).transpose(0, 1).reshape(n_w, n, -1)  # [W, B, features], (c, y, x) order
        return torch.baddbmm(params["b_o"][:, None], feats, params["W_o"].transpose(1, 2))


def _patches(img: torch.Tensor) -> torch.Tensor:
    """The 3×3 patches (padding 1) of one-channel images [B, 1, H, W] as [B, H·W, 9]."""
    return F.unfold(img, 3, padding=1).transpose(1, 2)


class _SharedConvPool(torch.autograd.Function):
    """maxpool₂(conv₃ₓ₃(x; K)) for images x [B, 1, H, W] that need no gradient and O kernels
    K [9, O], as [B, O, H/2, W/2] (channels last): a GEMM of x's patches with K, then
    max_pool2d — which keeps the first maximum of a window, as the plain model does.

    On the CPU it runs over blocks of images whose pre-pool activation stays in cache
    (:data:`_BLOCK_BYTES`): passes over the whole [B, O, H, W] would each go through main
    memory.  Saved for the backward: x and the pool's indices; the patches are recomputed.
    ∂/∂K = Σ patchesᵀ · (g routed back through the pool)."""

    @staticmethod
    def forward(ctx, img: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        n, _, hh, ww = img.shape
        o = kernels.shape[1]
        out = torch.empty(n, o, hh // 2, ww // 2, dtype=kernels.dtype, device=kernels.device,
                          memory_format=torch.channels_last)
        where = torch.empty(out.shape, dtype=torch.int64, device=out.device, memory_format=torch.channels_last)
        for rows in _blocks(n, hh * ww * o * kernels.element_size(), kernels.device):
            # mm on the flattened patches: matmul's folding of a batch depends on requires_grad,
            # which would make a no-grad evaluation differ in the last bit from one with gradients
            z = torch.mm(_patches(img[rows]).reshape(-1, 9), kernels)  # [b·H·W, O]
            z = z.view(-1, hh, ww, o).permute(0, 3, 1, 2)
            out[rows], where[rows] = torch.ops.aten.max_pool2d_with_indices(z, [2, 2], [2, 2])
        ctx.save_for_backward(img, where)
        ctx.o = o
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        img, where = ctx.saved_tensors
        n, _, hh, ww = img.shape
        grad = torch.zeros(9, ctx.o, dtype=g.dtype, device=g.device)
        for rows in _blocks(n, hh * ww * ctx.o * g.element_size(), g.device):
            gb = g[rows]
            shape = torch.empty(gb.shape[0], ctx.o, hh, ww, dtype=g.dtype, device=g.device,
                                memory_format=torch.channels_last)  # the pool's input: its layout
            gz = torch.ops.aten.max_pool2d_with_indices_backward(gb, shape, [2, 2], [2, 2], [0, 0], [1, 1],
                                                                 False, where[rows])
            grad.addmm_(_patches(img[rows]).reshape(-1, 9).T, gz.permute(0, 2, 3, 1).reshape(-1, ctx.o))
        return None, grad


_BLOCK_BYTES = 512 << 10


def _blocks(n: int, row_bytes: int, device: torch.device):
    """Row slices covering range(n): all at once on a GPU, else about _BLOCK_BYTES each."""
    size = n if device.type != "cpu" else max(1, _BLOCK_BYTES // max(1, row_bytes))
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]
