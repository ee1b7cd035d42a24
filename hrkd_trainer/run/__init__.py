"""The recipe runner: flags and YAML (:mod:`.arguments`), the run as named stages (:mod:`.stages`,
:mod:`.report`). The library never imports this package; recipes, the CLI and benchmarks do."""

from ..data.tokenized import tokenize_splits
from .arguments import RecipeArguments, build_parser, check_recipe, parse_recipe_args, require_inputs
from .runner import run_recipe
from .stages import RunState, prepare_splits

__all__ = [
    "RecipeArguments",
    "RunState",
    "build_parser",
    "check_recipe",
    "parse_recipe_args",
    "prepare_splits",
    "require_inputs",
    "run_recipe",
    "tokenize_splits",
]
