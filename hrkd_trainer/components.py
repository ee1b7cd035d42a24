"""One step's per-domain component losses (eq. 1-4), exact over the *global* batch.

:func:`component_rows` reduces each enabled loss to per-example partial sums (:class:`RowLoss`);
:func:`component_losses` adds them up per domain over every process (one all-reduce for all
components, :func:`~hrkd_trainer.distributed.global_sum`) before dividing, so N processes compute
exactly the loss (and, after DDP's averaging, the gradient) of one process on the same global batch,
also when their batches hold different numbers of tokens. The weighting (``hrkd_trainer.weighting``)
then turns the components into the scalar loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .distributed import global_sum
from .losses import (
    attention_mse_rows,
    hard_label_rows,
    hard_soft_prediction,
    hidden_mse_rows,
    kd_kl_rows,
    per_domain_sums,
    soft_cross_entropy_rows,
)
from .vocabulary import DistillLoss, PredictionLoss

#: component keys in eq. 5 order; attention and hidden have one row per mapped layer
COMPONENT_KEYS = ("embd", "attn", "hidn", "pred")
LAYERED = ("attn", "hidn")


def component_rows(
    student, teacher, attention_mask: torch.Tensor, args, pairs: Sequence, labels: torch.Tensor | None = None
) -> dict:
    """Per-example partial sums: ``embd`` and ``pred`` one :class:`RowLoss` each, ``attn`` and ``hidn``
    a list with one per mapped layer ``(student layer, teacher layer)``; None for a loss that is off.

    ``student`` carries ``projected`` states (position 0 = embeddings, then each mapped layer),
    ``attention_scores`` and ``logits``; ``teacher`` ``hidden_states``, ``attention_scores``, ``logits``.
    ``args`` is an :class:`~hrkd_trainer.HRKDConfig` (losses on, masking, head reduction, temperature,
    the prediction loss); ``labels`` (−100 for rows without a gold label) feed the hard-label term.
    """
    token_mask = attention_mask if args.mask_padding else None
    rows: dict = dict.fromkeys((*COMPONENT_KEYS, "hard"))
    if args.uses(DistillLoss.EMBEDDING):  # eq. 1
        rows["embd"] = hidden_mse_rows(student.projected[0], teacher.hidden_states[0], token_mask)
    if args.uses(DistillLoss.HIDDEN):  # eq. 4
        rows["hidn"] = [
            hidden_mse_rows(student.projected[i + 1], teacher.hidden_states[t], token_mask)
            for i, (_, t) in enumerate(pairs)
        ]
    if args.uses(DistillLoss.ATTENTION):  # eq. 3
        rows["attn"] = [
            attention_mse_rows(
                student.attention_scores[s], teacher.attention_scores[t], attention_mask,
                mask_queries=args.mask_padding, head_reduction=args.attention_head_reduction,
            )
            for s, t in pairs
        ]  # fmt: skip
    if args.uses(DistillLoss.PREDICTION):
        if args.prediction_loss == PredictionLoss.HINTON:  # α·CE(gold) + (1−α)·t²·KL
            rows["pred"] = kd_kl_rows(student.logits, teacher.logits, args.temperature)
            if args.hard_label_weight and labels is not None:
                rows["hard"] = hard_label_rows(student.logits, labels)
        else:  # eq. 2
            rows["pred"] = soft_cross_entropy_rows(student.logits, teacher.logits, args.temperature)
    return rows


def component_losses(
    rows: dict, domain_ids: torch.Tensor, num_domains: int, num_layers: int, hard_label_weight: float = 0.0
) -> dict[str, torch.Tensor]:
    """Per-domain means over the global batch: ``embd`` (D,), ``attn`` (M, D), ``hidn`` (M, D),
    ``pred`` (D,); zeros for a loss that is off. With a ``hard`` row (Hinton's form) ``pred`` is
    :func:`~hrkd_trainer.losses.hard_soft_prediction` of the soft and the gold-label means."""
    parts = {key: value if key in LAYERED else [value] for key, value in rows.items() if value is not None}
    means = {}
    if parts:
        sums = [per_domain_sums(r, domain_ids, num_domains) for group in parts.values() for r in group]
        totals = global_sum(torch.stack([total for total, _ in sums]))  # (R, D)
        counts = global_sum(torch.stack([count for _, count in sums]).detach())
        split = (totals / counts.clamp_min(1.0)).split([len(group) for group in parts.values()])
        means = dict(zip(parts, split))
    out = {}
    if "hard" in means:
        means["pred"] = hard_soft_prediction(means["pred"][0], means.pop("hard")[0], hard_label_weight)[None]
    for key in COMPONENT_KEYS:
        if key in means:
            out[key] = means[key] if key in LAYERED else means[key][0]
        else:
            shape = (num_layers, num_domains) if key in LAYERED else (num_domains,)
            out[key] = torch.zeros(shape, device=domain_ids.device)
    return out
