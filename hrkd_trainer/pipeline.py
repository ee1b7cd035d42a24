"""Release 0.1's recipe module, kept as a thin re-export so that code importing from it keeps working.

New code imports from where each name lives: :mod:`hrkd_trainer.run` (flags, stages),
:mod:`hrkd_trainer.evaluation`, :mod:`hrkd_trainer.results`, :mod:`hrkd_trainer.assets`.
"""

from .assets import offline_minilm_path
from .data.tokenized import TokenizedData, by_domain, tokenize_splits
from .evaluation import (
    accuracy_per_domain,
    evaluate_per_domain,
    inference_seconds,
    padded_batches,
    predict_per_domain,
)
from .per_domain import PER_DOMAIN_METHODS
from .results import (
    distillation_settings,
    format_table,
    machine_description,
    write_results,
    write_test_predictions,
)
from .run import (
    RecipeArguments,
    check_recipe,
    expert_root,
    parse_recipe_args,
    prepare_splits,
    require_inputs,
    run_recipe,
)
from .teacher_training import TEACHER_TYPES
from .vocabulary import Method

METHODS = tuple(Method.values())
#: relational mode used by ``--method hrkd`` unless --relational_mode says otherwise
DEFAULT_HRKD_MODE = str(Method.HRKD.default_relational_mode)

__all__ = [
    "DEFAULT_HRKD_MODE",
    "METHODS",
    "PER_DOMAIN_METHODS",
    "TEACHER_TYPES",
    "RecipeArguments",
    "TokenizedData",
    "accuracy_per_domain",
    "by_domain",
    "check_recipe",
    "distillation_settings",
    "evaluate_per_domain",
    "expert_root",
    "format_table",
    "inference_seconds",
    "machine_description",
    "offline_minilm_path",
    "padded_batches",
    "parse_recipe_args",
    "predict_per_domain",
    "prepare_splits",
    "require_inputs",
    "run_recipe",
    "tokenize_splits",
    "write_results",
    "write_test_predictions",
]
