"""``python -m hrkd_trainer``: the ``hrkd-distill`` command (see :mod:`hrkd_trainer.cli`)."""

from .cli import main

main()
