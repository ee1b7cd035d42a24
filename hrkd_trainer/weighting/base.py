"""The loss-weights interface: one object maps a step's per-domain, per-position component losses
to the scalar loss (a loss balancer, as ModelOpt calls it).

A strategy sees the step in three places:

0. :meth:`LossWeighting.observe_step`, before the loss is formed: a strategy with a signal from
   outside the distillation losses (gradient alignment) reads the step's :class:`StepView` there;
1. :meth:`LossWeighting.ratios`, inside the student wrapper's forward (so that data parallelism sees
   every parameter the strategy trains): ratios from the student's per-domain prototypes, for
   strategies with ``needs_prototypes``; ``None`` for the others.
2. :meth:`LossWeighting.forward`: the component losses ``embd`` (D,), ``attn`` (M, D), ``hidn``
   (M, D), ``pred`` (D,) and what step 1 gave → :class:`WeightedLoss`.

Components are exact over the global batch (``hrkd_trainer.components``), so a strategy that derives
its weights from them gives every process the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class RatioOutput:
    """Ratios r ``(P, D)`` (one distribution over domains per distilled position) and, for the
    relational graph, the hierarchical similarity ratios α^H_m ``(D, m+1)`` of positions m ≥ 1."""

    ratios: torch.Tensor
    similarity: tuple[torch.Tensor, ...] = ()


@dataclass
class StepView:
    """One training step as :meth:`LossWeighting.observe_step` sees it: the per-domain ``components``
    (with their graphs), the student's output and the batch, the student model and its mapped layers
    (1-based), the optimizer step number, and ``reduce`` (a sum over processes)."""

    components: dict[str, torch.Tensor]
    student_output: object
    inputs: dict
    student: nn.Module
    student_layers: tuple[int, ...]
    global_step: int
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class WeightedLoss:
    """The scalar loss of a step and the ratios behind it (None for uniform weights), for logging."""

    loss: torch.Tensor
    ratios: torch.Tensor | None = None
    similarity: tuple[torch.Tensor, ...] = ()


class LossWeighting(nn.Module):
    """Interface of the weighting strategies; see the module docstring.

    Class attributes: ``name`` (what results and logs call it), ``needs_prototypes`` (step 1 wants
    the per-domain prototypes of eq. 6), ``needs_step_seed`` (step 1 draws random numbers, seeded per
    step so that every process and a resumed run draw the same ones).
    """

    name = "base"
    needs_prototypes = False
    needs_step_seed = False

    def observe_step(self, step: StepView) -> None:
        """Read what the strategy needs of this step beyond its components (default: nothing)."""

    def ratios(
        self, prototypes: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> RatioOutput | None:
        return None

    def forward(self, components: dict[str, torch.Tensor], ratios: RatioOutput | None = None) -> WeightedLoss:
        raise NotImplementedError

    def optimizer_group(self) -> dict | None:
        """An optimizer parameter group for the strategy's own trainable parameters, or None."""
        return None
