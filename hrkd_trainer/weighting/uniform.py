"""Uniform weights: multi-domain KD, HRKD eq. 5."""

from __future__ import annotations

import torch

from ..losses import multi_domain_kd_loss
from .base import LossWeighting, RatioOutput, WeightedLoss


class UniformWeighting(LossWeighting):
    """Eq. 5: ``L = Σ_d ( L^d_embd + Σ_m (L^{m,d}_attn + L^{m,d}_hidn) + γ L^d_pred )``.

    Every domain and position has weight 1 (no ratios are logged).

    Args:
        pred_weight: γ, the weight of the prediction loss (paper: 1).
    """

    name = "uniform"

    def __init__(self, pred_weight: float = 1.0):
        super().__init__()
        self.pred_weight = pred_weight

    def forward(self, components: dict[str, torch.Tensor], ratios: RatioOutput | None = None) -> WeightedLoss:
        loss = multi_domain_kd_loss(
            components["embd"], components["attn"], components["hidn"], components["pred"],
            pred_weight=self.pred_weight,
        )  # fmt: skip
        return WeightedLoss(loss)
