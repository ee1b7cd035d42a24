"""HRKD's relational module (§2.2-2.3, eq. 6-16): prototypes → reference prototypes → hierarchical
compare-aggregate → domain-relational graphs → ratios r ∈ R^{(M+1)×D}.

Building blocks only; wiring into ``HRKDTrainer`` (eq. 17, learning modes, logging) is issue 3.
"""

from .graph import DomainRelationalGraph
from .hierarchy import compare_aggregate, reference_prototypes
from .prototypes import domain_prototypes

__all__ = ["DomainRelationalGraph", "compare_aggregate", "domain_prototypes", "reference_prototypes"]
