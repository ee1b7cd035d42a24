"""LoRA teachers (``peft``): fine-tune low-rank adapters instead of the whole teacher encoder, then
merge them into the weights before distillation, so the teacher the student sees is a plain model.

    trainable = add_lora(teacher, LoraSettings(r=8))   # adapters in the encoder; heads stay trainable
    ... fine-tune ...
    merge_lora(teacher)                                  # W ← W + (α/r)·B·A, adapters removed

Distilling from the unmerged model gives the same result as from the merged one (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

#: attention projections per architecture, where peft has no default of its own
_TARGETS = {"mpnet": ["q", "v"], "distilbert": ["q_lin", "v_lin"]}


@dataclass
class LoraSettings:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: list[str] | None = None
    #: encoder parameters trained in full besides the adapters (names containing these strings)
    trainable: list[str] = field(default_factory=lambda: ["pooler"])


def _target_modules(encoder: nn.Module, settings: LoraSettings) -> list[str]:
    if settings.target_modules:
        return list(settings.target_modules)
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    model_type = getattr(getattr(encoder, "config", None), "model_type", None)
    targets = DEFAULTS.get(model_type) or _TARGETS.get(model_type)
    if not targets:
        raise ValueError(
            f"no default LoRA target modules for model type {model_type!r}: pass --teacher_lora_target_modules "
            "(the names of the attention projections, e.g. query value)"
        )
    return list(targets)


def add_lora(model, settings: LoraSettings) -> int:
    """Inject LoRA adapters into ``model.encoder`` (a :class:`MultiDomainModel`) in place and freeze the
    rest of the encoder (except ``settings.trainable``). Heads stay trainable. Returns the number of
    trainable parameters."""
    from peft import LoraConfig, inject_adapter_in_model

    if settings.r < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {settings.r}")
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=_target_modules(model.encoder, settings),
        bias="none",
    )
    inject_adapter_in_model(config, model.encoder)
    for name, parameter in model.encoder.named_parameters():
        parameter.requires_grad = "lora_" in name or any(key in name for key in settings.trainable)
    return trainable_parameters(model)


def trainable_parameters(model: nn.Module) -> int:
    """Parameters that receive gradients (each shared tensor once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def has_lora(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(module, LoraLayer) for module in model.modules())


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA adapter into its base layer and put the base layer back in its place.
    Returns the number of merged layers. Afterwards every parameter is trainable again (plain model)."""
    from peft.tuners.lora import LoraLayer

    replacements = [
        (parent, child_name, child)
        for parent in model.modules()
        for child_name, child in parent.named_children()
        if isinstance(child, LoraLayer)
    ]
    for parent, child_name, child in replacements:
        child.merge()
        setattr(parent, child_name, child.get_base_layer())
    if replacements:
        model.requires_grad_(True)
    return len(replacements)
