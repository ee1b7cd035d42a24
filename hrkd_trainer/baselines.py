"""The teachers and distillers of the paper's Tables 2-3, each one call on the same data and Trainers.

Teachers (:func:`train_teacher`, ``kind``):

==========  =====================================================  ================================
kind        model                                                  batches
==========  =====================================================  ================================
``single``  one model per domain, each on its own domain            that domain (BERT_B-single)
``mix``     one shared encoder and one classifier, all data pooled  pooled (BERT_B-mix)
``mtl``     shared encoder, one head per domain (Liu et al. 2019)   one domain per step (MT-DNN)
``hrkd``    shared encoder, one head per domain (HRKD §2.1)         every domain in every step
``meta``    Meta-KD's meta-teacher: one classifier, instance        pooled
            weights t_i and the domain-corruption loss
==========  =====================================================  ================================

Distillers: ``multi-domain`` and ``hrkd`` train one student on all domains (:class:`HRKDTrainer`);
``tinybert`` and ``meta-distill`` train one student per domain (:func:`distill_per_domain`), each
from the teacher's view of that domain (its own model for ``single``, the shared model with that
domain's head otherwise).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from datasets import Dataset

from .config import HRKDConfig, MetaKDFields, MultiDomainArguments, derive_arguments
from .lora import LoraSettings, add_lora, has_lora, merge_lora, trainable_parameters
from .meta_trainers import MetaDistillConfig, MetaDistillTrainer, MetaTeacherConfig, MetaTeacherTrainer
from .metakd import DomainCorruption
from .modeling import DomainExperts, MultiDomainModel
from .multi_domain_trainer import MultiDomainTrainer
from .trainer import HRKDTrainer
from .vocabulary import TEACHER_SAMPLING, DistillLoss, DomainSampling, Method, TeacherType

logger = logging.getLogger(__name__)

#: names of release 0.1 (the vocabulary's enums are the source)
TEACHER_TYPES = tuple(TeacherType.values())
PER_DOMAIN_METHODS = tuple(m.value for m in Method if m.per_domain)
#: arguments of a one-domain run derived from multi-domain ones (no domain list, no fit domain)
ONE_DOMAIN = {"domains": None, "fit_domain": None}


@dataclass
class TokenizedData:
    """Tokenised splits: ``train`` one dataset, ``dev``/``test`` ``{domain: dataset}``."""

    train: Dataset
    dev: dict[str, Dataset]
    test: dict[str, Dataset]
    domains: list[str]
    labels: list[str]

    def restrict(self, domain: str) -> TokenizedData:
        """Only ``domain``'s rows, re-indexed as domain 0 (for a one-domain model)."""
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r}; the data has {self.domains}")
        index = self.domains.index(domain)
        train = self.train.filter(lambda d: d == index, input_columns="domain_ids")
        if len(train) == 0:
            raise ValueError(f"domain {domain!r} has no training examples")

        def zero(split: Dataset) -> Dataset:
            return split.map(lambda _: {"domain_ids": 0}, input_columns="domain_ids")

        return TokenizedData(
            train=zero(train),
            dev={domain: zero(self.dev[domain])},
            test={domain: zero(self.test[domain])},
            domains=[domain],
            labels=self.labels,
        )


@dataclass
class TrainedTeacher:
    model: MultiDomainModel | DomainExperts
    trainable_parameters: int
    corruption: DomainCorruption | None = None


def fine_tune(
    model: MultiDomainModel,
    data: TokenizedData,
    args: MultiDomainArguments,
    tokenizer,
    output_dir: str | None,
    trainer_cls: Callable = MultiDomainTrainer,
    resume_from_checkpoint: str | None = None,
    **trainer_kwargs,
):
    """Fine-tune on ``data`` (keeping the snapshot ``args`` selects), export to ``output_dir``; resume
    from a ``checkpoint-N`` folder when given. Returns the trainer (``trainer.student`` is the model)."""
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.dev,
        processing_class=tokenizer,
        **trainer_kwargs,
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    if output_dir is not None:
        trainer.save_model(output_dir)
    return trainer


def _lora_arguments(args: MultiDomainArguments) -> MultiDomainArguments:
    """Checkpoints hold export weights, which a model with adapters cannot reload: with LoRA the
    teacher keeps its final state (evaluation still runs and is logged)."""
    return derive_arguments(args, save_strategy="no", load_best_model_at_end=False)


def train_teacher(
    kind: str,
    source: str,
    data: TokenizedData,
    args: MultiDomainArguments,
    tokenizer,
    output_dir: str,
    lora: LoraSettings | None = None,
    meta: MetaKDFields | None = None,
    seed: int | None = None,
    resume_from_checkpoint: str | None = None,
) -> TrainedTeacher:
    """Train one of the paper's teachers from the pretrained encoder ``source`` and export it.

    ``args`` are the fine-tuning arguments; their ``domain_sampling`` is set per ``kind``. ``meta``
    (for ``kind="meta"``, any :class:`~hrkd_trainer.config.MetaKDFields`, e.g. a
    :class:`MetaTeacherConfig`) carries the meta-teacher's settings; its train data needs
    ``instance_weights`` unless ``meta.instance_weights`` is False. With ``lora`` the encoder is
    fine-tuned through adapters, which are merged before export. ``resume_from_checkpoint`` resumes a
    multi-domain teacher's training (a per-domain ``single`` teacher restarts).
    """
    kind = TeacherType.parse(kind, "teacher type")
    seed = args.seed if seed is None else seed
    if kind == TeacherType.SINGLE:
        experts, trainable = {}, 0
        for domain in data.domains:
            part = data.restrict(domain)
            domain_args = derive_arguments(
                args, output_dir=os.path.join(args.output_dir, domain), **ONE_DOMAIN
            )
            teacher = train_teacher(
                TeacherType.HRKD,
                source,
                part,
                domain_args,
                tokenizer,
                os.path.join(output_dir, domain),
                lora,
                seed=seed,
            )
            experts[domain] = teacher.model
            trainable = teacher.trainable_parameters
        model = DomainExperts(experts, data.domains)
        model.save_index(output_dir)  # each expert was exported to output_dir/<domain> above
        return TrainedTeacher(model, trainable)

    model = MultiDomainModel.from_encoder(
        source, data.domains, data.labels, seed=seed, shared_head=kind in (TeacherType.MIX, TeacherType.META)
    )
    trainable = add_lora(model, lora) if lora else trainable_parameters(model)
    if lora:
        args = _lora_arguments(args)
    if kind == TeacherType.META:
        if meta is None:
            raise ValueError("the meta-teacher needs its Meta-KD settings (meta=MetaTeacherConfig(...))")
        meta_args = derive_arguments(
            args, MetaTeacherConfig, domain_sampling=DomainSampling.POOLED, **meta.meta_kd_values()
        )
        trainer = fine_tune(
            model, data, meta_args, tokenizer, None, MetaTeacherTrainer, resume_from_checkpoint
        )
    else:
        trainer = fine_tune(
            model, data, derive_arguments(args, domain_sampling=TEACHER_SAMPLING[kind]), tokenizer, None,
            resume_from_checkpoint=resume_from_checkpoint,
        )  # fmt: skip
    model = trainer.student
    if has_lora(model):
        merged = merge_lora(model)
        logger.info("merged %d LoRA layers into the teacher", merged)
    trainer.save_model(output_dir)
    corruption = None
    if kind == TeacherType.META:
        trainer.save_domain_corruption(output_dir)
        corruption = trainer.training_modules()["corruption"]
    return TrainedTeacher(model, trainable, corruption)


def distill_per_domain(
    method: str,
    teacher: MultiDomainModel | DomainExperts,
    new_student: Callable[[Sequence[str]], MultiDomainModel],
    data: TokenizedData,
    config: HRKDConfig,
    tokenizer,
    output_dir: str,
    teacher_tokenizer=None,
    teacher_corruption: DomainCorruption | None = None,
    meta: MetaKDFields | None = None,
    prediction_stage: dict | None = None,
) -> DomainExperts:
    """One student per domain, each distilled from the teacher's view of that domain only.

    * ``tinybert``: TinyBERT-KD (the losses of ``config``, one domain at a time).
    * ``meta-distill``: stage 1 :class:`MetaDistillTrainer` (intermediate layers, per-instance weights
      λ_i, the transferable-domain term with the meta-teacher's ``teacher_corruption``), then stage 2
      prediction-layer distillation (``prediction_stage`` overrides, e.g. ``learning_rate``,
      ``num_train_epochs``). The train data needs ``instance_weights`` unless ``meta.instance_weights``
      is False.

    ``new_student([domain])`` builds a fresh one-domain student. Exports to ``output_dir`` in the
    :class:`DomainExperts` layout and returns the students.
    """
    method = Method.parse(method, "per-domain method")
    if not method.per_domain:
        raise ValueError(f"per-domain method must be one of {list(PER_DOMAIN_METHODS)}, got {method!r}")
    if config.relational:
        raise ValueError(f"--method {method} trains one domain at a time: it has no relational module")
    experts = {}
    for index, domain in enumerate(data.domains):
        part = data.restrict(domain)
        domain_teacher = teacher.restrict([domain])
        student = new_student([domain])
        run_dir = os.path.join(config.output_dir, domain)
        if method == Method.TINYBERT:
            args = derive_arguments(config, output_dir=run_dir, **ONE_DOMAIN)
            trainer = fine_tune(
                student, part, args, tokenizer, None, HRKDTrainer,
                teacher_model=domain_teacher, teacher_processing_class=teacher_tokenizer,
            )  # fmt: skip
        else:
            trainer = _meta_distill(
                student, domain_teacher, part, config, tokenizer, teacher_tokenizer, run_dir,
                teacher_corruption, index, meta or MetaKDFields(), prediction_stage or {},
            )  # fmt: skip
        experts[domain] = trainer.student
    students = DomainExperts(experts, data.domains)
    students.save_pretrained(output_dir, tokenizer)
    return students


def _meta_distill(
    student,
    teacher,
    data,
    config,
    tokenizer,
    teacher_tokenizer,
    run_dir,
    corruption,
    domain_index,
    meta,
    prediction,
):
    """Meta-distillation of one domain: stage 1 (intermediate layers, weighted), stage 2 (prediction)."""
    intermediate = [loss for loss in config.distill_losses if loss != DistillLoss.PREDICTION]
    if not intermediate:
        raise ValueError("meta-distillation stage 1 needs at least one of embedding, attention, hidden")
    stage1_args = derive_arguments(
        config,
        MetaDistillConfig,
        output_dir=os.path.join(run_dir, "stage1"),
        **ONE_DOMAIN,
        distill_losses=intermediate,
        eval_strategy="no",  # stage 1 keeps its last state (the release evaluates nothing in stage 1)
        save_strategy="no",
        load_best_model_at_end=False,
        **meta.meta_kd_values(),
    )
    stage1 = fine_tune(
        student, data, stage1_args, tokenizer, None, MetaDistillTrainer,
        teacher_model=teacher, teacher_processing_class=teacher_tokenizer,
        teacher_corruption=corruption, domain_index=domain_index,
    )  # fmt: skip
    stage2_args = derive_arguments(
        config,
        output_dir=os.path.join(run_dir, "stage2"),
        **ONE_DOMAIN,
        distill_losses=[DistillLoss.PREDICTION],
        **{k: v for k, v in prediction.items() if v is not None},
    )
    train = data.train.remove_columns([c for c in ("instance_weights",) if c in data.train.column_names])
    data = dataclasses.replace(data, train=train)  # stage 2 is unweighted
    return fine_tune(
        stage1.student, data, stage2_args, tokenizer, None, HRKDTrainer,
        teacher_model=teacher, teacher_processing_class=teacher_tokenizer,
    )  # fmt: skip


def add_instance_weights(data: TokenizedData, scores: torch.Tensor) -> TokenizedData:
    """Attach Meta-KD's prototype scores t_i (row order of the train split) as ``instance_weights``."""
    if len(scores) != len(data.train):
        raise ValueError(f"{len(scores)} prototype scores for {len(data.train)} training rows")
    train = data.train
    if "instance_weights" in train.column_names:
        train = train.remove_columns("instance_weights")
    return dataclasses.replace(data, train=train.add_column("instance_weights", [float(s) for s in scores]))
