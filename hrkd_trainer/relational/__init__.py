"""HRKD's relational module (§2.2-2.3, eq. 6-16): prototypes → reference prototypes → hierarchical
compare-aggregate → domain-relational graphs → ratios r ∈ R^{(M+1)×D}, which eq. 17 (``losses``)
uses to re-weight the distillation losses."""

from .balancer import (
    ABLATIONS,
    RelationalBalancer,
    RelationalOutput,
    normalised_entropy,
    ratio_kl_to_uniform,
)
from .graph import DomainRelationalGraph
from .hierarchy import compare_aggregate, reference_prototypes
from .prototypes import domain_prototypes, global_domain_prototypes, prototype_sums

__all__ = [
    "ABLATIONS",
    "DomainRelationalGraph",
    "RelationalBalancer",
    "RelationalOutput",
    "compare_aggregate",
    "domain_prototypes",
    "global_domain_prototypes",
    "normalised_entropy",
    "prototype_sums",
    "ratio_kl_to_uniform",
    "reference_prototypes",
]
