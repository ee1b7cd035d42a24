"""The distillation losses of HRKD §2.1 (eq. 1-5) as pure functions.

Every token-level loss is first reduced to a per-example pair ``(sum of squared errors, number of
elements)`` so that the trainer can average it per domain with :func:`per_domain_mean` whatever the
batch layout, and so that padding can be excluded exactly. With ``token_mask=None`` the mean runs over
every element of the padded tensors, which is what the released HRKD code does (there, inputs are
always padded to 128 tokens); with a mask it runs over real tokens only, which makes the loss
independent of how much padding a batch happens to have (our default, see docs/design-choices.md).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from .vocabulary import HeadReduction, RatioScale


class RowLoss(NamedTuple):
    """Per-example numerator and denominator of a mean: ``loss = total.sum() / count.sum()``."""

    total: torch.Tensor  # (N,) float32
    count: torch.Tensor  # (N,) float32


def hidden_mse_rows(
    student: torch.Tensor, teacher: torch.Tensor, token_mask: torch.Tensor | None = None
) -> RowLoss:
    """Squared error of (already projected) student states against teacher states, per example.

    Used for eq. 1 (``MSE(E^S W^embd, E^T)``, embeddings) and eq. 4 (``MSE(H^S_m W^hidn_m, H^T_n)``):
    the caller applies the learned projection ``W`` first. Shapes ``(N, L, F)``; ``token_mask`` is
    ``(N, L)`` with 1 for real tokens. ``count`` is the number of averaged elements (tokens × F).
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"hidden-state shapes differ: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}"
        )
    squared = (student.float() - teacher.float()).pow(2)
    features = student.shape[-1]
    if token_mask is None:
        total = squared.sum(dim=(1, 2))
        count = torch.full_like(total, float(student.shape[1] * features))
    else:
        mask = token_mask.to(squared.dtype)
        total = (squared * mask.unsqueeze(-1)).sum(dim=(1, 2))
        count = mask.sum(dim=1) * features
    return RowLoss(total, count)


def attention_mse_rows(
    student_scores: torch.Tensor,
    teacher_scores: torch.Tensor,
    key_mask: torch.Tensor,
    mask_queries: bool = True,
    head_reduction: str = "none",
) -> RowLoss:
    """Eq. 3: ``(1/h) Σ_i MSE(A^S_{i,m}, A^T_{i,n})`` on pre-softmax scores, per example.

    Scores are ``(N, h, L, L)``. Entries of padded *keys* are set to 0 in both tensors before the
    difference, so padding adds no error (this is what TinyBERT/HRKD's "≤ −100 → 0" filter achieves,
    without also zeroing genuine large negative scores). With ``mask_queries`` the rows of padded
    *queries* are left out of the mean too; without it they are kept, as in the released code.

    ``head_reduction="mean"`` averages the heads of each model before comparing them, which allows
    different head counts (a documented reduction, cf. TextBrewer's ``attention_mse_sum``).
    Since every head has the same number of elements, the mean over all elements equals the
    per-head mean averaged over heads (the ``1/h Σ_i`` of eq. 3).
    """
    head_reduction = HeadReduction.parse(head_reduction, "head_reduction")
    student_scores = student_scores.float()
    teacher_scores = teacher_scores.float()
    keys = key_mask.bool()[:, None, None, :]
    student_scores = torch.where(keys, student_scores, 0.0)
    teacher_scores = torch.where(keys, teacher_scores, 0.0)
    if head_reduction == HeadReduction.MEAN:
        student_scores = student_scores.mean(dim=1, keepdim=True)
        teacher_scores = teacher_scores.mean(dim=1, keepdim=True)
    if student_scores.shape != teacher_scores.shape:
        raise ValueError(
            f"attention shapes differ: student {tuple(student_scores.shape)} vs teacher "
            f"{tuple(teacher_scores.shape)} (batch, heads, query, key). With different head counts set "
            "--attention_head_reduction mean, or turn the attention loss off."
        )
    squared = (student_scores - teacher_scores).pow(2)
    heads, length = squared.shape[1], squared.shape[2]
    if mask_queries:
        query = key_mask.to(squared.dtype)
        total = (squared * query[:, None, :, None]).sum(dim=(1, 2, 3))
        real = query.sum(dim=1)
        count = heads * real * real
    else:
        total = squared.sum(dim=(1, 2, 3))
        count = torch.full_like(total, float(heads * length * length))
    return RowLoss(total, count)


def soft_cross_entropy_rows(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> RowLoss:
    """Eq. 2: ``CE(z^S/t, z^T/t) = −Σ_c softmax(z^T/t)_c · log softmax(z^S/t)_c`` per example.

    This is the usual cross-entropy (sum over classes). The released HRKD code averages over
    classes as well, i.e. divides this by C; set ``pred_loss_weight = γ/C`` to reproduce it.
    No t² factor, no hard labels (as in the paper and the released code).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    targets = F.softmax(teacher_logits.float() / temperature, dim=-1)
    log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    total = -(targets * log_probs).sum(dim=-1)
    return RowLoss(total, torch.ones_like(total))


def kd_kl_rows(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> RowLoss:
    """The soft part of Hinton et al.'s (2015) loss: ``t²·KL(softmax(z^T/t) ‖ softmax(z^S/t))`` per
    example. It differs from eq. 2 by the teacher's entropy (no gradient) and the factor t², which
    keeps the gradient's scale independent of t; it is 0 when the student matches the teacher."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_targets = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    total = temperature**2 * (log_targets.exp() * (log_targets - log_probs)).sum(dim=-1)
    return RowLoss(total, torch.ones_like(total))


def hard_label_rows(student_logits: torch.Tensor, labels: torch.Tensor) -> RowLoss:
    """``CE(z^S, y)`` per example with a gold label; a row without one (label −100: transfer text,
    augmented copies) adds nothing and is not counted, so the mean runs over labelled rows only."""
    labelled = labels != -100
    total = F.cross_entropy(student_logits.float(), labels.clamp_min(0), reduction="none")
    return RowLoss(total * labelled, labelled.to(total.dtype))


def hard_soft_prediction(soft: torch.Tensor, hard: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-domain ``L_pred = α·CE(gold) + (1−α)·t²·KL(teacher ‖ student)`` from the two per-domain
    means ``(D,)`` (Hinton et al. 2015, with the CE over labelled rows only)."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha * hard + (1 - alpha) * soft


def per_domain_sums(
    rows: RowLoss, domain_ids: torch.Tensor, num_domains: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-domain numerators and denominators ``(D,)``, ``(D,)`` of :func:`per_domain_mean`, which
    can be summed over processes before the division (the mean over the global batch)."""
    total = torch.zeros(num_domains, dtype=rows.total.dtype, device=rows.total.device)
    count = torch.zeros_like(total)
    return total.index_add(0, domain_ids, rows.total), count.index_add(0, domain_ids, rows.count)


def per_domain_mean(rows: RowLoss, domain_ids: torch.Tensor, num_domains: int) -> torch.Tensor:
    """Average per-example partial sums within each domain → tensor ``(D,)``.

    A domain absent from the batch gets 0 (it contributes nothing to the step).
    """
    total, count = per_domain_sums(rows, domain_ids, num_domains)
    return total / count.clamp_min(1.0)


def multi_domain_kd_loss(
    embedding: torch.Tensor,
    attention: torch.Tensor,
    hidden: torch.Tensor,
    prediction: torch.Tensor,
    pred_weight: float = 1.0,
    ratios: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 5 (and eq. 17 when ``ratios`` are given) from per-domain component losses.

    ``L = Σ_d ( r_{0,d} L^d_embd + Σ_m r_{m,d} (L^{m,d}_attn + L^{m,d}_hidn) + w_pred L^d_pred )``

    Shapes: ``embedding`` and ``prediction`` ``(D,)``; ``attention`` and ``hidden`` ``(M, D)``;
    ``ratios`` ``(M+1, D)`` (row 0 for the embeddings), all ones when ``None``, which is eq. 5 with
    ``w_pred = γ``. Eq. 17 uses the domain-relational ratios and ``w_pred = γ/D``.
    A disabled loss is passed as zeros.
    """
    if attention.shape != hidden.shape or attention.dim() != 2:
        raise ValueError(
            f"attention {tuple(attention.shape)} and hidden {tuple(hidden.shape)} must be (M, D)"
        )
    num_layers, num_domains = attention.shape
    if ratios is None:
        ratios = torch.ones(num_layers + 1, num_domains, dtype=embedding.dtype, device=embedding.device)
    if ratios.shape != (num_layers + 1, num_domains):
        raise ValueError(f"ratios must be ({num_layers + 1}, {num_domains}), got {tuple(ratios.shape)}")
    intermediate = ratios[0] * embedding + (ratios[1:] * (attention + hidden)).sum(dim=0)
    return (intermediate + pred_weight * prediction).sum()


def hrkd_loss(
    embedding: torch.Tensor,
    attention: torch.Tensor,
    hidden: torch.Tensor,
    prediction: torch.Tensor,
    ratios: torch.Tensor,
    gamma: float = 1.0,
    ratio_scale: str = "mean",
) -> torch.Tensor:
    """Eq. 17: ``L = Σ_d ( r_{0,d} L^d_embd + Σ_m r_{m,d} (L^{m,d}_attn + L^{m,d}_hidn) + γ/D L^d_pred )``.

    ``ratios`` r ``(M+1, D)``, each row summing to 1 over domains. ``ratio_scale="sum"`` is eq. 17 as
    written. ``"mean"`` multiplies it by D (ratios that average 1 over domains, γ on L_pred), so that
    uniform ratios give eq. 5 exactly and HRKD and the uniform multi-domain baseline train at the same
    loss scale (same effective learning rate and the same gradient clipping).
    """
    ratio_scale = RatioScale.parse(ratio_scale, "ratio_scale")
    num_domains = ratios.shape[-1]
    if ratio_scale == RatioScale.MEAN:
        return multi_domain_kd_loss(embedding, attention, hidden, prediction, gamma, ratios * num_domains)
    return multi_domain_kd_loss(embedding, attention, hidden, prediction, gamma / num_domains, ratios)
