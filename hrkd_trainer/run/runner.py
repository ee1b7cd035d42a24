"""``run_recipe``: the five stages of a recipe run, in order (see :mod:`hrkd_trainer.run.stages`)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from datasets import DatasetDict

from ..config import HRKDConfig, derive_arguments
from ..data.common import DataSource
from .arguments import RecipeArguments
from .report import check_push, report
from .stages import distill_student, obtain_teacher, prepare_data, train_baseline

logger = logging.getLogger(__name__)


def configure_logging(config: HRKDConfig) -> None:
    """Show the package's log lines (stage progress, resume points, skipped data) at INFO on the main
    process and at WARNING on the others, unless the application configured the logger itself."""
    package = logging.getLogger("hrkd_trainer")
    if package.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[hrkd] %(message)s"))
    package.addHandler(handler)
    package.setLevel(logging.INFO if config.process_index == 0 else logging.WARNING)
    package.propagate = False


def run_recipe(
    recipe: RecipeArguments,
    config: HRKDConfig,
    load_data: Callable[[RecipeArguments], DatasetDict],
    default_teacher_init: Callable[[], str] | None = None,
    data_source: DataSource | None = None,
) -> dict:
    """Teacher (fine-tuned or given) → distilled student (+ baseline) → test accuracy, speed, results.json.

    With ``--push_to_hub`` the finished run is published as ``hub_upload.py`` would publish it (to
    ``--hub_model_id``); no trainer of the run pushes anything itself (the teacher never leaves).
    """
    started = time.time()
    configure_logging(config)
    push = config.push_to_hub
    if push:  # fail before training, not after it
        check_push(config)
        config = derive_arguments(config, push_to_hub=False)
    names = ["data", "teacher", "distillation", *(["baseline"] if recipe.baseline else []), "report"]

    def header(name: str, detail: str = "") -> None:
        logger.info("stage %d/%d: %s%s", names.index(name) + 1, len(names), name, detail)

    header("data", f" ({'your data' if getattr(recipe, 'own_data', False) else 'the recipe data'})")
    state = prepare_data(recipe, config, load_data, default_teacher_init, data_source)
    state.started = started
    logger.info(
        "data: %s", ", ".join(f"{split} {len(state.data[split])}" for split in ("train", "dev", "test"))
    )
    header("teacher", f" ({'given' if recipe.teacher else f'train {recipe.teacher_type}'})")
    obtain_teacher(state)
    header("distillation", f" ({recipe.method})")
    distill_student(state)
    if recipe.baseline:
        header("baseline")
        train_baseline(state)
    header("report")
    return report(state, push=push)
