"""The recipe runner: flags and YAML (:mod:`.arguments`), the run as named stages (:mod:`.stages`,
:mod:`.report`), the shipped recipes (:mod:`.recipes`). The library never imports this package; the
CLI, the studies (:mod:`hrkd_trainer.study`), recipes and benchmarks do, through the names below only."""

from ..data.tokenized import tokenize_splits
from .arguments import RecipeArguments, build_parser, check_recipe, parse_recipe_args, require_inputs
from .own_data import load_own_data
from .recipes import RECIPES, Recipe, run_named_recipe
from .resume import StageRecord
from .runner import configure_logging, run_recipe
from .stages import (
    RunState,
    add_prototype_scores,
    distill_student,
    expert_root,
    needs_prototype_scores,
    obtain_teacher,
    prepare_data,
    prepare_splits,
    train_baseline,
)
from .transfer import TRANSFER_FLAGS, add_transfer_set

__all__ = [
    "RECIPES",
    "TRANSFER_FLAGS",
    "Recipe",
    "RecipeArguments",
    "RunState",
    "StageRecord",
    "add_prototype_scores",
    "add_transfer_set",
    "build_parser",
    "check_recipe",
    "configure_logging",
    "distill_student",
    "expert_root",
    "load_own_data",
    "needs_prototype_scores",
    "obtain_teacher",
    "parse_recipe_args",
    "prepare_data",
    "prepare_splits",
    "require_inputs",
    "run_named_recipe",
    "run_recipe",
    "tokenize_splits",
    "train_baseline",
]
