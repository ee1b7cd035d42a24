"""Modules trained alongside the student but never exported (projections, the relational module,
Meta-KD's domain branches): stored next to the export in checkpoints, restored on resume and when
the best checkpoint is loaded. The file layout is the one of release 0.1, so its checkpoints load."""

from __future__ import annotations

import os

import safetensors.torch
import torch

#: checkpoint file of the training-only modules, keys ``<module name>.<parameter>``
AUX_WEIGHTS_NAME = "hrkd_training_modules.safetensors"


def save_training_modules(
    modules: dict[str, torch.nn.Module], directory: str, states: dict[str, dict] | None = None
) -> None:
    """Write every module's state into ``directory/AUX_WEIGHTS_NAME`` (nothing when all are empty);
    ``states[name]``, when given, replaces ``modules[name].state_dict()`` (full states gathered from
    shards, :mod:`hrkd_trainer.sharded`)."""
    state = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in modules.items()
        for key, value in (module.state_dict() if states is None else states[name]).items()
    }
    if state:
        safetensors.torch.save_file(state, os.path.join(directory, AUX_WEIGHTS_NAME))


def read_training_modules(modules: dict[str, torch.nn.Module], checkpoint: str) -> dict[str, dict]:
    """The states saved by :func:`save_training_modules` in ``checkpoint``, by module name."""
    if not modules or not any(len(m.state_dict()) for m in modules.values()):
        return {name: {} for name in modules}
    path = os.path.join(checkpoint, AUX_WEIGHTS_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{checkpoint} has no {AUX_WEIGHTS_NAME}: cannot restore the training modules"
        )
    state = safetensors.torch.load_file(path)
    return {
        name: {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(f"{name}.")}
        for name in modules
    }


def load_training_modules(modules: dict[str, torch.nn.Module], checkpoint: str) -> None:
    """Restore the modules saved by :func:`save_training_modules` from ``checkpoint``."""
    for name, state in read_training_modules(modules, checkpoint).items():
        if state or len(modules[name].state_dict()):
            modules[name].load_state_dict(state)
