#!/usr/bin/env python
"""Paper setting on MNLI with its five genres as domains (HRKD §3.3).

BERT-base teacher (lr 5e-5, 3 epochs) → 4-layer/312 TinyBERT student, batch 32 per domain, length 128,
student lr 1e-3, 10 epochs (hrkd_trainer/configs/mnli.yaml). ``--data_path`` is the GLUE ``MNLI`` folder
(``train.tsv``, ``dev_matched.tsv``) or, with Hub access, the data set id ``nyu-mll/multi_nli``::

    accelerate launch recipes/mnli.py --data_path glue_data/MNLI \
        --teacher_init bert-base-uncased --student huawei-noah/TinyBERT_General_4L_312D
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hrkd_trainer.run import RECIPES, run_named_recipe

DEFAULT_CONFIG = RECIPES["mnli"].config


def main(argv=None):
    """The same run as ``hrkd-distill mnli`` (see ``hrkd_trainer/run/recipes.py``)."""
    return run_named_recipe("mnli", argv)


if __name__ == "__main__":
    main()
