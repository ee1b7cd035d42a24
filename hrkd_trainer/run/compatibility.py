"""What the data and a given teacher ask of a run, settled before anything trains: the data's labels
matched to a plain classifier given as ``--teacher`` (``teacher_labels.py``), that classifier loaded as
a multi-domain model, and the methods that need several domains on one-domain data."""

from __future__ import annotations

import logging
import os

from datasets import DatasetDict

from ..config import HRKDConfig
from ..modeling import EXPERTS_FILE, MultiDomainModel, load_multi_domain
from ..teacher_labels import LabelMismatch, is_plain_classifier, relabel_to_teacher
from ..vocabulary import LossWeightingKind, Method, RelationalMode, TeacherType
from .arguments import RecipeArguments

logger = logging.getLogger(__name__)


def teacher_labelled(data: DatasetDict, recipe: RecipeArguments) -> DatasetDict:
    """With a plain classifier as ``--teacher``: the data relabelled to its classes (``teacher_labels.py``)."""
    if not recipe.teacher:
        if recipe.label_map:
            raise SystemExit("--label_map maps the data's labels to --teacher's classes: give --teacher")
        return data
    try:
        return relabel_to_teacher(data, recipe.teacher, recipe.label_map)
    except LabelMismatch as err:
        raise SystemExit(str(err)) from None


def fit_methods_to_domains(domains: list[str], recipe: RecipeArguments, config: HRKDConfig) -> None:
    """One domain: Meta-KD (it compares each domain with the others) is refused; a weighting across
    domains (the relational graph, the adaptive strategies) has one domain to weigh, its weight is 1
    whatever it computes, so the run falls back to uniform weights and says so, before training."""
    if len(domains) > 1:
        return
    meta_teacher = recipe.teacher_type == TeacherType.META and not recipe.teacher
    if meta_teacher or recipe.method == Method.META_DISTILL:
        what = "--method meta-distill" if recipe.method == Method.META_DISTILL else "--teacher_type meta"
        raise SystemExit(
            f"{what} needs at least 2 domains (Meta-KD compares each domain with the others); the data has one, "
            f"{domains}: use --method multi-domain and --teacher_type hrkd, or add a domain column"
        )
    if config.relational or config.adaptive_weighting:
        logger.warning(
            "one domain (%s): --method %s / --loss_weighting %s weighs domains against each other, which needs at "
            "least 2; distilling with uniform weights (--method multi-domain) instead",
            domains[0], recipe.method, config.loss_weighting,
        )  # fmt: skip
        recipe.method = Method.MULTI_DOMAIN
        config.relational_mode = RelationalMode.OFF
        config.loss_weighting = LossWeightingKind.UNIFORM


def teacher_from(path: str, domains: list[str]):
    """``--teacher``: an hrkd-trainer export, or a plain classifier whose head serves every domain."""
    from transformers import AutoConfig

    if os.path.isfile(os.path.join(path, EXPERTS_FILE)) or not is_plain_classifier(
        path, AutoConfig.from_pretrained(path)
    ):
        return load_multi_domain(path)
    logger.info("--teacher %s is a plain classifier: its one head serves the domains %s", path, domains)
    return MultiDomainModel.from_classifier(path, domains)
