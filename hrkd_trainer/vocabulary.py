"""The project's one vocabulary: every named choice of a flag, as a string enum.

Each enum feeds the command line's ``choices``, the validation of the configs and the words of the
model card, so a new method or ablation is added in one place. Members are ``str`` subclasses:
``RelationalMode.FROZEN == "frozen"``, they print as their value and are written to JSON as it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import Enum


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Choice(str, Enum):
    """A flag's value out of a fixed set. ``parse`` gives the member or a clear error."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def parse(cls, value, flag: str):
        """``value`` as a member of this enum; a ``ValueError`` naming ``flag`` and the choices."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"{flag} must be one of {cls.values()}, got {value!r}{did_you_mean(value, cls.values())}"
            ) from None

    @classmethod
    def parse_list(cls, values: Iterable, flag: str, noun: str = "value(s)") -> list:
        """Every value as a member; one error that names all unknown ones, e.g.
        ``--distill_losses: unknown loss(es) ['logits']; choose from [...]``."""
        values = list(values)
        unknown = [v for v in values if not isinstance(v, cls) and v not in cls.values()]
        if unknown:
            hint = did_you_mean(unknown[0], cls.values())
            raise ValueError(f"{flag}: unknown {noun} {unknown}; choose from {cls.values()}{hint}")
        return [cls(value) for value in values]


class Method(Choice):
    """The distiller of a recipe run (``--method``)."""

    MULTI_DOMAIN = "multi-domain"
    HRKD = "hrkd"
    TINYBERT = "tinybert"
    META_DISTILL = "meta-distill"

    @property
    def per_domain(self) -> bool:
        """One student per domain (TinyBERT-KD, Meta-distillation) instead of one for all domains."""
        return self in (Method.TINYBERT, Method.META_DISTILL)

    @property
    def default_relational_mode(self) -> RelationalMode:
        """The relational mode a recipe uses for this method unless ``--relational_mode`` says otherwise."""
        return RelationalMode.FROZEN if self is Method.HRKD else RelationalMode.OFF


METHOD_TEXT = {
    Method.MULTI_DOMAIN: "multi-domain KD (TinyBERT-style losses on all domains, uniform weights; HRKD eq. 5)",
    Method.HRKD: "HRKD (TinyBERT-style losses re-weighted by domain-relational ratios; HRKD eq. 17)",
    Method.TINYBERT: "TinyBERT-KD, one student per domain",
    Method.META_DISTILL: "meta-distillation (Meta-KD), one student per domain",
}


class TeacherType(Choice):
    """How the teacher is trained when none is given (``--teacher_type``)."""

    SINGLE = "single"
    MIX = "mix"
    MTL = "mtl"
    HRKD = "hrkd"
    META = "meta"


#: results.json's ``teacher_type`` for a teacher passed with ``--teacher``
GIVEN_TEACHER = "given"

TEACHER_TEXT = {
    TeacherType.SINGLE: "one teacher per domain",
    TeacherType.MIX: "one classifier on the pooled domains",
    TeacherType.MTL: "multi-task: shared encoder, one head per domain, one domain per step",
    TeacherType.HRKD: "shared encoder, one head per domain, every domain in every step",
    TeacherType.META: "Meta-KD meta-teacher",
    GIVEN_TEACHER: "a given fine-tuned teacher",
}


class RelationalMode(Choice):
    """How HRKD's relational module weighs the losses (``--relational_mode``)."""

    OFF = "off"
    FROZEN = "frozen"
    LEARNED = "learned"


class Ablation(Choice):
    """Table 4's ablations of the relational module (``--relational_ablations``)."""

    SELF_ATTENTION = "self_attention"
    COMPARE_AGGREGATE = "compare_aggregate"
    HIERARCHY = "hierarchy"
    DOMAIN_RELATION = "domain_relation"


ABLATION_TEXT = {
    Ablation.SELF_ATTENTION: "reference prototype RP_m = the domain's own prototype h_m (no eq. 13-14)",
    Ablation.COMPARE_AGGREGATE: "graph input = plain average of the prototypes of positions 0..m (no eq. 15-16)",
    Ablation.HIERARCHY: "graph input = the prototype of position m only (no eq. 13-16)",
    Ablation.DOMAIN_RELATION: "uniform ratios 1/D (no graphs): multi-domain KD at the same loss scale",
}


class LossWeightingKind(Choice):
    """Which strategy weighs the per-domain, per-position losses (``--loss_weighting``)."""

    AUTO = "auto"
    UNIFORM = "uniform"
    RELATIONAL = "relational"
    UNIFORM_NOISE = "uniform-noise"
    LOSS_PROGRESS = "loss-progress"
    GROUP_DRO = "group-dro"
    GRADIENT_ALIGNMENT = "gradient-alignment"


LOSS_WEIGHTING_TEXT = {
    LossWeightingKind.UNIFORM: "uniform weights (eq. 5)",
    LossWeightingKind.RELATIONAL: "the paper's domain-relational graphs (eq. 6-17)",
    LossWeightingKind.UNIFORM_NOISE: "uniform weights plus per-step random noise (a control)",
    LossWeightingKind.LOSS_PROGRESS: "weights from each domain's relative loss progress",
    LossWeightingKind.GROUP_DRO: "online group-DRO weights towards the highest-loss domains",
    LossWeightingKind.GRADIENT_ALIGNMENT: "weights from each domain's gradient agreement with the labelled loss",
}


class DistillLoss(Choice):
    """The TinyBERT-style losses (``--distill_losses``)."""

    EMBEDDING = "embedding"
    ATTENTION = "attention"
    HIDDEN = "hidden"
    PREDICTION = "prediction"

    @property
    def key(self) -> str:
        """Short name in logs and loss dictionaries: ``embd``, ``attn``, ``hidn``, ``pred``."""
        return LOSS_KEYS[self]

    @property
    def layered(self) -> bool:
        """One value per mapped layer (attention, hidden) rather than one per step."""
        return self in (DistillLoss.ATTENTION, DistillLoss.HIDDEN)


LOSS_KEYS = {
    DistillLoss.EMBEDDING: "embd",
    DistillLoss.ATTENTION: "attn",
    DistillLoss.HIDDEN: "hidn",
    DistillLoss.PREDICTION: "pred",
}


class DomainSampling(Choice):
    """How training batches are drawn (``--domain_sampling``)."""

    EVERY_DOMAIN = "every-domain"
    ONE_DOMAIN = "one-domain"
    POOLED = "pooled"


#: batch sampling of each multi-domain teacher type
TEACHER_SAMPLING = {
    TeacherType.MIX: DomainSampling.POOLED,
    TeacherType.MTL: DomainSampling.ONE_DOMAIN,
    TeacherType.HRKD: DomainSampling.EVERY_DOMAIN,
    TeacherType.META: DomainSampling.POOLED,
}


class Padding(Choice):
    LONGEST = "longest"
    MAX_LENGTH = "max_length"


class PredictionLoss(Choice):
    SOFT_CE = "soft-ce"  # eq. 2: soft cross-entropy at temperature t, no t² (the paper, the release)
    HINTON = "hinton"  # α·CE(gold) + (1−α)·t²·KL(teacher ‖ student) (Hinton et al., 2015)


class HeadReduction(Choice):
    NONE = "none"
    MEAN = "mean"


class HiddenProjection(Choice):
    AUTO = "auto"
    LINEAR = "linear"
    IDENTITY = "identity"


class ProjectionInit(Choice):
    RANDOM = "random"  # BERT's initialisation (normal, std 0.02; the identity for equal widths)
    LSTSQ = "lstsq"  # the least-squares map from student to teacher states on training rows


class RatioScale(Choice):
    MEAN = "mean"
    SUM = "sum"


class CacheDtype(Choice):
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT32 = "float32"
