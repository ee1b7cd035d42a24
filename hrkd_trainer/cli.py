"""``hrkd-distill`` (also ``python -m hrkd_trainer``): run a shipped recipe, or a recipe's settings
on your own data.

    hrkd-distill                                  # the VADER quick start (offline, CPU)
    hrkd-distill vader --num_train_epochs 2
    hrkd-distill amazon --data_path sorted_data_acl --teacher_init bert-base-uncased --student_layers 4
    hrkd-distill --train_file reviews.csv --domain_column site --output_dir runs/mine
    hrkd-distill my.yaml --learning_rate 1e-4     # any YAML of flags
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .run import RECIPES, run_named_recipe
from .vocabulary import did_you_mean

DEFAULT_RECIPE = "vader"
OWN_DATA_OUTPUT = "runs/own"


def usage() -> str:
    lines = [
        "usage: hrkd-distill [RECIPE | FILE.yaml] [flags ...]   (flags: hrkd-distill RECIPE --help)",
        "",
        "recipes:",
    ]
    lines += [f"  {name:12s} {spec.summary}" for name, spec in RECIPES.items()]
    lines += [
        "",
        "your own data: --train_file FILE [--dev_file ...] or --dataset_name NAME, with the column flags",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["-h"], ["--help"]):
        print(usage())
        return None
    return run_named_recipe(*resolve(argv))


def console() -> int:
    """The ``hrkd-distill`` entry point: :func:`main`, with exit status 0 on success (a console script
    passes its function's return value to ``sys.exit``, which would print a results dict and fail)."""
    main()
    return 0


def resolve(argv: list[str]) -> tuple[str, list[str]]:
    """``(recipe name, its flags)`` from the command line: a recipe name or YAML file may come first;
    your own data writes to ``runs/own`` unless ``--output_dir`` says otherwise."""
    argv = list(argv)
    name = DEFAULT_RECIPE
    if argv and not argv[0].startswith("-"):
        first = argv.pop(0)
        if first.endswith((".yaml", ".yml")):
            argv = ["--config", first, *argv]
        elif first in RECIPES:
            name = first
        else:
            raise SystemExit(
                f"hrkd-distill: unknown recipe {first!r}{did_you_mean(first, list(RECIPES))}; choose one of "
                f"{', '.join(RECIPES)}, or give your data with --train_file/--dataset_name"
            )
    own = any(a.split("=")[0] in ("--train_file", "--dataset_name") for a in argv)
    if own and not any(a.split("=")[0] == "--output_dir" for a in argv):
        argv += ["--output_dir", OWN_DATA_OUTPUT]  # not the recipe's folder: this is other data
    return name, argv


if __name__ == "__main__":
    main()
