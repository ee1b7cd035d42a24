"""Tokenised splits, the form every trainer, stage and study reads: ``train`` as one dataset (every
domain, column ``domain_ids``), ``dev`` and ``test`` as ``{domain: dataset}`` so that each domain is
evaluated through its own head."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from datasets import Dataset, DatasetDict

from ..collate import tokenize_multi_domain
from .common import domain_names, label_names

#: Meta-KD's per-example prototype scores t_i (a column only its trainers read)
INSTANCE_WEIGHTS = "instance_weights"


def by_domain(dataset: Dataset, domains: Sequence[str]) -> dict[str, Dataset]:
    """``{domain: rows of that domain}`` of a tokenised split (column ``domain_ids``)."""
    ids = dataset["domain_ids"]
    out = {}
    for index, name in enumerate(domains):
        rows = [i for i, d in enumerate(ids) if d == index]
        if not rows:
            raise ValueError(f"no evaluation examples for domain {name!r}")
        out[name] = dataset.select(rows)
    return out


@dataclass
class TokenizedData:
    """Tokenised splits: ``train`` one dataset, ``dev``/``test`` ``{domain: dataset}``."""

    train: Dataset
    dev: dict[str, Dataset]
    test: dict[str, Dataset]
    domains: list[str]
    labels: list[str]

    def restrict(self, domain: str) -> TokenizedData:
        """Only ``domain``'s rows, re-indexed as domain 0 (for a one-domain model)."""
        if domain not in self.domains:
            raise ValueError(f"unknown domain {domain!r}; the data has {self.domains}")
        index = self.domains.index(domain)
        train = self.train.filter(lambda d: d == index, input_columns="domain_ids")
        if len(train) == 0:
            raise ValueError(f"domain {domain!r} has no training examples")

        def zero(split: Dataset) -> Dataset:
            return split.map(lambda _: {"domain_ids": 0}, input_columns="domain_ids")

        return TokenizedData(
            train=zero(train),
            dev={domain: zero(self.dev[domain])},
            test={domain: zero(self.test[domain])},
            domains=[domain],
            labels=self.labels,
        )

    def without_instance_weights(self) -> TokenizedData:
        """The data without Meta-KD's weight column (for training that does not weight examples)."""
        if INSTANCE_WEIGHTS not in self.train.column_names:
            return self
        return dataclasses.replace(self, train=self.train.remove_columns(INSTANCE_WEIGHTS))


def tokenize_splits(data: DatasetDict, tokenizer, max_length: int, teacher_tokenizer=None) -> TokenizedData:
    """Tokenise ``train``/``dev``/``test`` (with the teacher's ids too when its tokenizer differs)."""
    domains, labels = domain_names(data), label_names(data)
    tokenized = {
        split: tokenize_multi_domain(data[split], tokenizer, max_length, teacher_tokenizer)
        for split in ("train", "dev", "test")
    }
    return TokenizedData(
        train=tokenized["train"],
        dev=by_domain(tokenized["dev"], domains),
        test=by_domain(tokenized["test"], domains),
        domains=domains,
        labels=labels,
    )


def add_instance_weights(data: TokenizedData, scores) -> TokenizedData:
    """Attach Meta-KD's prototype scores t_i (row order of the train split) as ``instance_weights``."""
    if len(scores) != len(data.train):
        raise ValueError(f"{len(scores)} prototype scores for {len(data.train)} training rows")
    train = data.without_instance_weights().train
    return dataclasses.replace(data, train=train.add_column(INSTANCE_WEIGHTS, [float(s) for s in scores]))
