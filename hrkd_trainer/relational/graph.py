"""Eq. 7-12: a two-layer graph attention network over domains (nodes) → ratios over domains."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .dropout import dropout as seeded_dropout


class DomainRelationalGraph(nn.Module):
    """One domain-relational graph (one per student position), fully connected with self-loops.

    Layer 1 (eq. 7-9), K heads: ``s_ij = a_kᵀ[W_k h_i ⊕ W_k h_j]``,
    ``α_ij = softmax_j(LeakyReLU_0.2(s_ij))``, ``h'_i = ⊕_k ELU(Σ_j α_ij W_k h_j)``.
    Layer 2 (eq. 10-12), one head with ``W' ∈ R^{1×KF'}``, ``a' ∈ R^2``:
    ``r = softmax_over_domains(ELU(Σ_j α'_ij W' h'_j))``.
    Dropout is applied to the node features and the attention coefficients (as in GAT and the release).

    On a complete graph, node i's aggregate depends on i only through LeakyReLU's kink, so every
    domain tends to get the same output and r = 1/D (see docs/hrkd.md). ``residual=True`` (not in the paper)
    adds each node's own transformed features to its aggregate in both layers,
    ``ELU(Σ_j α_ij W h_j + W h_i)``, which makes the ratios depend on the domain's own prototype.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        heads: int = 8,
        dropout: float = 0.1,
        negative_slope: float = 0.2,
        residual: bool = False,
    ):
        super().__init__()
        self.residual = residual
        self.heads = heads
        self.dropout = dropout
        self.negative_slope = negative_slope
        self.weight = nn.Parameter(torch.empty(heads, in_features, hidden_features))
        self.attention = nn.Parameter(torch.empty(heads, 2 * hidden_features))
        self.out_weight = nn.Parameter(torch.empty(heads * hidden_features, 1))
        self.out_attention = nn.Parameter(torch.empty(2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gain = 1.414  # the release's xavier gain
        for k in range(self.heads):
            nn.init.xavier_uniform_(self.weight.data[k], gain=gain)
            nn.init.xavier_uniform_(self.attention.data[k].view(-1, 1), gain=gain)
        nn.init.xavier_uniform_(self.out_weight, gain=gain)
        nn.init.xavier_uniform_(self.out_attention.view(-1, 1), gain=gain)

    def _attend(
        self, transformed: torch.Tensor, vector: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Attention coefficients ``(..., D, D)`` from transformed nodes ``(..., D, F')`` (eq. 7-8, 11-12)."""
        size = transformed.shape[-1]
        left = transformed @ vector[..., :size, None]  # a_leftᵀ W h_i: (..., D, 1)
        right = transformed @ vector[..., size:, None]  # a_rightᵀ W h_j
        scores = F.leaky_relu(left + right.transpose(-1, -2), self.negative_slope)
        coefficients = torch.softmax(scores, dim=-1)
        return seeded_dropout(coefficients, self.dropout, self.training, generator)

    def forward(self, nodes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``nodes`` ``(D, F)`` → ratios ``(D,)`` summing to 1. Dropout masks come from ``generator``
        when given (else the global RNG)."""
        x = seeded_dropout(nodes, self.dropout, self.training, generator)
        transformed = torch.einsum("df,kfg->kdg", x, self.weight)  # (K, D, F')
        coefficients = self._attend(transformed, self.attention, generator)  # (K, D, D)
        aggregate = coefficients @ transformed
        hidden = F.elu(aggregate + transformed if self.residual else aggregate)  # (K, D, F')
        hidden = hidden.permute(1, 0, 2).reshape(nodes.shape[0], -1)  # concat heads: (D, K·F')
        hidden = seeded_dropout(hidden, self.dropout, self.training, generator)
        out = hidden @ self.out_weight  # (D, 1)
        coefficients = self._attend(out, self.out_attention, generator)  # (D, D)
        aggregate = coefficients @ out
        logits = F.elu(aggregate + out if self.residual else aggregate).squeeze(-1)  # (D,)
        return torch.softmax(logits, dim=0)
