#!/usr/bin/env python
"""Paper setting on Amazon Reviews (Blitzer et al., 2007): 4 domains, HRKD §3.3 hyper-parameters.

BERT-base teacher (fine-tuned multi-domain, lr 5e-5, 3 epochs) → 4-layer/312 TinyBERT student,
batch 32 per domain, length 128, student lr 5e-4, 10 epochs, t = 1, γ = 1 (recipes/configs/amazon.yaml).
Data and models are not on PyPI: give their paths (or Hub ids if you have the Hub)::

    accelerate launch recipes/amazon.py --data_path /data/sorted_data_acl \
        --teacher_init bert-base-uncased --student huawei-noah/TinyBERT_General_4L_312D
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hrkd_trainer.data import AMAZON_SOURCE, load_amazon
from hrkd_trainer.run import parse_recipe_args, require_inputs, run_recipe

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "amazon.yaml")


def load_data(recipe):
    return load_amazon(recipe.data_path)


def main(argv=None):
    recipe, config = parse_recipe_args(argv, default_config=DEFAULT_CONFIG)
    require_inputs(
        recipe,
        data_hint="--data_path: Blitzer's 'sorted_data_acl' folder or 'domain_sentiment_data.tar.gz' "
        "(https://www.cs.jhu.edu/~mdredze/datasets/sentiment/)",
        local_data=True,
    )
    return run_recipe(recipe, config, load_data, data_source=AMAZON_SOURCE)


if __name__ == "__main__":
    main()
