"""MultiNLI with its genres as domains, split as the HRKD release does (docs/design-choices.md, "Data and batches").

Two sources:

* the GLUE ``MNLI`` folder (``train.tsv``, ``dev_matched.tsv``; tab-separated, no quoting, header row;
  columns ``genre``, ``sentence1``, ``sentence2``, ``gold_label``);
* the Hub data set ``multi_nli`` (columns ``premise``, ``hypothesis``, ``label``, ``genre``), whose
  label order (entailment 0, neutral 1, contradiction 2) is remapped to the release's.

Per genre, in file order: train = the first ``int(0.9·n)`` rows, dev = the rest, test = the genre's
rows of ``dev_matched``. Labels: contradiction 0, entailment 1, neutral 2 (``glue_labels['mnli']``).
Rows whose gold label is not one of the three (``-`` in the dev files) are skipped and counted.
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

from datasets import DatasetDict

from .common import DataFormatError, DataSource, SkipReport, build_dataset_dict

MNLI_DOMAINS = ("fiction", "government", "slate", "telephone", "travel")
LABELS = ("contradiction", "entailment", "neutral")
SOURCE = DataSource(
    name="MultiNLI (Williams et al., NAACL 2018), genres as domains",
    slug="multi_nli",
    url="https://cims.nyu.edu/~sbowman/multinli/",
    hub_id="nyu-mll/multi_nli",
    language="en",
)
HUB_LABELS = ("entailment", "neutral", "contradiction")  # label ids of the Hub's multi_nli
REQUIRED_COLUMNS = ("genre", "sentence1", "sentence2", "gold_label")


def read_glue_tsv(path: Path, domains, report: SkipReport) -> dict[str, list[dict]]:
    """Rows of one GLUE MNLI TSV file grouped by genre, in file order."""
    if not path.exists():
        raise FileNotFoundError(f"MNLI file not found: {path} (expected the GLUE MNLI folder)")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    by_genre: dict[str, list[dict]] = {d: [] for d in domains}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataFormatError(f"{path}: file is empty")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataFormatError(f"{path}, line 1: header lacks column(s) {missing}; found {header}")
        index = {c: header.index(c) for c in REQUIRED_COLUMNS}
        gold = len(header) - 1 if header[-1] == "gold_label" else index["gold_label"]
        for row in reader:
            number = reader.line_num
            if len(row) < len(header) - 1 or len(row) <= max(index.values()):
                raise DataFormatError(
                    f"{path}, line {number}: {len(row)} fields, the header has {len(header)}"
                )
            genre = row[index["genre"]]
            label = row[gold] if gold < len(row) else row[-1]
            if genre not in by_genre:
                report.skip(str(path), f"genre {genre!r} not among the domains")
                continue
            if label not in LABELS:
                report.skip(str(path), f"gold label {label!r} is not one of {LABELS}")
                continue
            by_genre[genre].append(
                {
                    "text": row[index["sentence1"]],
                    "text_pair": row[index["sentence2"]],
                    "label": label,
                    "domain": genre,
                }
            )
    return by_genre


def split_train_dev(rows: list[dict], train_ratio: float = 0.9) -> tuple[list[dict], list[dict]]:
    cut = int(train_ratio * len(rows))
    return rows[:cut], rows[cut:]


def _assemble(train_by_genre, test_by_genre, domains, report, source) -> DatasetDict:
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for genre in domains:
        if not train_by_genre[genre]:
            raise DataFormatError(f"{source}: genre {genre!r} has no training rows")
        train, dev = split_train_dev(train_by_genre[genre])
        splits["train"] += train
        splits["dev"] += dev
        splits["test"] += test_by_genre[genre]
    return build_dataset_dict(splits, LABELS, list(domains), report)


def load_mnli_glue(glue_dir: str | os.PathLike, domains=MNLI_DOMAINS) -> DatasetDict:
    """From the GLUE ``MNLI`` folder (``train.tsv`` + ``dev_matched.tsv``)."""
    glue_dir = Path(glue_dir)
    if not glue_dir.is_dir():
        raise FileNotFoundError(
            f"MNLI folder not found: {glue_dir} (it should hold train.tsv and dev_matched.tsv)"
        )
    report = SkipReport("mnli")
    train = read_glue_tsv(glue_dir / "train.tsv", domains, report)
    test = read_glue_tsv(glue_dir / "dev_matched.tsv", domains, report)
    return _assemble(train, test, domains, report, glue_dir)


def load_mnli_hub(name: str = "nyu-mll/multi_nli", domains=MNLI_DOMAINS, **load_kwargs) -> DatasetDict:
    """From the Hub's ``multi_nli`` (needs Hub access); labels remapped to the release's order."""
    from datasets import load_dataset

    raw = load_dataset(name, **load_kwargs)
    report = SkipReport("mnli")

    def group(split) -> dict[str, list[dict]]:
        by_genre: dict[str, list[dict]] = {d: [] for d in domains}
        for row in raw[split]:
            if row["genre"] not in by_genre:
                report.skip(f"{name}:{split}", f"genre {row['genre']!r} not among the domains")
                continue
            if not 0 <= row["label"] < 3:
                report.skip(f"{name}:{split}", "no gold label")
                continue
            by_genre[row["genre"]].append(
                {
                    "text": row["premise"],
                    "text_pair": row["hypothesis"],
                    "label": HUB_LABELS[row["label"]],
                    "domain": row["genre"],
                }
            )
        return by_genre

    return _assemble(group("train"), group("validation_matched"), domains, report, name)


def load_mnli(path_or_name: str, domains=MNLI_DOMAINS) -> DatasetDict:
    """A local GLUE folder if ``path_or_name`` exists, else a Hub data set name."""
    if Path(path_or_name).exists():
        return load_mnli_glue(path_or_name, domains)
    return load_mnli_hub(path_or_name, domains)
