"""The shipped recipes' YAML configs (in the wheel, ``hrkd_trainer/configs``): the one list of recipe
names. ``hrkd-distill NAME`` runs ``configs/NAME.yaml`` (``-`` spelled ``_`` in the file name) and
``recipes/NAME.py`` runs the same; the runner adds each recipe's data loader."""

from __future__ import annotations

import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def recipe_config(name: str) -> str:
    """The YAML config of the shipped recipe ``name`` (e.g. ``vader-mpnet`` → ``configs/vader_mpnet.yaml``)."""
    return os.path.join(CONFIG_DIR, f"{name.replace('-', '_')}.yaml")


def recipe_names() -> list[str]:
    """Every shipped recipe, by the name ``hrkd-distill`` takes."""
    return sorted(f[: -len(".yaml")].replace("_", "-") for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml"))


def recipe_scripts() -> set[str]:
    """The scripts in ``recipes/`` that run them (what ``results.json`` records as the command)."""
    return {f"{name.replace('-', '_')}.py" for name in recipe_names()}
