"""Weights from a training signal outside the KD loss: first-order learning to reweight (Ren et al.,
2018, "Learning to reweight examples for robust deep learning"), per domain and per distilled position.

Ren et al. weigh each example by how much a small step on its loss would lower a labelled meta loss;
to first order that is the inner product of the two gradients. Here the "examples" are the
per-domain, per-position distillation losses ℓ_{m,d} (``position_losses``), the meta loss is the
student's own labelled cross-entropy L_y on the step's batch (the training split's labels, which
uniform KD never reads; dev is never touched), and each position m is scored on the parameters θ_m
that produce it (position 0: the embedding parameters other than the word-embedding matrix; position
m ≥ 1: the m-th mapped student layer):

    s_{m,d} = cos(∇_{θ_m} ℓ_{m,d}, ∇_{θ_m} L_y)
    a ← β a + (1 − β) s              (a = s at the first scored step)
    r_{m,·} = f + (1 − D f) · softmax(a_{m,·} / T)

so a domain whose distillation pulls the layer the way the labels do gets more of that layer's
weight, one whose teacher signal fights the labels gets less (never less than the floor f). The
prediction loss stays uniform, as in eq. 17; uniform ratios give eq. 5. Cosines are scale-free, so
T does not depend on the size of any loss. Scores are refreshed every ``every``-th step (the cost:
one backward of L_y and P·D short backward passes, each through one layer only) and the ratios of
the other steps come from the average. The gradients are summed over processes before the cosine,
so every process gets the same ratios; the average is a buffer (checkpointed, restored on resume).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..capture import find_layer_list
from .adaptive import _SmoothedSoftmax
from .base import RatioOutput, StepView, WeightedLoss


def position_loss_graph(components: dict[str, torch.Tensor]) -> torch.Tensor:
    """ℓ ``(M+1, D)`` *with* its graph: embeddings, then attention + hidden per mapped layer."""
    return torch.cat([components["embd"].unsqueeze(0), components["attn"] + components["hidn"]])


def _flat(grads: Sequence[torch.Tensor | None], params: Sequence[nn.Parameter]) -> torch.Tensor:
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1).float() for g, p in zip(grads, params)]
    )


def alignment_scores(
    losses: torch.Tensor,
    meta_loss: torch.Tensor,
    parameter_groups: Sequence[Sequence[nn.Parameter]],
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``s_{m,d} = cos(∇_{θ_m} ℓ_{m,d}, ∇_{θ_m} L_y)`` ``(P, D)``; see the module docstring.

    ``losses`` ``(P, D)`` and ``meta_loss`` keep their graphs (both are retained: the step's backward
    still runs afterwards); ``parameter_groups[m]`` is θ_m. ``reduce`` sums a tensor over processes
    (the gradients are per-process contributions). A zero gradient (a domain absent from the batch,
    a loss that does not reach θ_m) scores 0.
    """
    if losses.shape[0] != len(parameter_groups):
        raise ValueError(f"{losses.shape[0]} positions but {len(parameter_groups)} parameter groups")
    every = [p for group in parameter_groups for p in group]
    meta = torch.autograd.grad(meta_loss, every, retain_graph=True, allow_unused=True)
    scores = torch.zeros(losses.shape, device=losses.device, dtype=torch.float32)
    start = 0
    for m, params in enumerate(parameter_groups):
        params = list(params)
        rows = [_flat(meta[start : start + len(params)], params)]
        start += len(params)
        for d in range(losses.shape[1]):
            if losses[m, d].requires_grad:
                grads = torch.autograd.grad(losses[m, d], params, retain_graph=True, allow_unused=True)
            else:
                grads = [None] * len(params)
            rows.append(_flat(grads, params))
        stacked = torch.stack(rows)  # (1 + D, |θ_m|)
        if reduce is not None:
            stacked = reduce(stacked)
        scores[m] = torch.nn.functional.cosine_similarity(stacked[1:], stacked[:1], dim=-1, eps=1e-12)
    return scores


def position_parameters(student, student_layers: Sequence[int]) -> list[list[nn.Parameter]]:
    """θ_m of every distilled position: the embedding parameters other than the word-embedding matrix
    (position 0), then the parameters of each mapped student layer (1-based ``student_layers``)."""
    encoder = student.encoder
    words = encoder.get_input_embeddings().weight
    embeddings = [
        p for name, p in encoder.named_parameters() if "embed" in name and p is not words and p.requires_grad
    ]
    layers = find_layer_list(encoder)
    return [embeddings, *(list(layers[k - 1].parameters()) for k in student_layers)]


class GradientAlignmentWeighting(_SmoothedSoftmax):
    """First-order learning to reweight per domain and position; the formula is in the module
    docstring. On the steps :meth:`wants_scores` picks, :meth:`observe_step` scores the batch with
    :func:`alignment_scores` and folds the scores into the average, before :meth:`forward`."""

    name = "gradient-alignment"

    def __init__(self, num_positions, num_domains, temperature=0.1, ema=0.9, floor=0.05, every=4, **kw):
        super().__init__(num_positions, num_domains, temperature, ema, floor, **kw)
        if every < 1:
            raise ValueError(f"need every >= 1, got {every}")
        self.every = every

    def wants_scores(self, global_step: int) -> bool:
        return self.training and global_step % self.every == 0

    def observe(self, scores: torch.Tensor) -> None:
        """Fold one step's alignment scores ``(P, D)`` into the average."""
        self.fold(scores)

    def observe_step(self, step: StepView) -> None:
        """Score this step against the student's labelled loss L_y (when :meth:`wants_scores`)."""
        if not self.wants_scores(step.global_step):
            return
        labels = step.inputs.get("labels")
        if labels is None:
            raise ValueError(
                "--loss_weighting gradient-alignment needs the training examples' labels (a 'labels' "
                "column); use another weighting for unlabelled transfer data"
            )
        meta_loss = step.student.classification_loss(
            step.student_output.logits, labels, step.inputs["domain_ids"]
        )
        parameters = position_parameters(step.student, step.student_layers)
        self.observe(
            alignment_scores(position_loss_graph(step.components), meta_loss, parameters, step.reduce)
        )

    def forward(self, components, ratios: RatioOutput | None = None) -> WeightedLoss:
        return self.weighted(components, self.current_ratios())
