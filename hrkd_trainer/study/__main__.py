"""``python -m hrkd_trainer.study``: see :mod:`hrkd_trainer.study.cli`."""

from .cli import console

if __name__ == "__main__":
    console()
