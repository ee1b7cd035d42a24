"""Per-domain classification head *shells*: a ``*ForSequenceClassification`` whose encoder slot is
filled, at forward time, with the shared encoder's output (see :mod:`hrkd_trainer.modeling`)."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from torch import nn
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from transformers.utils import ModelOutput

_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_domain_names(domains: Sequence[str]) -> list[str]:
    """Domain names become folder names and module keys: letters, digits, ``_`` and ``-`` only."""
    domains = list(domains)
    if not domains:
        raise ValueError("at least one domain is needed")
    for name in domains:
        if not isinstance(name, str) or not _DOMAIN_NAME.match(name):
            raise ValueError(
                f"domain name {name!r} is not usable as a folder name: use letters, digits, '_' and '-' "
                "(rename the domain in your data)"
            )
    if len(set(domains)) != len(domains):
        raise ValueError(f"duplicate domain names in {domains}")
    return domains


class EncoderOutputSlot(nn.Module):
    """Stands in for the encoder inside a per-domain head shell and returns a preset output."""

    def __init__(self):
        super().__init__()
        self.output: ModelOutput | None = None

    def forward(self, *args, **kwargs):
        if self.output is None:
            raise RuntimeError("EncoderOutputSlot called without an encoder output: use MultiDomainModel")
        return self.output


def take_encoder(full: PreTrainedModel) -> PreTrainedModel:
    """Detach the base model of a ``*ForSequenceClassification`` and put a slot in its place."""
    prefix = full.base_model_prefix
    encoder = getattr(full, prefix)
    setattr(full, prefix, EncoderOutputSlot())
    # the encoder's modules keep the original config object; the head gets its own copy so that
    # per-domain fields (hrkd_domain, architectures) never leak into the encoder's config
    full.config = copy.deepcopy(full.config)
    return encoder


def drop_encoder(full: PreTrainedModel) -> None:
    setattr(full, full.base_model_prefix, EncoderOutputSlot())
    full.config = copy.deepcopy(full.config)


def fresh_head_like(full: PreTrainedModel) -> PreTrainedModel:
    """A new shell with freshly initialised head weights, same config, no encoder."""
    config = copy.deepcopy(full.config)
    shell = AutoModelForSequenceClassification.from_config(config)
    drop_encoder(shell)
    return shell
