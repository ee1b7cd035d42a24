"""Loss-weighting strategies behind one interface (:class:`LossWeighting`): uniform (eq. 5) and the
paper's relational graph (eq. 6-17), and strategies that can move the ratios: loss progress, group
DRO, gradient alignment with the labelled loss, and a noise control. :func:`build_weighting` picks one from an ``HRKDConfig``.

Adding a strategy: one module with a :class:`LossWeighting` subclass (its formula in the docstring),
and a branch in :func:`build_weighting`."""

from __future__ import annotations

import torch

from ..relational import RelationalBalancer
from ..vocabulary import LossWeightingKind, RelationalMode
from .adaptive import GroupDROWeighting, LossProgressWeighting, UniformNoiseWeighting
from .alignment import GradientAlignmentWeighting, alignment_scores, position_loss_graph, position_parameters
from .base import LossWeighting, RatioOutput, StepView, WeightedLoss
from .relational import RelationalWeighting
from .uniform import UniformWeighting

__all__ = [
    "GradientAlignmentWeighting",
    "GroupDROWeighting",
    "LossProgressWeighting",
    "LossWeighting",
    "RatioOutput",
    "RelationalWeighting",
    "StepView",
    "UniformNoiseWeighting",
    "UniformWeighting",
    "WeightedLoss",
    "alignment_scores",
    "build_weighting",
    "position_loss_graph",
    "position_parameters",
]


def build_weighting(args, num_positions: int, num_domains: int, features: int) -> LossWeighting:
    """The weighting an :class:`~hrkd_trainer.HRKDConfig` asks for (``HRKDConfig`` has resolved
    ``auto`` from the relational mode). The relational balancer is initialised from ``args.seed``
    without touching the global random state."""
    kind = LossWeightingKind.parse(args.loss_weighting, "--loss_weighting")
    if kind == LossWeightingKind.AUTO:
        raise ValueError("loss_weighting 'auto' is resolved by HRKDConfig: pass an HRKDConfig")
    shape = {"num_positions": num_positions, "num_domains": num_domains, "pred_weight": args.pred_loss_weight}
    if kind == LossWeightingKind.UNIFORM:
        return UniformWeighting(args.pred_loss_weight)
    if kind == LossWeightingKind.UNIFORM_NOISE:
        return UniformNoiseWeighting(**shape, noise_std=args.weighting_noise_std)
    if kind == LossWeightingKind.LOSS_PROGRESS:
        return LossProgressWeighting(
            **shape,
            temperature=args.weighting_temperature,
            ema=args.weighting_ema,
            floor=args.weighting_floor,
        )
    if kind == LossWeightingKind.GROUP_DRO:
        return GroupDROWeighting(**shape, step_size=args.weighting_step_size, floor=args.weighting_floor)
    if kind == LossWeightingKind.GRADIENT_ALIGNMENT:
        return GradientAlignmentWeighting(
            **shape,
            temperature=args.weighting_temperature,
            ema=args.weighting_ema,
            floor=args.weighting_floor,
            every=args.weighting_every,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        balancer = RelationalBalancer(
            num_positions=num_positions,
            num_domains=num_domains,
            features=features,
            heads=args.relational_heads,
            hidden_features=args.relational_hidden_size,
            dropout=args.relational_dropout,
            ablations=[str(a) for a in args.relational_ablations],
            graph_residual=args.relational_graph_residual,
        )
    return RelationalWeighting(
        balancer,
        pred_weight=args.pred_loss_weight,
        ratio_scale=args.ratio_scale,
        entropy_weight=args.ratio_entropy_weight,
        learned=args.relational_mode == RelationalMode.LEARNED,
        learning_rate=args.relational_learning_rate,
        weight_decay=args.relational_weight_decay,
    )
