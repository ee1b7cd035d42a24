"""Eq. 6: per-domain prototypes of the student positions, optionally over the global batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..distributed import global_sum


def prototype_sums(
    states: torch.Tensor, domain_ids: torch.Tensor, num_domains: int, token_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-domain sums of token states ``(D, F)`` and token counts ``(D,)``, the parts of eq. 6.

    ``states`` ``(N, L, F)``; with ``token_mask`` ``(N, L)`` only real tokens count, without it every
    position does (padding included, as the released code).
    """
    if token_mask is None:
        weights = torch.ones(states.shape[:2], dtype=states.dtype, device=states.device)
    else:
        weights = token_mask.to(states.dtype)
    sums = (states * weights.unsqueeze(-1)).sum(dim=1)  # (N, F)
    counts = weights.sum(dim=1)  # (N,)
    total = states.new_zeros(num_domains, states.shape[-1]).index_add(0, domain_ids, sums)
    count = states.new_zeros(num_domains).index_add(0, domain_ids, counts)
    return total, count


def domain_prototypes(
    states: torch.Tensor, domain_ids: torch.Tensor, num_domains: int, token_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 6: ``h_{m,d} = 1/(|D_d| L) Σ_i Σ_l H^S_{m,i,l}``, the mean state of domain d → ``(D, F)``.

    ``states`` are the student's (projected) states ``(N, L, F)``. With ``token_mask`` the mean runs
    over real tokens only (every real token weighs the same); without it over every position,
    padding included, as the released code does. Gradients flow through the prototypes. A domain
    absent from the batch gets a zero prototype.
    """
    total, count = prototype_sums(states, domain_ids, num_domains, token_mask)
    return total / count.clamp_min(1.0).unsqueeze(-1)


def global_domain_prototypes(
    states: Sequence[torch.Tensor],
    domain_ids: torch.Tensor,
    num_domains: int,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 6 for every position at once, over the *global* batch → ``(P, D, F)`` in fp32.

    Under multi-process training the per-domain sums and counts are summed over all processes
    (one all-reduce for all positions, :func:`~hrkd_trainer.distributed.global_sum`), so every process
    gets the same prototypes whatever the number of processes, and after DDP averages the parameter
    gradients the student receives exactly the single-process gradient, prototypes included.
    """
    if token_mask is None:
        token_mask = torch.ones(states[0].shape[:2], device=states[0].device)
    weights = token_mask.float()  # computed once for every position
    counts = weights.new_zeros(num_domains).index_add(0, domain_ids, weights.sum(dim=1))
    sums = [
        position.float()
        .new_zeros(num_domains, position.shape[-1])
        .index_add(0, domain_ids, torch.einsum("nlf,nl->nf", position.float(), weights))
        for position in states
    ]
    stacked = global_sum(torch.stack(sums))  # (P, D, F), summed over processes
    counts = global_sum(counts.detach())
    return stacked / counts.clamp_min(1.0)[None, :, None]
