"""Saving and restoring when the trained model is sharded (FSDP2, DeepSpeed ZeRO-3).

Under a sharding engine no process holds the whole student: FSDP2 turns parameters into ``DTensor``
shards, ZeRO-3 leaves empty placeholders. ``Trainer.save_model`` therefore gathers a full state dict
the engines' own way before it calls ``_save(output_dir, state_dict)``:

* FSDP2: ``accelerator.get_state_dict(model)``, i.e. torch's
  ``get_model_state_dict(model, StateDictOptions(full_state_dict=True, cpu_offload=True))``;
* ZeRO-3: ``engine._zero3_consolidated_16bit_state_dict()`` (needs
  ``stage3_gather_16bit_weights_on_model_save``, ``zero3_save_16bit_model: true`` in Accelerate's config).

Its keys are those of the wrapped root module (e.g. :class:`~hrkd_trainer.distill_model.DistillationModel`:
``student.encoder.…``, ``projections.…``, ``weighting.balancer.…``). This module splits that dict into
the parts the export and the checkpoint files hold (:func:`part_state`), and builds the reverse, a full
root state dict from an export and the training-module file, for torch's ``set_model_state_dict``
(:func:`load_full_state`), which re-shards it on every process.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def is_sharded(module: nn.Module) -> bool:
    """Whether ``module``'s parameters are FSDP2 shards (``DTensor``) or ZeRO-3 partitions."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        DTensor = ()
    return any(isinstance(p, DTensor) or hasattr(p, "ds_id") for p in module.parameters())


def module_path(root: nn.Module, module: nn.Module) -> str:
    """The dotted name of ``module`` inside ``root`` ('' for the root itself)."""
    for name, candidate in root.named_modules(remove_duplicate=False):
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(root).__name__}")


def part_state(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` (a module path from :func:`module_path`), with the prefix removed,
    as contiguous CPU tensors."""
    if not prefix:
        return {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    head = prefix + "."
    return {
        k[len(head) :]: v.detach().cpu().contiguous() for k, v in state_dict.items() if k.startswith(head)
    }


def with_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {(f"{prefix}.{k}" if prefix else k): v for k, v in state_dict.items()}


def full_state(root: nn.Module) -> dict[str, torch.Tensor]:
    """The whole unsharded state of ``root`` on the CPU, gathered as Accelerate does for FSDP2
    (a collective: every process must call it; the full dict is built on every process)."""
    if not is_sharded(root):
        return {k: v.detach().cpu() for k, v in root.state_dict().items()}
    if any(hasattr(p, "ds_id") for p in root.parameters()):  # ZeRO-3: DeepSpeed's own gathering
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(root.parameters()), modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in root.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(root, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state(root: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy a full (unsharded) state dict with ``root``'s keys into ``root``, re-sharding it under
    FSDP2 (torch's ``set_model_state_dict``; every process passes the same dict). Every key of the
    model must be present."""
    if not is_sharded(root):
        missing, unexpected = root.load_state_dict(dict(state_dict), strict=False)
        if missing or unexpected:
            raise KeyError(f"checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
        return
    if any(hasattr(p, "ds_id") for p in root.parameters()):
        raise RuntimeError(
            "ZeRO-3 parameters are restored from DeepSpeed's engine checkpoint (Trainer's deepspeed_load_checkpoint), "
            "not from an export"
        )
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    result = set_model_state_dict(root, dict(state_dict), options=StateDictOptions(full_state_dict=True))
    if result.missing_keys or result.unexpected_keys:
        raise KeyError(
            f"checkpoint does not match the sharded model: missing {result.missing_keys}, "
            f"unexpected {result.unexpected_keys}"
        )


def split_student_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """A :class:`~hrkd_trainer.modeling.MultiDomainModel`'s full state (keys ``encoder.…``,
    ``heads.<domain>.…``) as the export writes it: the encoder's state, and per domain the state of its
    ``*ForSequenceClassification`` model (the encoder under the architecture's prefix, plus the head)."""
    encoder = part_state(state_dict, "encoder")
    if not encoder:
        raise KeyError("the gathered state dict holds no 'encoder.' entries: it is not this student's")
    heads = {}
    for domain, head in model.heads.items():
        heads[domain] = {
            **with_prefix(encoder, head.base_model_prefix),
            **part_state(state_dict, f"heads.{domain}"),
        }
    return encoder, heads


def shard_for_inference(model: nn.Module) -> nn.Module:
    """Shard a frozen model with FSDP2 for inference: ``fully_shard`` on every transformer block of its
    encoder, then on the model (each block's parameters are gathered for its forward and freed after)."""
    from torch.distributed.fsdp import fully_shard

    from .capture import find_layer_list

    model.eval()
    model.requires_grad_(False)
    encoder = getattr(model, "encoder", model)
    for block in find_layer_list(encoder):
        fully_shard(block)
    fully_shard(model)
    return model
