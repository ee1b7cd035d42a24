"""Release 0.1's module of the paper's teachers and distillers, kept as a thin re-export so that code
importing from it keeps working. New code imports from where each name lives:
:mod:`hrkd_trainer.teacher_training` (the teachers), :mod:`hrkd_trainer.per_domain` (one student per
domain), :mod:`hrkd_trainer.fine_tuning` (the general training helper) and
:mod:`hrkd_trainer.data.tokenized` (the tokenised splits)."""

from .data.tokenized import TokenizedData, add_instance_weights
from .fine_tuning import ONE_DOMAIN, fine_tune
from .per_domain import PER_DOMAIN_METHODS, distill_per_domain
from .teacher_training import TEACHER_TYPES, TrainedTeacher, train_teacher

__all__ = [
    "ONE_DOMAIN",
    "PER_DOMAIN_METHODS",
    "TEACHER_TYPES",
    "TokenizedData",
    "TrainedTeacher",
    "add_instance_weights",
    "distill_per_domain",
    "fine_tune",
    "train_teacher",
]
