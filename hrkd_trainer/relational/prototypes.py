"""Eq. 6: per-domain prototypes of one student position."""

from __future__ import annotations

import torch


def domain_prototypes(
    states: torch.Tensor, domain_ids: torch.Tensor, num_domains: int, token_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 6: ``h_{m,d} = 1/(|D_d| L) Σ_i Σ_l H^S_{m,i,l}``, the mean state of domain d → ``(D, F)``.

    ``states`` are the student's (projected) states ``(N, L, F)``. With ``token_mask`` the mean runs
    over real tokens only (every real token weighs the same); without it over every position,
    padding included, as the released code does. Gradients flow through the prototypes.
    """
    features = states.shape[-1]
    if token_mask is None:
        weights = torch.ones(states.shape[:2], dtype=states.dtype, device=states.device)
    else:
        weights = token_mask.to(states.dtype)
    sums = (states * weights.unsqueeze(-1)).sum(dim=1)  # (N, F)
    counts = weights.sum(dim=1)  # (N,)
    total = states.new_zeros(num_domains, features).index_add(0, domain_ids, sums)
    count = states.new_zeros(num_domains).index_add(0, domain_ids, counts)
    return total / count.clamp_min(1.0).unsqueeze(-1)
