"""The recipes shipped in the package: each a YAML config in ``hrkd_trainer/configs`` plus its data,
default teacher and Hub data-source entry. ``hrkd-distill NAME`` and ``recipes/NAME.py`` run them;
``--train_file``/``--dataset_name`` replace a recipe's data with yours and keep its settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from datasets import DatasetDict

from ..assets import offline_minilm_path, offline_mpnet_path
from ..data import AMAZON_SOURCE, MNLI_SOURCE, VADER_SOURCE, load_amazon, load_mnli, load_vader
from ..data.common import DataSource
from ..recipe_configs import recipe_config
from .arguments import RecipeArguments, parse_recipe_args, require_inputs
from .own_data import load_own_data
from .runner import run_recipe


@dataclass(frozen=True)
class Recipe:
    """A shipped recipe: its config file, how it loads its data, and what it needs from the user."""

    name: str
    summary: str
    load: Callable[[RecipeArguments], DatasetDict]
    source: DataSource
    default_teacher_init: Callable[[], str] | None = None
    data_hint: str | None = None  # set: the user must give data and models (paper settings)
    local_data: bool = True

    @property
    def config(self) -> str:
        return recipe_config(self.name)


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "vader",
            "VADER's four sentiment domains, offline MiniLM-L6 teacher, 3-layer student (CPU, ~13 min)",
            lambda r: load_vader(archive=r.data_path),
            VADER_SOURCE,
            default_teacher_init=offline_minilm_path,
        ),
        Recipe(
            "vader-mpnet",
            "real compression on VADER: MPNet-base teacher (109.5 M, offline) → 4-layer MiniLM student (5.7× "
            "smaller), CPU, ~40 min",
            lambda r: load_vader(archive=r.data_path),
            VADER_SOURCE,
            default_teacher_init=offline_mpnet_path,
        ),
        Recipe(
            "amazon",
            "the paper's Amazon Reviews setting (4 domains, BERT-base → TinyBERT-4L); needs data and models",
            lambda r: load_amazon(r.data_path),
            AMAZON_SOURCE,
            data_hint="--data_path: Blitzer's 'sorted_data_acl' folder or 'domain_sentiment_data.tar.gz' "
            "(https://www.cs.jhu.edu/~mdredze/datasets/sentiment/)",
        ),
        Recipe(
            "mnli",
            "the paper's MNLI setting (5 genres as domains); needs data and models",
            lambda r: load_mnli(r.data_path),
            MNLI_SOURCE,
            data_hint="--data_path: the GLUE MNLI folder with train.tsv and dev_matched.tsv, or the Hub data set "
            "'nyu-mll/multi_nli'",
            local_data=False,
        ),
    )
}


def run_named_recipe(name: str, argv: Sequence[str] | None = None) -> dict:
    """Run the shipped recipe ``name`` with command-line ``argv`` (its YAML, then the flags)."""
    recipe_spec = RECIPES[name]
    recipe, config = parse_recipe_args(argv, default_config=recipe_spec.config)
    if recipe_spec.data_hint is not None:
        require_inputs(recipe, recipe_spec.data_hint, recipe_spec.local_data)
    if recipe.own_data:
        return run_recipe(
            recipe, config, lambda r: load_own_data(r, config.seed), recipe_spec.default_teacher_init, None
        )
    return run_recipe(recipe, config, recipe_spec.load, recipe_spec.default_teacher_init, recipe_spec.source)
