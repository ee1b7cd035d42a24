"""The relational loss balancer (§2.2-2.3): prototypes of every student position → ratios r.

``RelationalBalancer`` strings eq. 13-16 (reference prototypes, hierarchical compare-aggregate) and
eq. 7-12 (one domain-relational graph per position) together, with the ablation switches of the
paper's Table 4. It holds parameters only for the parts that are switched on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..vocabulary import ABLATION_TEXT
from .graph import DomainRelationalGraph
from .hierarchy import compare_aggregate, reference_prototypes

#: Table 4's ablations: what each switch removes (from the one vocabulary)
ABLATIONS = {str(ablation): text for ablation, text in ABLATION_TEXT.items()}


@dataclass
class RelationalOutput:
    """``ratios`` r ``(P, D)``: one distribution over domains per position (eq. 10).

    ``similarity``: for positions m = 1..P-1 the hierarchical similarity ratios α^H_m ``(D, m+1)``
    over positions 0..m (eq. 16); empty without hierarchy. ``graph_inputs``: what each graph saw
    ``(P, D, F)`` (None without graphs).
    """

    ratios: torch.Tensor
    similarity: tuple[torch.Tensor, ...] = ()
    graph_inputs: torch.Tensor | None = None


def check_ablations(ablations: Iterable[str]) -> tuple[str, ...]:
    ablations = tuple(str(a) for a in ablations)
    unknown = [a for a in ablations if a not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown relational ablation(s) {unknown}; choose from {list(ABLATIONS)}")
    return ablations


class RelationalBalancer(nn.Module):
    """Per-domain, per-position loss ratios from per-domain prototypes (HRKD §2.2-2.3).

    Args:
        num_positions: P = M + 1 distilled student positions (0 = embeddings, then each mapped layer).
        num_domains: D, the graph's nodes.
        features: F, the prototype width (the teacher width: prototypes are projected states).
        heads: K heads of the first graph layer (release: 8).
        hidden_features: F' per head (release: F).
        dropout: dropout on graph nodes and attention coefficients (release: 0.1).
        ablations: any of :data:`ABLATIONS`.
        graph_residual: add each node's own features in the GAT layers (not in the paper; see
            :class:`DomainRelationalGraph`).

    Parameters (only those in use): ``reference_bilinear`` W^D_m ``(P-1, F, F)`` (eq. 14),
    ``compare_bilinear`` W^H_{m,d} ``(P-1, D, F, F)`` (eq. 16), ``graphs``: P two-layer GATs.
    Initialisation follows the release: Xavier-uniform with gain 1.414 on each W^D_m and on each
    ``(D, F, F)`` slice W^H_m as one 3-D tensor (whose fans make it about √(D+F)/√2 times smaller
    per entry than a per-domain ``(F, F)`` Xavier init would).
    """

    def __init__(
        self,
        num_positions: int,
        num_domains: int,
        features: int,
        heads: int = 8,
        hidden_features: int | None = None,
        dropout: float = 0.1,
        ablations: Iterable[str] = (),
        graph_residual: bool = False,
    ):
        super().__init__()
        if num_positions < 1 or num_domains < 1:
            raise ValueError(f"need >= 1 position and domain, got {num_positions} and {num_domains}")
        self.ablations = check_ablations(ablations)
        #: constructor arguments, to rebuild the module (see DistillationModel.save_training_state)
        self.settings = {
            "num_positions": num_positions,
            "num_domains": num_domains,
            "features": features,
            "heads": heads,
            "hidden_features": hidden_features or features,
            "dropout": dropout,
            "ablations": list(self.ablations),
            "graph_residual": graph_residual,
        }
        self.num_positions = num_positions
        self.num_domains = num_domains
        self.features = features
        self.uses_graphs = "domain_relation" not in self.ablations
        self.hierarchical = self.uses_graphs and "hierarchy" not in self.ablations
        self.compares = self.hierarchical and "compare_aggregate" not in self.ablations
        self.self_attends = self.compares and "self_attention" not in self.ablations
        upper = num_positions - 1
        if self.self_attends and upper:
            self.reference_bilinear = nn.Parameter(torch.empty(upper, features, features))
        if self.compares and upper:
            self.compare_bilinear = nn.Parameter(torch.empty(upper, num_domains, features, features))
        if self.uses_graphs:
            self.graphs = nn.ModuleList(
                DomainRelationalGraph(
                    features, hidden_features or features, heads, dropout, residual=graph_residual
                )
                for _ in range(num_positions)
            )
        self.reset_parameters()

    @property
    def needs_prototypes(self) -> bool:
        return self.uses_graphs

    def reset_parameters(self) -> None:
        gain = 1.414
        for name in ("reference_bilinear", "compare_bilinear"):
            weight = getattr(self, name, None)
            if weight is not None:
                for m in range(weight.shape[0]):
                    nn.init.xavier_uniform_(weight.data[m], gain=gain)
        if self.uses_graphs:
            for graph in self.graphs:
                graph.reset_parameters()

    def graph_inputs(self, prototypes: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Graph inputs ``(P, D, F)`` and similarity ratios, eq. 13-16 (or the ablated variants).

        Position 0 always feeds its own prototypes. For m ≥ 1: RP_m by self-attention across domains
        (eq. 13-14), then AP_m by bilinear attention of RP_m over positions 0..m (eq. 15-16).
        """
        inputs, similarity = [prototypes[0]], []
        for m in range(1, prototypes.shape[0]):
            if not self.hierarchical:
                inputs.append(prototypes[m])
                continue
            lower = prototypes[: m + 1]
            if self.compares:
                reference = (
                    reference_prototypes(prototypes[m], self.reference_bilinear[m - 1])
                    if self.self_attends
                    else prototypes[m]
                )
                aggregated, ratios = compare_aggregate(lower, reference, self.compare_bilinear[m - 1])
            else:
                aggregated = lower.mean(dim=0)
                ratios = prototypes.new_full((prototypes.shape[1], m + 1), 1.0 / (m + 1))
            inputs.append(aggregated)
            similarity.append(ratios)
        return torch.stack(inputs), tuple(similarity)

    def forward(
        self, prototypes: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> RelationalOutput:
        """``prototypes`` ``(P, D, F)`` (eq. 6) → :class:`RelationalOutput` with ratios ``(P, D)``."""
        if not self.uses_graphs:
            device = None if prototypes is None else prototypes.device
            uniform = torch.full(
                (self.num_positions, self.num_domains), 1.0 / self.num_domains, device=device
            )
            return RelationalOutput(ratios=uniform)
        expected = (self.num_positions, self.num_domains, self.features)
        if prototypes is None or tuple(prototypes.shape) != expected:
            got = None if prototypes is None else tuple(prototypes.shape)
            raise ValueError(f"prototypes must be {expected} (positions, domains, features), got {got}")
        inputs, similarity = self.graph_inputs(prototypes)
        ratios = torch.stack([graph(inputs[m], generator) for m, graph in enumerate(self.graphs)])
        return RelationalOutput(ratios=ratios, similarity=similarity, graph_inputs=inputs)


def ratio_kl_to_uniform(ratios: torch.Tensor) -> torch.Tensor:
    """``Σ_m KL(r_m ‖ U_D) = Σ_m Σ_d r_{m,d} log(D r_{m,d})``: 0 for uniform ratios, up to
    ``P log D`` when every position puts all its weight on one domain. The anti-collapse penalty."""
    num_domains = ratios.shape[-1]
    return (ratios * (ratios.clamp_min(1e-12) * num_domains).log()).sum()


def normalised_entropy(ratios: torch.Tensor) -> torch.Tensor:
    """Entropy of each r_m divided by log D, averaged over positions: 1 = uniform, 0 = collapsed."""
    num_domains = ratios.shape[-1]
    if num_domains == 1:
        return ratios.new_ones(())
    entropy = -(ratios * ratios.clamp_min(1e-12).log()).sum(-1)
    return (entropy / math.log(num_domains)).mean()
