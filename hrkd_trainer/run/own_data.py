"""Flags for your own data, instead of a recipe's: files (``--train_file`` ...) or a data set
(``--dataset_name``, from the Hub or a local ``save_to_disk`` folder), with the column names."""

from __future__ import annotations

from dataclasses import dataclass

from datasets import DatasetDict

from ..config import option
from ..data import load_files, load_hub_data

GROUP_DATA = "your own data (instead of the recipe's)"


@dataclass
class DataArguments:
    """Where your data is and which columns hold what; a recipe's data is used when none is given."""

    help_group = GROUP_DATA

    train_file: str | None = option(
        None,
        help="Your training data: a CSV, TSV, JSON or JSON-lines file, or a datasets save_to_disk folder, with "
        "text, label and domain columns. Without --dev_file/--test_file, dev and test are cut from it per domain "
        "(80/10/10, seeded).",
    )
    dev_file: str | None = option(None, help="Your dev data (model selection), same format as --train_file.")
    test_file: str | None = option(None, help="Your test data (the reported accuracy), same format.")
    dataset_name: str | None = option(
        None,
        help="A data set with a domain column instead of files: a Hub id (datasets.load_dataset) or a local "
        "save_to_disk folder of splits (train; validation or dev; test).",
    )
    dataset_config: str | None = option(
        None, help="The Hub data set's configuration name, if it has several."
    )
    text_column: str = option("text", help="Column with the text.")
    text_pair_column: str | None = option(
        None, help="Column with the second text of sentence-pair tasks (e.g. NLI hypotheses)."
    )
    label_column: str = option("label", help="Column with the label (strings or integers).")
    domain_column: str = option("domain", help="Column with the domain name of each example.")

    @property
    def own_data(self) -> bool:
        return bool(self.train_file or self.dataset_name)

    def check_data_flags(self) -> None:
        if self.train_file and self.dataset_name:
            raise SystemExit("give either --train_file (files) or --dataset_name (a data set), not both")
        if (self.dev_file or self.test_file) and not self.train_file:
            raise SystemExit("--dev_file/--test_file need --train_file too")
        if self.dataset_config and not self.dataset_name:
            raise SystemExit("--dataset_config needs --dataset_name")


def load_own_data(args: DataArguments, seed: int) -> DatasetDict:
    """The multi-domain ``DatasetDict`` of ``--train_file``... or ``--dataset_name``."""
    columns = {
        "text_column": args.text_column,
        "text_pair_column": args.text_pair_column,
        "label_column": args.label_column,
        "domain_column": args.domain_column,
    }
    if args.dataset_name:
        return load_hub_data(args.dataset_name, args.dataset_config, seed=seed, **columns)
    return load_files(args.train_file, args.dev_file, args.test_file, seed=seed, **columns)
