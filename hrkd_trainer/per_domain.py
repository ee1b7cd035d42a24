"""The per-domain distillers of Tables 2-3: one student per domain, each distilled from the teacher's
view of that domain (its own model for a ``single`` teacher, the shared model with that domain's head
otherwise). ``tinybert``: TinyBERT-KD on one domain at a time; ``meta-distill``: Meta-KD's two-stage
meta-distillation. The multi-domain distillers (``multi-domain``, ``hrkd``) are :class:`HRKDTrainer`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence

from .config import HRKDConfig, MetaKDFields, derive_arguments
from .data.tokenized import TokenizedData
from .fine_tuning import ONE_DOMAIN, fine_tune
from .meta_trainers import MetaDistillConfig, MetaDistillTrainer
from .metakd import DomainCorruption
from .modeling import DomainExperts, MultiDomainModel
from .trainer import HRKDTrainer
from .vocabulary import DistillLoss, Method

PER_DOMAIN_METHODS = tuple(m.value for m in Method if m.per_domain)


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
        # per-domain stages restart rather than resume: a finished domain's checkpoints are dead weight
        shutil.rmtree(run_dir, ignore_errors=True)
    students = DomainExperts(experts, data.domains)
    students.save_pretrained(output_dir, tokenizer, domain_copies=config.export_domain_copies)
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
    data = data.without_instance_weights()  # stage 2 is unweighted
    return fine_tune(
        stage1.student, data, stage2_args, tokenizer, None, HRKDTrainer,
        teacher_model=teacher, teacher_processing_class=teacher_tokenizer,
    )  # fmt: skip
