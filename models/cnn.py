"""A small convolutional network for small images ([P2]'s CNN task at CPU scale; docs/science.md §8.2).

    h¹ = maxpool₂(ReLU(conv₃ₓ₃(x; K¹) + b¹))          [B, c₁, H/2, W/2]   (padding 1)
    h² = maxpool₂(ReLU(conv₃ₓ₃(h¹; K²) + b²))         [B, c₂, H/4, W/4]
    logits = W_o · flatten(h²) + b_o                   [B, classes]

For 8×8 digits with c₁ = 4, c₂ = 8: 4·9+4 + 8·4·9+8 + 10·32+10 = 666 parameters; for 28×28
images with c₁ = c₂ = 2 the head sees 2·7·7 = 98 features: 1 048 parameters at 10 classes.
Init as torch's ``nn.Conv2d`` / ``nn.Linear`` default (uniform ±1/√fan_in), from an explicit
generator.  Weight tensors keep output channels on their first axis (the box's m, §5).

``forward_batched`` evaluates W parameter sets at once as one grouped convolution per layer
(groups = W: walker w's channels see only its own kernels) and one bmm for the head, so the
adapter needs neither vmap nor a loop.
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
        img = self._images(x).expand(-1, n_w, -1, -1)  # [B, W, H, W]: walker w's input channel
        h = F.conv2d(img, params["K1"].reshape(n_w * c1, 1, 3, 3), params["b1"].reshape(-1), padding=1, groups=n_w)
        h = F.max_pool2d(torch.relu(h), 2)
        h = F.conv2d(h, params["K2"].reshape(n_w * c2, c1, 3, 3), params["b2"].reshape(-1), padding=1, groups=n_w)
        h = F.max_pool2d(torch.relu(h), 2)  # [B, W·c2, H/4, W/4]
        feats = h.reshape(h.shape[0], n_w, -1).transpose(0, 1)  # [W, B, features]
        return torch.baddbmm(params["b_o"][:, None], feats, params["W_o"].transpose(1, 2))
