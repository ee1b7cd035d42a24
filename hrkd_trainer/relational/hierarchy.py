"""Eq. 13-16: reference prototypes and the hierarchical compare-aggregate mechanism."""

from __future__ import annotations

import torch


def reference_prototypes(prototypes: torch.Tensor, bilinear: torch.Tensor) -> torch.Tensor:
    """Eq. 13-14: ``RP_m = softmax(h_m W^D_m h_mᵀ) · h_m`` (softmax over the last dimension).

    ``prototypes`` ``h_m`` is ``(D, F)``, ``bilinear`` ``W^D_m`` is ``(F, F)``; returns ``(D, F)``.
    """
    scores = prototypes @ bilinear @ prototypes.transpose(0, 1)  # (D, D)
    return torch.softmax(scores, dim=-1) @ prototypes


def compare_aggregate(
    lower: torch.Tensor, reference: torch.Tensor, bilinear: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 15-16 for every domain at once.

    ``lower`` holds ``h_{≤m,d}``: ``(m+1, D, F)`` (positions 0..m); ``reference`` ``RP_m`` is ``(D, F)``;
    ``bilinear`` holds ``W^H_{m,d}``: ``(D, F, F)``. The similarity ratios are
    ``α^H_{m,d} = softmax_j(h_{j,d} W^H_{m,d} RP_{m,d})`` over ``j = 0..m``, and the aggregated
    prototype is ``AP_{m,d} = Σ_j α^H_{m,d,j} h_{j,d}``. Returns ``(AP (D, F), α^H (D, m+1))``.
    """
    projected = torch.einsum("dfg,dg->df", bilinear, reference)  # W^H_{m,d} RP_{m,d}: (D, F)
    scores = torch.einsum("jdf,df->dj", lower, projected)  # (D, m+1)
    ratios = torch.softmax(scores, dim=-1)
    aggregated = torch.einsum("dj,jdf->df", ratios, lower)
    return aggregated, ratios
