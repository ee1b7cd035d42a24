"""The paper's teachers (Tables 2-3), each one call on the same data and Trainers (:func:`train_teacher`):

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
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

from .config import MetaKDFields, MultiDomainArguments, derive_arguments
from .data.tokenized import TokenizedData
from .fine_tuning import ONE_DOMAIN, fine_tune
from .lora import LoraSettings, add_lora, has_lora, merge_lora, trainable_parameters
from .meta_trainers import MetaTeacherConfig, MetaTeacherTrainer
from .metakd import DomainCorruption
from .modeling import DomainExperts, MultiDomainModel
from .vocabulary import TEACHER_SAMPLING, DomainSampling, TeacherType

logger = logging.getLogger(__name__)

#: names of release 0.1 (the vocabulary's enums are the source)
TEACHER_TYPES = tuple(TeacherType.values())


@dataclass
class TrainedTeacher:
    model: MultiDomainModel | DomainExperts
    trainable_parameters: int
    corruption: DomainCorruption | None = None


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
            # a per-domain teacher restarts rather than resumes: its finished domain's checkpoints are dead weight
            shutil.rmtree(domain_args.output_dir, ignore_errors=True)
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
