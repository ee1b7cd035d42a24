"""What multi-process training needs: sums over the processes with exact gradients, and the teacher
put on every device for inference only (never inside DDP/FSDP, its own engine under DeepSpeed).

HRKD's quantities are statistics of the *global* batch: the per-domain prototypes (eq. 6) and the
per-domain means of the component losses (eq. 1-4). Each process holds a slice of every domain, so it
computes per-domain partial sums and :func:`global_sum` adds them up over the processes. The sum goes
through ``torch.distributed.nn.functional.all_reduce``, whose backward all-reduces the incoming
gradients: every process then computes the same loss ``L`` of the global sums, each slice receives
``world × ∂L/∂slice``, and DDP's averaging of parameter gradients divides by ``world``, so the
parameters receive exactly the gradient of the single-process loss over the global batch.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes of the initialised default group (1 without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def global_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``Σ_processes tensor``, differentiable; the tensor itself in a single process."""
    if world_size() == 1:
        return tensor
    if not tensor.requires_grad:
        out = tensor.detach().clone()
        dist.all_reduce(out)
        return out
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor)


def teacher_deepspeed_config(student_config: dict, hidden_size: int | None = None) -> dict:
    """The DeepSpeed config of the frozen teacher's inference engine, from the student's.

    As TRL does for its reference and teacher models: under ZeRO-3 the teacher is sharded like the
    student (with buckets sized from its width, so that small parameters stay resident); under
    ZeRO-0/1/2 there is nothing to shard for a model without optimizer states or gradients, so the
    teacher runs at stage 0 (a plain replicated copy in the engine's precision). Optimizer, scheduler
    and batch-size entries are irrelevant to an engine that never steps and are dropped.
    """
    config = copy.deepcopy(student_config)
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    zero = dict(config.get("zero_optimization", {}))
    stage = int(zero.get("stage", 0))
    if stage == 3:
        if hidden_size:
            zero.update(
                reduce_bucket_size=hidden_size * hidden_size,
                stage3_param_persistence_threshold=10 * hidden_size,
                stage3_prefetch_bucket_size=int(0.9 * hidden_size * hidden_size),
            )
    else:
        zero = {"stage": 0}
    config["zero_optimization"] = zero
    return config


def prepare_teacher(accelerator, teacher: torch.nn.Module, shard: bool = False) -> torch.nn.Module:
    """Put the frozen teacher on the accelerator for inference, never inside a training wrapper.

    * DeepSpeed: its own engine (:func:`teacher_deepspeed_config`), in eval mode;
    * DDP, FSDP, single device: ``accelerator.prepare_model(evaluation_mode=True)`` (device placement and
      the mixed-precision forward, no DDP/FSDP wrapper). Device placement is forced: Accelerate leaves
      it off under FSDP, which would leave the teacher on the CPU (trl#2580);
    * FSDP2 with ``shard``: sharded per transformer block for inference
      (:func:`hrkd_trainer.sharded.shard_for_inference`), for a teacher larger than one device.
    """
    teacher.eval()
    teacher.requires_grad_(False)
    if shard and getattr(accelerator, "is_fsdp2", False):
        from .sharded import shard_for_inference

        return shard_for_inference(teacher.to(accelerator.device))
    if getattr(accelerator.state, "deepspeed_plugin", None) is not None:
        import deepspeed

        plugin = accelerator.state.deepspeed_plugin
        hidden = getattr(getattr(teacher, "config", None), "hidden_size", None)
        config = teacher_deepspeed_config(plugin.deepspeed_config, hidden)
        engine, *_ = deepspeed.initialize(model=teacher, config=config)
        engine.eval()
        return engine
    return accelerator.prepare_model(teacher, device_placement=True, evaluation_mode=True)
