"""Meta-KD's weighting formulas (Pan et al., ACL 2021; reference-code.md §2.3-2.5) as pure functions.

Building blocks for the Meta-KD baselines (meta-teacher and meta-distillation); the trainers that
use them come with the baselines issue.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def mean_token_embeddings(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None = None, skip_first: bool = True
) -> torch.Tensor:
    """``e_i``: the mean of an encoder's last-layer states ``(N, L, F)`` over token positions → ``(N, F)``.

    ``skip_first`` drops position 0 (``[CLS]``) as Meta-KD does. With ``attention_mask`` only real
    tokens count; without it every position does, padding included (the released code).
    """
    start = 1 if skip_first else 0
    states = hidden[:, start:]
    if attention_mask is None:
        return states.mean(dim=1)
    weights = attention_mask[:, start:].to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def prototype_scores(embeddings: torch.Tensor, domain_ids: torch.Tensor, num_domains: int) -> torch.Tensor:
    """Meta-KD's prototype-based instance scores → ``t`` ``(N,)`` in [-1, 1]:

    ``t_i = ½ cos(e_i, c_{k(i)}) + ½ cos(e_i, mean_{k' ≠ k(i)} c_{k'})``, where ``c_k`` is the mean
    embedding of domain k (labels ignored) and the second term uses the mean of the *other*
    centroids (not the mean of cosines), as the released code.
    """
    if num_domains < 2:
        raise ValueError("prototype scores compare a domain with the others: they need >= 2 domains")
    features = embeddings.shape[-1]
    sums = embeddings.new_zeros(num_domains, features).index_add(0, domain_ids, embeddings)
    counts = embeddings.new_zeros(num_domains).index_add(
        0, domain_ids, torch.ones_like(domain_ids, dtype=embeddings.dtype)
    )
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"domain id(s) {empty} have no examples: every domain needs a centroid")
    centroids = sums / counts.unsqueeze(-1)
    others = (centroids.sum(0, keepdim=True) - centroids) / (num_domains - 1)  # mean of the other centroids
    own = F.cosine_similarity(embeddings, centroids[domain_ids], dim=-1)
    rest = F.cosine_similarity(embeddings, others[domain_ids], dim=-1)
    return 0.5 * own + 0.5 * rest


def domain_expertise_weights(teacher_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Meta-distillation's domain-expertise weight ``w_i = 1 / (1 + exp((1 − p_T(y_i | x_i))²))``,
    in [1/(1+e), 1/2]: highest where the teacher is sure of the gold label."""
    gold = teacher_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return 1.0 / (1.0 + torch.exp((1.0 - gold) ** 2))


def meta_instance_weights(scores: torch.Tensor, expertise: torch.Tensor) -> torch.Tensor:
    """Meta-distillation's per-instance weight ``λ_i = (1 + t_i) · w_i``."""
    return (1.0 + scores) * expertise


def corrupted_domain_ids(domain_ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The meta-teacher's corrupted domain labels: the batch's domain ids randomly permuted."""
    order = torch.randperm(domain_ids.shape[0], generator=generator, device=domain_ids.device)
    return domain_ids[order]
