"""Sums over the processes of a data-parallel run, with exact gradients.

HRKD's quantities are statistics of the *global* batch: the per-domain prototypes (eq. 6) and the
per-domain means of the component losses (eq. 1-4). Each process holds a slice of every domain, so it
computes per-domain partial sums and :func:`global_sum` adds them up over the processes. The sum goes
through ``torch.distributed.nn.functional.all_reduce``, whose backward all-reduces the incoming
gradients: every process then computes the same loss ``L`` of the global sums, each slice receives
``world × ∂L/∂slice``, and DDP's averaging of parameter gradients divides by ``world``, so the
parameters receive exactly the gradient of the single-process loss over the global batch.
"""

from __future__ import annotations

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
