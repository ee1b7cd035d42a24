"""The paper's relational weighting: domain-relational graphs over hierarchical prototypes
(HRKD §2.2-2.3, eq. 6-16) give the ratios r of eq. 17."""

from __future__ import annotations

import torch

from ..losses import hrkd_loss
from ..relational import RelationalBalancer, ratio_kl_to_uniform
from ..vocabulary import RatioScale
from .base import LossWeighting, RatioOutput, WeightedLoss


class RelationalWeighting(LossWeighting):
    """Eq. 17: ``L = Σ_d ( r_{0,d} L^d_embd + Σ_m r_{m,d} (L^{m,d}_attn + L^{m,d}_hidn) + γ/D L^d_pred )``
    with r ``(M+1, D)`` from :class:`RelationalBalancer` (eq. 6-16) on the step's prototypes.

    ``ratio_scale="mean"`` multiplies eq. 17 by D (uniform ratios then give eq. 5 exactly);
    ``"sum"`` is eq. 17 as written. ``entropy_weight`` λ adds ``λ Σ_m KL(r_m ‖ U_D)``.
    ``learned`` puts the balancer in its own optimizer group (``learning_rate``, ``weight_decay``);
    otherwise it stays at its random initialisation, as the released code (``frozen``).
    """

    name = "relational"
    needs_step_seed = True

    def __init__(
        self,
        balancer: RelationalBalancer,
        pred_weight: float = 1.0,
        ratio_scale: str = RatioScale.MEAN,
        entropy_weight: float = 0.0,
        learned: bool = False,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ):
        super().__init__()
        self.balancer = balancer
        self.pred_weight = pred_weight
        self.ratio_scale = RatioScale.parse(ratio_scale, "ratio_scale")
        self.entropy_weight = entropy_weight
        self.learned = learned
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        if not learned:
            balancer.requires_grad_(False)

    @property
    def needs_prototypes(self) -> bool:
        return self.balancer.needs_prototypes

    def ratios(
        self, prototypes: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> RatioOutput:
        out = self.balancer(prototypes, generator)
        return RatioOutput(out.ratios, out.similarity)

    def forward(self, components: dict[str, torch.Tensor], ratios: RatioOutput | None = None) -> WeightedLoss:
        if ratios is None:
            raise ValueError("the relational weighting needs the ratios of the student's forward")
        loss = hrkd_loss(
            components["embd"], components["attn"], components["hidn"], components["pred"],
            ratios.ratios, self.pred_weight, self.ratio_scale,
        )  # fmt: skip
        if self.entropy_weight:
            loss = loss + self.entropy_weight * ratio_kl_to_uniform(ratios.ratios)
        return WeightedLoss(loss, ratios.ratios, ratios.similarity)

    def optimizer_group(self) -> dict | None:
        params = [p for p in self.balancer.parameters() if p.requires_grad]
        if not self.learned or not params:
            return None
        return {
            "params": params,
            "lr": self.learning_rate,
            "weight_decay": self.weight_decay,
            "hrkd_relational": True,
        }
