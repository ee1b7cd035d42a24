"""Dropout that can draw its mask from an explicit generator.

The relational module draws its dropout masks from a generator seeded by (seed, step, micro-step),
so that every process computes the same ratios and a resumed run draws the same masks as an
uninterrupted one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inverted dropout: zero each entry with probability ``p`` and scale the rest by ``1/(1-p)``."""
    if not training or p == 0.0:
        return x
    if generator is None:
        return F.dropout(x, p, True)
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32) >= p
    return x * keep.to(x.dtype) / (1.0 - p)
