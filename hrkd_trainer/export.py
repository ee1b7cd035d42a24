"""The two on-disk layouts of a :class:`~hrkd_trainer.modeling.MultiDomainModel`.

Full (what users load and publish; ``domain_copies=True``)::

    out/config.json, model.safetensors      the shared encoder   → AutoModel.from_pretrained(out)
    out/<domain>/config.json, model.safetensors
                                            encoder + that head  → AutoModelForSequenceClassification
                                                                   .from_pretrained(out, subfolder=domain)

Compact (checkpoints, a study's teachers, ``--export_domain_copies false``): the encoder once, the
heads without it, for hrkd-trainer to load (``MultiDomainModel.from_pretrained``, ``--teacher``)::

    out/config.json, model.safetensors      the shared encoder   → AutoModel.from_pretrained(out)
    out/hrkd_heads.json                     every head's config (its labels, its domain)
    out/hrkd_heads.safetensors              every head's own weights, ``<domain>.<name>``

A full export repeats the encoder once per domain (D + 1 copies of it); a compact one holds it once.
Both configs carry ``hrkd_domains`` (the domain list, in id order) and ``id2label``/``label2id``.
"""

from __future__ import annotations

import json
import os

import safetensors.torch
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from .capture import restore_attention
from .heads import drop_encoder, take_encoder
from .sharded import part_state, split_student_state

HEADS_CONFIG = "hrkd_heads.json"
HEADS_WEIGHTS = "hrkd_heads.safetensors"


def is_compact(path: str) -> bool:
    return os.path.isfile(os.path.join(path, HEADS_CONFIG))


def _head_config(model, domain: str):
    head = model.heads[domain]
    head.config.hrkd_domains = list(model.domains)
    head.config.hrkd_domain = domain
    return head.config


def save_export(
    model, output_dir: str, tokenizer=None, safe_serialization=True, state_dict=None, domain_copies=True
):
    """Write ``model`` (the student only) in the full or the compact layout; ``state_dict``: the
    full state gathered from shards (FSDP2, ZeRO-3), written instead of the local parameters."""
    os.makedirs(output_dir, exist_ok=True)
    encoder_state, head_states = split_student_state(model, state_dict) if state_dict else (None, {})
    implementation = model.encoder.config._attn_implementation
    restore_attention(model.encoder)
    try:
        model.encoder.config.hrkd_domains = list(model.domains)
        model.encoder.config.hrkd_shared_head = model.shared_head
        model.encoder.config.id2label = dict(model.id2label)
        model.encoder.config.label2id = {v: k for k, v in model.id2label.items()}
        model.encoder.save_pretrained(
            output_dir, safe_serialization=safe_serialization, state_dict=encoder_state
        )
        if tokenizer is not None:
            tokenizer.save_pretrained(output_dir)
        if not domain_copies:
            _save_heads(model, output_dir, head_states)
            return
        for domain in model.domains:
            head = model.heads[domain]
            _head_config(model, domain)
            prefix = head.base_model_prefix
            slot = getattr(head, prefix)
            setattr(head, prefix, model.encoder)
            try:
                head.save_pretrained(os.path.join(output_dir, domain), safe_serialization=safe_serialization,
                                     state_dict=head_states.get(domain))  # fmt: skip
            finally:
                setattr(head, prefix, slot)
            if tokenizer is not None:
                tokenizer.save_pretrained(os.path.join(output_dir, domain))
    finally:
        if implementation != model.encoder.config._attn_implementation:
            model.encoder.set_attn_implementation(implementation)


def _save_heads(model, output_dir: str, head_states: dict) -> None:
    """The compact layout's heads: each head's config, and its weights without the encoder slot."""
    domains = model.domains[:1] if model.shared_head else model.domains
    weights = {}
    for domain in domains:
        head = model.heads[domain]
        state = head_states.get(domain) or head.state_dict()
        prefix = head.base_model_prefix + "."
        own = {k: v for k, v in state.items() if not k.startswith(prefix)}
        weights.update({f"{domain}.{k}": v.detach().contiguous().cpu() for k, v in own.items()})
    configs = {d: _head_config(model, d).to_dict() for d in domains}
    safetensors.torch.save_file(weights, os.path.join(output_dir, HEADS_WEIGHTS))
    with open(os.path.join(output_dir, HEADS_CONFIG), "w") as handle:
        json.dump(
            {"domains": list(model.domains), "shared_head": model.shared_head, "configs": configs}, handle
        )


def load_compact(path: str, **from_pretrained_kwargs) -> tuple:
    """``(encoder, heads, domains)`` of a compact export: each head is rebuilt from its config (without
    touching the global random state), then the saved weights are loaded into encoder and heads."""
    with open(os.path.join(path, HEADS_CONFIG)) as handle:
        index = json.load(handle)
    domains, weights = index["domains"], safetensors.torch.load_file(os.path.join(path, HEADS_WEIGHTS))
    encoder_weights = safetensors.torch.load_file(os.path.join(path, "model.safetensors"))
    kinds = {
        domain: AutoConfig.for_model(
            saved["model_type"], **{k: v for k, v in saved.items() if k != "model_type"}
        )
        for domain, saved in index["configs"].items()
    }
    heads, encoder = {}, None
    with torch.random.fork_rng(devices=[]):
        for domain, config in kinds.items():
            full = AutoModelForSequenceClassification.from_config(config, **from_pretrained_kwargs)
            if encoder is None:
                encoder = take_encoder(full)
            else:
                drop_encoder(full)
            missing, unexpected = full.load_state_dict(part_state(weights, domain), strict=False)
            slot = full.base_model_prefix + "."
            if unexpected or [k for k in missing if not k.startswith(slot)]:
                raise ValueError(f"{path}: the head of {domain!r} does not match its saved weights")
            heads[domain] = full
    encoder.load_state_dict(encoder_weights)
    if index["shared_head"]:
        heads = dict.fromkeys(domains, heads[domains[0]])
    return encoder, heads, domains
