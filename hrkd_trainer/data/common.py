"""Shared pieces of the data builders: the common schema, seeded splits, skip accounting."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DataSource:
    """Where a recipe's data comes from, for results.json and the model card.

    ``slug`` names the data set in the card's ``model-index``; ``hub_id`` is its Hugging Face Hub
    data set id when one exists (it goes into the card's ``datasets`` metadata).
    """

    name: str
    slug: str
    url: str
    hub_id: str | None = None
    language: str | None = None


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the file and line."""


class SkipReport:
    """Counts rows a builder leaves out, by (file, reason), and logs one line per pair.

    Nothing is dropped silently: every builder reports through one of these, and the totals are
    attached to the returned ``DatasetDict`` as ``dataset_dict.skipped`` (``{(file, reason): n}``).
    """

    def __init__(self, name: str):
        self.name = name
        self.counts: Counter = Counter()

    def skip(self, source: str, reason: str, n: int = 1) -> None:
        self.counts[(source, reason)] += n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def log(self) -> None:
        for (source, reason), n in sorted(self.counts.items()):
            logger.warning("%s: skipped %d row(s) of %s: %s", self.name, n, source, reason)


def features_for(label_names: Sequence[str], domains: Sequence[str], pair: bool) -> Features:
    columns = {"text": Value("string")}
    if pair:
        columns["text_pair"] = Value("string")
    columns["label"] = ClassLabel(names=list(label_names))
    columns["domain"] = ClassLabel(names=list(domains))
    return Features(columns)


def build_dataset_dict(
    splits: dict[str, list[dict]],
    label_names: Sequence[str],
    domains: Sequence[str],
    report: SkipReport | None = None,
) -> DatasetDict:
    """Rows are dicts with ``text`` (``text_pair``), ``label`` (name or id), ``domain`` (name)."""
    pair = any("text_pair" in row for rows in splits.values() for row in rows[:1])
    features = features_for(label_names, domains, pair)
    label_index = {name: i for i, name in enumerate(label_names)}
    domain_index = {name: i for i, name in enumerate(domains)}
    out = {}
    for split in SPLITS:
        rows = splits.get(split, [])
        columns: dict[str, list] = {"text": [], "label": [], "domain": []}
        if pair:
            columns["text_pair"] = []
        for row in rows:
            columns["text"].append(row["text"])
            if pair:
                columns["text_pair"].append(row.get("text_pair") or "")
            label = row["label"]
            columns["label"].append(label_index[label] if isinstance(label, str) else int(label))
            columns["domain"].append(domain_index[row["domain"]])
        out[split] = Dataset.from_dict(columns, features=features)
    result = DatasetDict(out)
    if report is not None:
        report.log()
        result.skipped = dict(report.counts)
    else:
        result.skipped = {}
    return result


def seeded_split(
    rows: Sequence[dict], fractions: tuple[float, float, float], seed: int
) -> dict[str, list[dict]]:
    """Shuffle one domain's rows with ``seed`` and cut train/dev/test by ``fractions``."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    order = list(rows)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_train = round(fractions[0] * n)
    n_dev = round(fractions[1] * n)
    return {
        "train": order[:n_train],
        "dev": order[n_train : n_train + n_dev],
        "test": order[n_train + n_dev :],
    }


def domain_names(dataset: Dataset | DatasetDict) -> list[str]:
    if isinstance(dataset, DatasetDict):
        dataset = next(iter(dataset.values()))
    return list(dataset.features["domain"].names)


def label_names(dataset: Dataset | DatasetDict) -> list[str]:
    if isinstance(dataset, DatasetDict):
        dataset = next(iter(dataset.values()))
    return list(dataset.features["label"].names)


def select_domains(dataset_dict: DatasetDict, domains: Iterable[str] | None) -> DatasetDict:
    """Keep only ``domains`` (in the given order, which becomes the domain-id order)."""
    if not domains:
        return dataset_dict
    domains = list(domains)
    known = domain_names(dataset_dict)
    unknown = [d for d in domains if d not in known]
    if unknown:
        raise ValueError(f"unknown domain(s) {unknown}; this data set has {known}")
    if domains == known:
        return dataset_dict
    new_ids = {known.index(d): i for i, d in enumerate(domains)}
    features = dataset_dict["train"].features.copy()
    features["domain"] = ClassLabel(names=domains)
    out = {}
    for split, ds in dataset_dict.items():
        ds = ds.filter(lambda d: d in new_ids, input_columns="domain")
        ds = ds.map(lambda d: {"domain": new_ids[d]}, input_columns="domain", features=features)
        out[split] = ds
    result = DatasetDict(out)
    result.skipped = getattr(dataset_dict, "skipped", {})
    return result


def per_domain_head(dataset: Dataset, n: int | None) -> Dataset:
    """Keep at most the first ``n`` rows of every domain (row order otherwise unchanged)."""
    if n is None:
        return dataset
    if n < 1:
        raise ValueError(f"the per-domain limit must be >= 1, got {n}")
    seen: Counter = Counter()
    keep = []
    for i, d in enumerate(dataset["domain"]):
        if seen[d] < n:
            keep.append(i)
            seen[d] += 1
    return dataset.select(keep)


def few_shot(dataset_dict: DatasetDict, fraction: float) -> DatasetDict:
    """Paper §3.5: keep the first ``int(fraction·n_d)`` train rows of every domain; dev/test unchanged.

    The prefix is taken in the builder's row order (the released code keeps a prefix too).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"few-shot fraction must be in (0, 1], got {fraction}")
    train = dataset_dict["train"]
    sizes = Counter(train["domain"])
    limits = {d: max(1, int(fraction * n)) for d, n in sizes.items()}
    seen: Counter = Counter()
    keep = []
    for i, d in enumerate(train["domain"]):
        if seen[d] < limits[d]:
            keep.append(i)
            seen[d] += 1
    result = DatasetDict({**dataset_dict, "train": train.select(keep)})
    result.skipped = getattr(dataset_dict, "skipped", {})
    return result
