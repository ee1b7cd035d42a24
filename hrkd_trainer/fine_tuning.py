"""The general training helper every stage, teacher and distiller uses: one Trainer run on tokenised
data, keeping the snapshot the arguments select, exported when asked."""

from __future__ import annotations

from collections.abc import Callable

from .config import MultiDomainArguments
from .data.tokenized import TokenizedData
from .modeling import MultiDomainModel
from .multi_domain_trainer import MultiDomainTrainer

#: arguments of a one-domain run derived from multi-domain ones (no domain list, no fit domain)
ONE_DOMAIN = {"domains": None, "fit_domain": None}


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
