#!/usr/bin/env python
"""Paper setting on MNLI with its five genres as domains (HRKD §3.3).

BERT-base teacher (lr 5e-5, 3 epochs) → 4-layer/312 TinyBERT student, batch 32 per domain, length 128,
student lr 1e-3, 10 epochs (recipes/configs/mnli.yaml). ``--data_path`` is the GLUE ``MNLI`` folder
(``train.tsv``, ``dev_matched.tsv``) or, with Hub access, the data set id ``nyu-mll/multi_nli``::

    accelerate launch recipes/mnli.py --data_path glue_data/MNLI \
        --teacher_init bert-base-uncased --student huawei-noah/TinyBERT_General_4L_312D
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hrkd_trainer.data import MNLI_SOURCE, load_mnli
from hrkd_trainer.run import parse_recipe_args, require_inputs, run_recipe

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "mnli.yaml")


def load_data(recipe):
    return load_mnli(recipe.data_path)


def main(argv=None):
    recipe, config = parse_recipe_args(argv, default_config=DEFAULT_CONFIG)
    require_inputs(
        recipe,
        data_hint="--data_path: the GLUE MNLI folder with train.tsv and dev_matched.tsv, or the Hub data set "
        "'nyu-mll/multi_nli'",
        local_data=False,
    )
    return run_recipe(recipe, config, load_data, data_source=MNLI_SOURCE)


if __name__ == "__main__":
    main()
