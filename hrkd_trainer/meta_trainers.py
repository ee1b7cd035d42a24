"""Meta-KD's two trainers (Pan et al., ACL 2021), the baseline HRKD compares against (Tables 2-3).

* :class:`MetaTeacherTrainer` trains the meta-teacher: one classifier on all domains pooled, each
  example weighted by its prototype score ``t_i``, plus the domain-corruption loss against shuffled
  domain ids (Meta-KD §3.2; docs/baselines.md). Unlike the released script, the corruption loss is on
  (``domain_loss_weight`` > 0): the release's ``type=bool`` flag never enabled it (§5).
* :class:`MetaDistillTrainer` is meta-distillation's stage 1 for one target domain (§2.5):
  embedding/hidden/attention losses weighted *per instance* by ``λ_i = (1 + t_i)·w_i`` plus the
  transferable-domain term. Stage 2 (§2.6) is prediction-layer distillation without weights, i.e.
  :class:`~hrkd_trainer.trainer.HRKDTrainer` with ``distill_losses=["prediction"]``; the per-domain
  driver in :mod:`hrkd_trainer.baselines` runs both stages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .collate import student_inputs, teacher_inputs
from .config import HRKDConfig, MetaKDFields, MultiDomainArguments
from .metakd import DomainCorruption, corrupted_domain_ids, domain_expertise_weights, meta_instance_weights
from .modeling import MultiDomainModel
from .multi_domain_trainer import MultiDomainTrainer, StepSeeds
from .trainer import HRKDTrainer
from .vocabulary import DistillLoss, DomainSampling

logger = logging.getLogger(__name__)


def _require_instance_weights(dataset, why: str) -> None:
    if dataset is not None and "instance_weights" not in dataset.column_names:
        raise ValueError(
            f"{why}, but the train dataset has no 'instance_weights' column: add "
            "hrkd_trainer.metakd.encoder_prototype_scores(...) as that column, or set instance_weights=False"
        )


# ---------------------------------------------------------------------------- meta-teacher
@dataclass
class MetaTeacherConfig(MultiDomainArguments, MetaKDFields):
    """Meta-teacher training (Meta-KD §3.2; see docs/baselines.md). Batches are pooled over all
    domains by default; the Meta-KD fields (``domain_loss_weight``, ``instance_weights``,
    ``corruption_dropout``) come from :class:`~hrkd_trainer.config.MetaKDFields`."""

    domain_sampling: str = field(
        default=DomainSampling.POOLED,
        metadata={
            "help": "The meta-teacher trains on all domains shuffled together ('pooled').",
            "choices": DomainSampling.values(),
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self.check_meta_kd()


class MetaTeacherModel(nn.Module):
    """The meta-teacher during training: the multi-domain model plus the domain-corruption branch."""

    def __init__(self, model: MultiDomainModel, corruption: DomainCorruption):
        super().__init__()
        self.model = model
        self.corruption = corruption
        self.config = model.config

    @property
    def trained_model(self) -> MultiDomainModel:
        return self.model

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        return self.model.num_parameters(only_trainable, exclude_embeddings)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, domain_ids=None, labels=None):
        if not self.training:
            return self.model(input_ids, attention_mask, token_type_ids, domain_ids, labels)
        out = self.model(input_ids, attention_mask, token_type_ids, domain_ids, output_hidden_states=True)
        domain_logits = self.corruption(out.hidden_states[-1], attention_mask, domain_ids)
        return out.logits, domain_logits


def meta_teacher_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    domain_logits: torch.Tensor,
    corrupted_ids: torch.Tensor,
    weights: torch.Tensor | None,
    domain_loss_weight: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``L_T = mean_i t_i · (CE(z_i, y_i) + γ1 · CE(z^dom_i, k̃_i))`` (Meta-KD §3.2; docs/baselines.md).

    Returns ``(L_T, mean CE, mean domain CE)``; ``weights=None`` means ``t_i = 1``.
    """
    task = F.cross_entropy(logits.float(), labels, reduction="none")
    domain = F.cross_entropy(domain_logits.float(), corrupted_ids, reduction="none")
    rows = task + domain_loss_weight * domain
    if weights is not None:
        rows = rows * weights.float()
    return rows.mean(), task.mean(), domain.mean()


class MetaTeacherTrainer(MultiDomainTrainer):
    """Trains Meta-KD's meta-teacher (a :class:`MultiDomainModel`, normally with a shared head).

    The train dataset needs ``instance_weights`` (``metakd.encoder_prototype_scores``) unless
    ``args.instance_weights`` is False. The corruption branch is a training module: it is saved in
    checkpoints, and :meth:`save_domain_corruption` writes it next to the teacher export, where
    meta-distillation looks for it.
    """

    def __init__(self, model: MultiDomainModel, args: MetaTeacherConfig, **kwargs):
        if not isinstance(args, MetaTeacherConfig):
            raise TypeError(f"MetaTeacherTrainer needs a MetaTeacherConfig, got {type(args).__name__}")
        if len(model.domains) < 2:
            raise ValueError("the meta-teacher learns across domains: it needs at least 2")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            corruption = DomainCorruption(model.num_domains, model.hidden_size, args.corruption_dropout)
        super().__init__(model=MetaTeacherModel(model, corruption), args=args, **kwargs)
        if args.instance_weights:
            _require_instance_weights(
                self.train_dataset, "the meta-teacher weights examples by prototype scores t_i"
            )
        self._step_seeds = StepSeeds(args.seed)

    def training_modules(self) -> dict[str, nn.Module]:
        return {"corruption": self.accelerator.unwrap_model(self.model).corruption}

    def save_domain_corruption(self, directory: str) -> None:
        if self.args.should_save:
            self.accelerator.unwrap_model(self.model).corruption.save(directory)

    def training_loss(self, model, inputs):
        logits, domain_logits = model(**student_inputs(inputs))
        generator = torch.Generator(device=inputs["domain_ids"].device)
        generator.manual_seed(self._step_seeds.next(self.state.global_step))
        corrupted = corrupted_domain_ids(inputs["domain_ids"], generator)
        weights = inputs.get("instance_weights") if self.args.instance_weights else None
        loss, task, domain = meta_teacher_loss(
            logits, inputs["labels"], domain_logits, corrupted, weights, self.args.domain_loss_weight
        )
        self.training_logs.add_metric("task_loss", task)
        self.training_logs.add_metric("domain_loss", domain)
        return loss, logits


# ---------------------------------------------------------------------------- meta-distillation
@dataclass
class MetaDistillConfig(HRKDConfig, MetaKDFields):
    """Meta-distillation stage 1 (see docs/baselines.md), for one target domain. The Meta-KD fields
    (``transfer_loss_weight``, ``instance_weights``) come from :class:`~hrkd_trainer.config.MetaKDFields`."""

    distill_losses: list[str] = field(
        default_factory=lambda: [DistillLoss.EMBEDDING, DistillLoss.ATTENTION, DistillLoss.HIDDEN],
        metadata={
            "help": "Stage 1 distils the intermediate layers only (prediction is stage 2).",
            "choices": DistillLoss.values(),
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self.check_meta_kd()


def weighted_instance_mean(rows, weights: torch.Tensor) -> torch.Tensor:
    """``mean_i λ_i · ℓ_i`` where ``ℓ_i = total_i / count_i`` is each example's own mean (per instance,
    not the batch-averaged weighting of the EasyNLP port)."""
    return (weights * rows.total / rows.count.clamp_min(1.0)).mean()


class MetaDistillTrainer(HRKDTrainer):
    """Meta-distillation stage 1 on one domain: ``L1 = mean_i λ_i (ℓ^hid_i + ℓ^att_i + γ2 ℓ^dom_i)``.

    ``ℓ^hid_i`` sums the embedding and hidden-state MSEs of example i (each averaged over its own real
    tokens and features), ``ℓ^att_i`` the attention-score MSEs; ``ℓ^dom_i = mean_f (D_T(x_i) − W D_S(x_i))²``
    compares the teacher's domain representation (its saved :class:`DomainCorruption`) with the
    student's own (a fresh one, projected by the last layer's map). Per instance throughout; the release
    averages the domain term over the batch first.

    Args:
        teacher_corruption: the meta-teacher's :class:`DomainCorruption` (None: no transferable term,
            e.g. when the teacher is not a meta-teacher).
        domain_index: the distilled domain's id in the teacher's domain embedding.
    """

    def __init__(
        self,
        model: MultiDomainModel,
        teacher_model: MultiDomainModel,
        args: MetaDistillConfig,
        teacher_corruption: DomainCorruption | None = None,
        domain_index: int = 0,
        **kwargs,
    ):
        if not isinstance(args, MetaDistillConfig):
            raise TypeError(f"MetaDistillTrainer needs a MetaDistillConfig, got {type(args).__name__}")
        if args.relational:
            raise ValueError("meta-distillation has no relational module: leave --relational_mode off")
        if "prediction" in args.distill_losses:
            raise ValueError("meta-distillation stage 1 has no prediction loss (stage 2 is separate)")
        if args.teacher_cache:
            raise ValueError(
                "meta-distillation reads the teacher's last layer and its domain module in every step: "
                "--teacher_cache is not supported for it"
            )
        if len(model.domains) != 1:
            raise ValueError(f"meta-distillation trains one domain at a time, got {model.domains}")
        if args.transfer_loss_weight and teacher_corruption is None:
            logger.warning(
                "the teacher has no domain-corruption module (not a meta-teacher): no transfer term"
            )
        self._teacher_corruption = teacher_corruption if args.transfer_loss_weight else None
        self._domain_index = domain_index
        super().__init__(model=model, teacher_model=teacher_model, args=args, **kwargs)
        if args.instance_weights:
            _require_instance_weights(
                self.train_dataset, "meta-distillation weights examples by λ_i = (1 + t_i)·w_i"
            )
        if self._teacher_corruption is not None:
            self._teacher_corruption.eval().requires_grad_(False)
            self._teacher_corruption.to(self.args.device)

    def _extra_training_modules(self, args, student, teacher) -> dict:
        if self._teacher_corruption is None:
            return {}
        if self.layer_map.student_layers[-1] != student.num_hidden_layers:
            raise ValueError("the transferable-domain term needs the student's last layer in the layer map")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            transfer = DomainCorruption(self._teacher_corruption.num_domains, student.hidden_size)
        return {"domain_transfer": transfer, "domain_index": self._domain_index}

    def training_loss(self, model, inputs):
        args = self.args
        teacher = self._teacher_forward(inputs)
        student = model(**student_inputs(inputs))
        rows = self.component_rows(student, teacher, inputs)
        if args.instance_weights:
            expertise = domain_expertise_weights(teacher.logits.float().softmax(-1), inputs["labels"])
            weights = meta_instance_weights(inputs["instance_weights"], expertise)
        else:
            weights = torch.ones_like(inputs["domain_ids"], dtype=torch.float)
        parts = {}
        if rows["embd"] is not None:
            parts["embd"] = weighted_instance_mean(rows["embd"], weights)
        if rows["hidn"] is not None:
            parts["hidn"] = sum(weighted_instance_mean(r, weights) for r in rows["hidn"])
        if rows["attn"] is not None:
            parts["attn"] = sum(weighted_instance_mean(r, weights) for r in rows["attn"])
        if self._teacher_corruption is not None:
            ids = torch.full_like(inputs["domain_ids"], self._domain_index)
            target = self._teacher_corruption.representation(
                teacher.hidden_states[-1], teacher_inputs(inputs)["attention_mask"], ids
            )
            per_row = (student.domain_representation.float() - target.float()).pow(2).mean(-1)
            parts["dom"] = args.transfer_loss_weight * (weights * per_row).mean()
        loss = sum(parts.values())
        for key, value in parts.items():  # kept on device: averaged in log()
            self.training_logs.add_metric(f"{key}_loss", value)
        self.training_logs.add_metric("instance_weight", weights.mean())
        return loss, student
