"""Transfer text: examples without labels that the teacher labels for the student (the "transfer set"
of Hinton et al., 2015). A transfer row has ``text`` (and ``text_pair``) and ``domain``, one of the
data's domains; its label is :data:`NO_LABEL`, so no gold-label loss reads it and the teacher's
outputs are its only target. Sources: a file (``--transfer_file``), a data set (``--transfer_dataset_name``),
or the rows of the train split that the caps left out (``--transfer_rest_of_train``).

Rows with an empty text or domain are skipped and counted; a domain the data does not have, a missing
column or a source without usable rows is an error that names the file and the fix.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Value

from .common import DataFormatError, SkipReport
from .files import ONE_DOMAIN, _load_file, dataset_rows

#: the label of a row without one (PyTorch's ignore index: no cross-entropy reads it)
NO_LABEL = -100


def transfer_features(domains: Sequence[str], pair: bool) -> Features:
    features = {"text": Value("string")}
    if pair:
        features["text_pair"] = Value("string")
    features.update(label=Value("int64"), domain=ClassLabel(names=list(domains)))
    return Features(features)


def transfer_rows_dataset(rows: list[dict], domains: Sequence[str], source: str) -> Dataset:
    """A transfer ``Dataset`` from ``{"text", ("text_pair"), "domain"}`` rows, domains by name."""
    index = {name: i for i, name in enumerate(domains)}
    if ONE_DOMAIN not in index and rows and all(row["domain"] == ONE_DOMAIN for row in rows):
        if len(domains) > 1:  # read without a domain column
            raise DataFormatError(
                f"{source}: no domain column, but the training data has the domains {list(domains)}: add a "
                "domain column (--domain_column) naming each row's domain"
            )
        rows = [{**row, "domain": domains[0]} for row in rows]  # one domain: the transfer text is its
    unknown = Counter(row["domain"] for row in rows if row["domain"] not in index)
    if unknown:
        first = next(row for row in rows if row["domain"] not in index)
        where = f", line {first['_line']}" if "_line" in first else ""
        raise DataFormatError(
            f"{source}{where}: domain(s) {dict(unknown)} are not domains of the training data {list(domains)}: "
            "rename them, or leave those rows out (the student has no head for them)"
        )
    pair = any("text_pair" in row for row in rows)
    columns: dict[str, list] = {"text": [row["text"] for row in rows]}
    if pair:
        columns["text_pair"] = [row.get("text_pair") or "" for row in rows]
    columns["label"] = [NO_LABEL] * len(rows)
    columns["domain"] = [index[row["domain"]] for row in rows]
    return Dataset.from_dict(columns, features=transfer_features(domains, pair))


def load_transfer_file(
    path: str | os.PathLike,
    domains: Sequence[str],
    text_column="text",
    text_pair_column=None,
    domain_column="domain",
) -> Dataset:
    """Transfer text from a CSV/TSV/JSON/JSONL file or a ``save_to_disk`` folder (a label column, if
    any, is not read)."""
    report = SkipReport("transfer")
    columns = {"text": text_column, "text_pair": text_pair_column, "domain": domain_column}
    rows = _load_file(Path(path), columns, report)
    report.log()
    return transfer_rows_dataset(rows, domains, str(path))


def load_transfer_dataset(
    name: str,
    domains: Sequence[str],
    config=None,
    text_column="text",
    text_pair_column=None,
    domain_column="domain",
) -> Dataset:
    """Transfer text from a Hub data set's ``train`` split (or a local ``save_to_disk`` folder)."""
    import datasets

    if os.path.isdir(name):
        loaded = datasets.load_from_disk(name)
    else:
        loaded = datasets.load_dataset(name, config)
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataFormatError(
                f"transfer data set {name!r} has splits {list(loaded)} and no 'train' split"
            )
        loaded = loaded["train"]
    report = SkipReport("transfer")
    columns = {"text": text_column, "text_pair": text_pair_column, "domain": domain_column}
    rows = _load_file(name, columns, report, raw=dataset_rows(loaded))
    report.log()
    return transfer_rows_dataset(rows, domains, name)


def rest_of_train(full: Dataset, kept: Dataset) -> Dataset:
    """The rows of ``full`` (a train split) beyond the per-domain prefix that ``kept`` holds (the caps
    and the few-shot fraction keep prefixes), as transfer text: their labels are not read."""
    kept_counts, seen, rows = Counter(kept["domain"]), Counter(), []
    for i, domain in enumerate(full["domain"]):
        seen[domain] += 1
        if seen[domain] > kept_counts[domain]:
            rows.append(i)
    rest = full.select(rows)
    features = transfer_features(full.features["domain"].names, "text_pair" in full.column_names)
    columns = [c for c in ("text", "text_pair", "domain") if c in rest.column_names]
    rest = rest.select_columns(columns).add_column("label", [NO_LABEL] * len(rest))
    return rest.cast(features)


def require_rows(dataset: Dataset, source: str) -> Dataset:
    if len(dataset) == 0:
        raise DataFormatError(f"{source}: no transfer rows (an empty file, or every row skipped)")
    return dataset
