#!/usr/bin/env python
"""Paper setting on Amazon Reviews (Blitzer et al., 2007): 4 domains, HRKD §3.3 hyper-parameters.

BERT-base teacher (fine-tuned multi-domain, lr 5e-5, 3 epochs) → 4-layer/312 TinyBERT student,
batch 32 per domain, length 128, student lr 5e-4, 10 epochs, t = 1, γ = 1 (hrkd_trainer/configs/amazon.yaml).
Data and models are not on PyPI: give their paths (or Hub ids if you have the Hub)::

    accelerate launch recipes/amazon.py --data_path /data/sorted_data_acl \
        --teacher_init bert-base-uncased --student huawei-noah/TinyBERT_General_4L_312D
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hrkd_trainer.run import RECIPES, run_named_recipe

DEFAULT_CONFIG = RECIPES["amazon"].config


def main(argv=None):
    """The same run as ``hrkd-distill amazon`` (see ``hrkd_trainer/run/recipes.py``)."""
    return run_named_recipe("amazon", argv)


if __name__ == "__main__":
    main()
