"""The building blocks of every settings dataclass: a field with ``--help`` text and choices
(:func:`option`), a range check that names the flag (:func:`check_range`), and Meta-KD's settings,
declared once (:class:`MetaKDFields`). :mod:`hrkd_trainer.config` re-exports them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

GROUP_META = "Meta-KD (baseline)"


def option(default=dataclasses.MISSING, *, help: str, choices=None, **kw):
    """A dataclass field with ``--help`` text and (for enums) the allowed values."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = choices.values() if isinstance(choices, type) else list(choices)
    if "default_factory" in kw:
        return field(default_factory=kw.pop("default_factory"), metadata=metadata, **kw)
    return field(default=default, metadata=metadata, **kw)


def check_range(flag: str, value, low=None, high=None, low_open=False, high_open=False) -> None:
    """Raise a ``ValueError`` naming ``flag`` when ``value`` is outside [low, high] (or the open ends)."""
    if value is None:
        return
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{flag} must be in {span}, got {value}")


@dataclass
class MetaKDFields:
    """Meta-KD's settings (Pan et al., 2021), declared once: the meta-teacher and meta-distillation
    configs inherit them, and the recipes expose each as ``--meta_<name>``."""

    help_group = GROUP_META

    domain_loss_weight: float = option(
        0.5,
        help="Meta-teacher: γ1, the weight of the domain-corruption loss (the release's --domain_loss_weight "
        "0.5; its script never switched the loss on). 0 turns it off.",
    )
    transfer_loss_weight: float = option(
        0.5,
        help="Meta-distillation: γ2, the weight of the transferable-domain term (release: 0.5). 0 turns it off.",
    )
    instance_weights: bool = option(
        True,
        help="Weight examples by prototype scores: t_i for the meta-teacher, λ_i = (1 + t_i)·w_i (with the "
        "teacher's domain expertise w_i) for meta-distillation. False gives every example weight 1.",
    )
    corruption_dropout: float = option(0.1, help="Meta-teacher: dropout of the domain-corruption branch.")

    def check_meta_kd(self) -> None:
        check_range("--domain_loss_weight", self.domain_loss_weight, low=0)
        check_range("--transfer_loss_weight", self.transfer_loss_weight, low=0)
        check_range("--corruption_dropout", self.corruption_dropout, low=0.0, high=1.0, high_open=True)

    @staticmethod
    def meta_kd_names() -> list[str]:
        return [f.name for f in dataclasses.fields(MetaKDFields)]

    def meta_kd_values(self) -> dict:
        """The Meta-KD fields of this object, to pass on to another config (``derive_arguments``)."""
        return {name: getattr(self, name) for name in self.meta_kd_names()}
