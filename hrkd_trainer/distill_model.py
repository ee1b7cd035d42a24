"""The trainable side of distillation: the student, the projections W^embd, W^hidn_m and the loss
weighting (HRKD: the relational balancer).

``DistillationModel`` is what ``HRKDTrainer`` trains (and what DDP wraps): the student and every
training-only module, so that one forward produces everything the losses need (projected states,
attention scores, domain-relational ratios) and gradients of all trainable parts are synchronised
together. Only ``student`` is ever exported; the training-only modules go to checkpoints and to
:meth:`DistillationModel.save_training_state` (for case studies).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import safetensors.torch
import torch
from torch import nn
from transformers.utils import ModelOutput

from .modeling import MultiDomainModel
from .relational import RelationalBalancer, global_domain_prototypes
from .sharded import module_path, part_state
from .vocabulary import HiddenProjection
from .weighting import LossWeighting, RelationalWeighting, UniformWeighting

TRAINING_STATE_CONFIG = "hrkd_training_state.json"
TRAINING_STATE_WEIGHTS = "hrkd_training_state.safetensors"


class HiddenProjections(nn.Module):
    """One learned map per distilled student position from student width to teacher width.

    Position 0 is ``W^embd`` of eq. 1, position m ≥ 1 is ``W^hidn_m`` of eq. 4 (the released code's
    ``fit_denses``). ``mode="identity"`` uses no parameters (widths must match). New linear maps are
    initialised like BERT weights (normal, std 0.02, zero bias); with equal widths they start as the
    identity so that a student initialised from teacher layers starts from its own states.
    """

    def __init__(self, positions: Sequence[int], student_width: int, teacher_width: int, mode: str = "auto"):
        super().__init__()
        mode = HiddenProjection.parse(mode, "--hidden_projection")
        if mode == HiddenProjection.AUTO:
            mode = HiddenProjection.IDENTITY if student_width == teacher_width else HiddenProjection.LINEAR
        if mode == HiddenProjection.IDENTITY and student_width != teacher_width:
            raise ValueError(
                f"--hidden_projection identity needs equal widths, but the student has {student_width} and "
                f"the teacher {teacher_width}: use --hidden_projection linear (or auto)"
            )
        self.mode = mode
        self.student_width = student_width
        self.teacher_width = teacher_width
        self.positions = tuple(positions)
        self.maps = nn.ModuleDict()
        if mode == HiddenProjection.LINEAR:
            for position in self.positions:
                linear = nn.Linear(student_width, teacher_width)
                with torch.no_grad():
                    if student_width == teacher_width:
                        linear.weight.copy_(torch.eye(student_width))
                    else:
                        linear.weight.normal_(0.0, 0.02)
                    linear.bias.zero_()
                self.maps[str(position)] = linear

    @torch.no_grad()
    def fit(self, position: int, student_states: torch.Tensor, teacher_states: torch.Tensor) -> None:
        """Set position's map to the least-squares map (:func:`least_squares_map`) from student to
        teacher states of the same tokens, instead of a random start."""
        weight, bias = least_squares_map(student_states, teacher_states)
        linear = self.maps[str(position)]
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)

    def forward(self, position: int, states: torch.Tensor) -> torch.Tensor:
        if self.mode == HiddenProjection.IDENTITY:
            return states
        return self.maps[str(position)](states)


def least_squares_map(
    x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W, b)`` minimising ``‖x Wᵀ + b − y‖² + λ‖W‖²`` (rows of ``x`` ``(n, F_s)`` and ``y`` ``(n, F_t)``:
    student and teacher states of the same tokens), in float64; ``λ = ridge · tr(xᵀx)/F_s`` on the
    centred states keeps the solve well posed when the student's states are nearly collinear."""
    x, y = x.double(), y.double()
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc, yc = x - mean_x, y - mean_y
    gram = xc.T @ xc
    lam = ridge * gram.trace() / gram.shape[0]
    weight = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), xc.T @ yc).T
    return weight.float(), (mean_y - weight @ mean_x).float()


@dataclass
class DistillationOutput(ModelOutput):
    """Student side of one distillation step.

    ``projected``: projected states per distilled position (0 = embeddings, then each mapped student
    layer in map order), each ``(N, L, F_teacher)``; ``attention_scores``: pre-softmax scores keyed by
    student layer; ``ratios`` r ``(P, D)`` and ``similarity`` (α^H_m ``(D, m+1)`` for m ≥ 1) from the
    relational balancer (HRKD only).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    projected: tuple[torch.Tensor, ...] | None = None
    attention_scores: dict[int, torch.Tensor] | None = None
    ratios: torch.Tensor | None = None
    similarity: tuple[torch.Tensor, ...] | None = None
    domain_representation: torch.Tensor | None = None


class DistillationModel(nn.Module):
    """Student + projections + loss weighting. In eval mode it is the plain student.

    Args:
        weighting: the :class:`~hrkd_trainer.weighting.LossWeighting` of the losses; its ratios are
            computed in this forward (so that DDP sees its parameters). Default: uniform (eq. 5).
        relational: shorthand for ``weighting=RelationalWeighting(relational)``: HRKD's
            :class:`RelationalBalancer` over positions ``(0, *student_layers)``.
        prototype_mask_padding: prototypes (eq. 6) over real tokens only (else every position).
        ratio_gradient: False detaches the prototypes, so that no gradient reaches the student
            through the ratios.
        domain_transfer: meta-distillation's student-side :class:`~hrkd_trainer.metakd.DomainCorruption`;
            its representation of the last layer, projected like that layer, is ``domain_representation``.
        domain_index: the domain id ``domain_transfer`` embeds (the teacher's id of the distilled domain).
    """

    def __init__(
        self,
        student: MultiDomainModel,
        projections: HiddenProjections,
        student_layers: Sequence[int],
        capture_attention: bool,
        relational: RelationalBalancer | None = None,
        prototype_mask_padding: bool = True,
        ratio_gradient: bool = True,
        domain_transfer: nn.Module | None = None,
        domain_index: int = 0,
        weighting: LossWeighting | None = None,
    ):
        super().__init__()
        self.student = student
        self.projections = projections
        self.student_layers = tuple(student_layers)
        self.capture_attention = capture_attention
        if weighting is None:
            weighting = RelationalWeighting(relational) if relational is not None else UniformWeighting()
        self.weighting = weighting
        self.prototype_mask_padding = prototype_mask_padding
        self.ratio_gradient = ratio_gradient
        self.domain_transfer = domain_transfer
        self.domain_index = domain_index
        self.config = student.config

    @property
    def trained_model(self) -> MultiDomainModel:
        return self.student

    @property
    def relational(self) -> RelationalBalancer | None:
        """HRKD's relational balancer when the weighting has one."""
        return getattr(self.weighting, "balancer", None)

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        return self.student.num_parameters(only_trainable, exclude_embeddings)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        domain_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        relational_seed: int | None = None,
    ):
        """Training mode: student outputs for the losses, and the ratios when HRKD is on. The
        relational dropout masks come from a generator seeded with ``relational_seed`` when given."""
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
        projected = self.project(out.hidden_states)
        ratios, similarity = self.relational_ratios(projected, attention_mask, domain_ids, relational_seed)
        domain_representation = None
        if self.domain_transfer is not None:
            ids = torch.full_like(domain_ids, self.domain_index)
            rep = self.domain_transfer.representation(out.hidden_states[-1], attention_mask, ids)
            domain_representation = self.projections(self.student_layers[-1], rep)
        return DistillationOutput(
            logits=out.logits,
            projected=projected,
            attention_scores=out.attention_scores,
            ratios=ratios,
            similarity=similarity,
            domain_representation=domain_representation,
        )

    def project(self, hidden_states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The student's states at the distilled positions (0, then each mapped layer), projected to
        the teacher's width (W^embd, W^hidn_m)."""
        return tuple(self.projections(p, hidden_states[p]) for p in (0, *self.student_layers))

    def relational_ratios(
        self,
        projected: Sequence[torch.Tensor],
        attention_mask: torch.Tensor | None,
        domain_ids: torch.Tensor,
        seed: int | None = None,
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """Prototypes of the (global) batch (eq. 6) → the weighting's ratios ``(P, D)`` and similarity
        ratios (None for a weighting without ratios of its own)."""
        weighting = self.weighting
        device = projected[0].device
        # fp32 throughout, also under mixed precision: ratios weigh the losses, keep them exact
        with torch.autocast(device_type=device.type, enabled=False):
            prototypes = None
            if weighting.needs_prototypes:
                states = projected if self.ratio_gradient else [p.detach() for p in projected]
                mask = attention_mask if self.prototype_mask_padding else None
                prototypes = global_domain_prototypes(states, domain_ids, self.student.num_domains, mask)
            generator = None
            if seed is not None and weighting.training and weighting.needs_step_seed:
                generator = torch.Generator(device=device)
                generator.manual_seed(seed)
            out = weighting.ratios(prototypes, generator)
        if out is None:
            return None, None
        return out.ratios.to(device), out.similarity

    # ------------------------------------------------------------------ training state
    def save_training_state(self, directory: str, full_state: dict | None = None) -> None:
        """Write the training-only modules (projections, relational balancer) and how to rebuild them;
        ``full_state``: this model's state gathered from shards (:func:`hrkd_trainer.sharded.full_state`).

        This is not part of the exported student: it is what :mod:`hrkd_trainer.case_study` reads.
        """
        os.makedirs(directory, exist_ok=True)
        projections = self.projections
        config = {
            "student_layers": list(self.student_layers),
            "projection": {
                "mode": projections.mode,
                "positions": list(projections.positions),
                "student_width": projections.student_width,
                "teacher_width": projections.teacher_width,
            },
            "prototype_mask_padding": self.prototype_mask_padding,
            "relational": None if self.relational is None else dict(self.relational.settings),
        }
        with open(os.path.join(directory, TRAINING_STATE_CONFIG), "w") as handle:
            json.dump(config, handle, indent=2)
        parts = {"projections": projections, "relational": self.relational}
        state = {
            f"{name}.{k}": v
            for name, module in parts.items()
            if module is not None
            for k, v in (
                module.state_dict()
                if full_state is None
                else part_state(full_state, module_path(self, module))
            ).items()
        }
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        safetensors.torch.save_file(state, os.path.join(directory, TRAINING_STATE_WEIGHTS))

    @classmethod
    def from_training_state(cls, student: MultiDomainModel, directory: str) -> DistillationModel:
        """Rebuild the training-side modules around ``student`` from :meth:`save_training_state`."""
        config_path = os.path.join(directory, TRAINING_STATE_CONFIG)
        if not os.path.exists(config_path):
            raise FileNotFoundError(
                f"{config_path} not found: {directory} holds no distillation training state "
                "(HRKDTrainer.save_training_state writes it; the recipes put it in RUN_DIR/training_state)"
            )
        with open(config_path) as handle:
            config = json.load(handle)
        proj = config["projection"]
        projections = HiddenProjections(
            proj["positions"], proj["student_width"], proj["teacher_width"], proj["mode"]
        )
        relational = None
        if config["relational"] is not None:
            relational = RelationalBalancer(**config["relational"])
        model = cls(
            student,
            projections,
            config["student_layers"],
            capture_attention=False,
            relational=relational,
            prototype_mask_padding=config["prototype_mask_padding"],
        )
        state = safetensors.torch.load_file(os.path.join(directory, TRAINING_STATE_WEIGHTS))
        projections.load_state_dict(
            {k[len("projections.") :]: v for k, v in state.items() if k.startswith("projections.")}
        )
        if relational is not None:
            relational.load_state_dict(
                {k[len("relational.") :]: v for k, v in state.items() if k.startswith("relational.")}
            )
        return model
