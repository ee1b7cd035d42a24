"""The trainable side of distillation: the student plus the projections W^embd, W^hidn_m.

``DistillationModel`` is what ``HRKDTrainer`` trains (and what DDP wraps): the student and every
training-only module, so that one forward produces everything the losses need and gradients of all
trainable parts are synchronised together. Only ``student`` is ever exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from .modeling import MultiDomainModel


class HiddenProjections(nn.Module):
    """One learned map per distilled student position from student width to teacher width.

    Position 0 is ``W^embd`` of eq. 1, position m ≥ 1 is ``W^hidn_m`` of eq. 4 (the released code's
    ``fit_denses``). ``mode="identity"`` uses no parameters (widths must match). New linear maps are
    initialised like BERT weights (normal, std 0.02, zero bias); with equal widths they start as the
    identity so that a student initialised from teacher layers starts from its own states.
    """

    def __init__(self, positions: Sequence[int], student_width: int, teacher_width: int, mode: str = "auto"):
        super().__init__()
        if mode == "auto":
            mode = "identity" if student_width == teacher_width else "linear"
        if mode == "identity" and student_width != teacher_width:
            raise ValueError(
                f"--hidden_projection identity needs equal widths, but the student has {student_width} and "
                f"the teacher {teacher_width}: use --hidden_projection linear (or auto)"
            )
        self.mode = mode
        self.positions = tuple(positions)
        self.maps = nn.ModuleDict()
        if mode == "linear":
            for position in self.positions:
                linear = nn.Linear(student_width, teacher_width)
                with torch.no_grad():
                    if student_width == teacher_width:
                        linear.weight.copy_(torch.eye(student_width))
                    else:
                        linear.weight.normal_(0.0, 0.02)
                    linear.bias.zero_()
                self.maps[str(position)] = linear

    def forward(self, position: int, states: torch.Tensor) -> torch.Tensor:
        if self.mode == "identity":
            return states
        return self.maps[str(position)](states)


@dataclass
class DistillationOutput(ModelOutput):
    """Student side of one distillation step.

    ``projected``: projected states per distilled position (0 = embeddings, then each mapped student
    layer in map order), each ``(N, L, F_teacher)``; ``attention_scores``: pre-softmax scores keyed by
    student layer.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    projected: tuple[torch.Tensor, ...] | None = None
    attention_scores: dict[int, torch.Tensor] | None = None


class DistillationModel(nn.Module):
    """Student + projections. In eval mode it is the plain student."""

    def __init__(
        self,
        student: MultiDomainModel,
        projections: HiddenProjections,
        student_layers: Sequence[int],
        capture_attention: bool,
    ):
        super().__init__()
        self.student = student
        self.projections = projections
        self.student_layers = tuple(student_layers)
        self.capture_attention = capture_attention
        self.config = student.config

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        return self.student.num_parameters(only_trainable, exclude_embeddings)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        domain_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ):
        if not self.training:
            return self.student(input_ids, attention_mask, token_type_ids, domain_ids, labels)
        out = self.student(
            input_ids,
            attention_mask,
            token_type_ids,
            domain_ids,
            labels=None,
            output_hidden_states=True,
            capture_layers=self.student_layers if self.capture_attention else (),
        )
        positions = (0, *self.student_layers)
        projected = tuple(self.projections(p, out.hidden_states[p]) for p in positions)
        return DistillationOutput(
            logits=out.logits, projected=projected, attention_scores=out.attention_scores
        )
