"""User data: CSV, JSON or JSON-lines files with ``text``, ``label`` and ``domain`` columns.

Give one train file (dev and test are then cut from it per domain, seeded 80/10/10) or separate
train/dev/test files. An optional second text column (``text_pair``) makes sentence-pair inputs.
Missing columns raise an error that names the file and the columns found; rows with an empty text,
label or domain are skipped and counted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from pathlib import Path

from datasets import DatasetDict

from .common import DataFormatError, SkipReport, build_dataset_dict, seeded_split

logger = logging.getLogger(__name__)

#: the default domain column; a file without it is one domain, named :data:`ONE_DOMAIN`
DOMAIN_COLUMN = "domain"
ONE_DOMAIN = "all"
#: fewer training examples than this for a label gets a warning (a typo, or too few to learn)
RARE_LABEL = 5


def _check_utf8(path: Path) -> str:
    """The file's text; a file that is not UTF-8 gets the line and byte that are not, and the fix."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFormatError(
            f"{path}, line {line}: byte 0x{data[err.start]:02x} is not UTF-8 (the file looks like latin-1 or "
            f"cp1252); re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`"
        ) from None


def dataset_rows(dataset) -> list[tuple[int, dict]]:
    """``(row number, row)`` pairs of a ``datasets.Dataset``; ClassLabel columns as their names."""
    from datasets import ClassLabel

    names = {k: f.names for k, f in dataset.features.items() if isinstance(f, ClassLabel)}
    rows = []
    for number, row in enumerate(dataset, start=1):
        for key, labels in names.items():
            if row[key] is not None and 0 <= row[key] < len(labels):
                row[key] = labels[row[key]]
        rows.append((number, row))
    return rows


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """``(line number, row)`` pairs of a CSV/TSV/JSON/JSONL file or a ``datasets`` folder."""
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.is_dir():
        from datasets import Dataset, load_from_disk

        try:
            dataset = load_from_disk(str(path))
        except FileNotFoundError as err:
            raise DataFormatError(
                f"{path}: a folder, but not one saved by datasets' save_to_disk ({err})"
            ) from None
        if not isinstance(dataset, Dataset):
            raise DataFormatError(
                f"{path} holds the splits {list(dataset)}: give it as --dataset_name {path} (splits train, "
                "validation/dev, test), or one split's folder as --train_file"
            )
        return dataset_rows(dataset)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        text = _check_utf8(path)
        reader = csv.DictReader(
            io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",", strict=True
        )
        rows, start = [], 2
        try:
            _check_header(path, reader.fieldnames)
            for row in reader:
                if None in row:
                    raise DataFormatError(f"{path}, line {reader.line_num}: more fields than the header has")
                rows.append((start, row))
                start = reader.line_num + 1
        except csv.Error as err:
            hint = 'quote fields that hold the delimiter, and write a quote inside a quoted field as ""'
            if "end of data" in str(err):
                hint = (
                    f"a quote opened in the row that starts on line {start} is never closed, so the rest of the file "
                    'would be read as one field; close it, or write a quote inside a quoted field as ""'
                )
            raise DataFormatError(f"{path}, line {start}: malformed CSV ({err}): {hint}") from None
        if reader.fieldnames is None:
            raise DataFormatError(f"{path}: file is empty (a header row with text,label,domain is needed)")
        return rows
    if suffix in (".jsonl", ".json"):
        text = _check_utf8(path)
        stripped = text.lstrip()
        if suffix == ".json" and stripped.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataFormatError(f"{path}, line {err.lineno}: invalid JSON: {err.msg}") from err
            rows = [(i + 1, item) for i, item in enumerate(items)]
        else:
            rows = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataFormatError(f"{path}, line {number}: invalid JSON: {err.msg}") from err
        for number, row in rows:
            if not isinstance(row, dict):
                raise DataFormatError(
                    f"{path}, line/item {number}: expected a JSON object, got {type(row).__name__}"
                )
        return rows
    raise DataFormatError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv, .json or .jsonl)")


def _check_header(path: Path, names: list[str] | None) -> None:
    """A name given to two columns would let the later column hide the earlier one: refuse it."""
    seen: dict[str, list[int]] = {}
    for number, name in enumerate(names or [], start=1):
        seen.setdefault(name, []).append(number)
    repeated = {name: numbers for name, numbers in seen.items() if len(numbers) > 1}
    if repeated:
        which = "; ".join(f"{name!r} names columns {numbers}" for name, numbers in repeated.items())
        raise DataFormatError(
            f"{path}, line 1: the header repeats a column name ({which}); give each column its own name"
        )


def _load_file(path, columns: dict[str, str | None], report: SkipReport, raw=None) -> list[dict]:
    """The usable rows of one file (or of ``raw`` rows read from elsewhere, named ``path``)."""
    path = Path(path) if raw is None else path
    raw = _read_rows(path) if raw is None else raw
    one_domain = False
    if raw:
        present = set(raw[0][1])
        if columns.get("domain") == DOMAIN_COLUMN and DOMAIN_COLUMN not in present:
            one_domain, columns = True, {role: name for role, name in columns.items() if role != "domain"}
            logger.info("%s has no %r column: its rows are one domain, %r", path, DOMAIN_COLUMN, ONE_DOMAIN)
        missing = [
            f"{role} column {name!r}" for role, name in columns.items() if name and name not in present
        ]
        if missing:
            raise DataFormatError(
                f"{path}: missing {', '.join(missing)}; the file has columns {sorted(present)}. "
                "Rename them or pass --text_column/--text_pair_column/--label_column/--domain_column."
            )
    rows = []
    for number, row in raw:
        values = {role: row.get(name) for role, name in columns.items() if name}
        empty = [role for role, value in values.items() if value is None or str(value).strip() == ""]
        if empty:
            report.skip(str(path), f"empty {' and '.join(empty)}")
            continue
        item = {
            "text": str(values["text"]),
            "domain": ONE_DOMAIN if one_domain else str(values["domain"]).strip(),
        }
        if "label" in values:  # transfer text has none
            item["label"] = str(values["label"]).strip()
        if "text_pair" in values:
            item["text_pair"] = str(values["text_pair"])
        item["_line"] = number
        rows.append(item)
    if not rows:
        raise DataFormatError(f"{path}: no usable rows")
    return rows


def _columns(text: str, text_pair: str | None, label: str, domain: str) -> dict[str, str | None]:
    """Role → column name (``text_pair`` None for single texts)."""
    return {"text": text, "text_pair": text_pair, "label": label, "domain": domain}


def load_files(
    train_file: str | os.PathLike,
    dev_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    domain_column: str = "domain",
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> DatasetDict:
    """Build a multi-domain ``DatasetDict`` from user files (see module docstring)."""
    columns = _columns(text_column, text_pair_column, label_column, domain_column)
    return _build(train_file, dev_file, test_file, columns, split_fractions, seed, SkipReport("files"))


def load_hub_data(
    name: str,
    config: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    domain_column: str = "domain",
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> DatasetDict:
    """A multi-domain ``DatasetDict`` from a Hub data set (``datasets.load_dataset(name, config)``) or a
    local ``save_to_disk`` folder of splits, with a domain column. Its ``train`` split is required;
    ``validation`` (or ``dev``) and ``test`` are used when present, else cut from train per domain as
    :func:`load_files` does."""
    import datasets

    if os.path.isdir(name):
        loaded = datasets.load_from_disk(name)
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({"train": loaded})
    else:
        loaded = datasets.load_dataset(name, config)
    if "train" not in loaded:
        raise DataFormatError(f"data set {name!r} has splits {list(loaded)}, and no 'train' split")
    columns = _columns(text_column, text_pair_column, label_column, domain_column)
    raw = {"train": ("train", dataset_rows(loaded["train"]))}
    for split, candidates in (("dev", ("validation", "dev", "validation_matched")), ("test", ("test",))):
        found = next((c for c in candidates if c in loaded), None)
        if found is not None:
            raw[split] = (found, dataset_rows(loaded[found]))
    named = {split: f"{name}[{source}]" for split, (source, _) in raw.items()}
    report = SkipReport(name)
    return _build(
        named["train"], named.get("dev"), named.get("test"), columns, split_fractions, seed, report,
        raw={named[split]: rows for split, (_, rows) in raw.items()},
    )  # fmt: skip


def _build(train_file, dev_file, test_file, columns, split_fractions, seed, report, raw=None) -> DatasetDict:
    """Rows → splits → ``DatasetDict`` (``raw``: rows already read, by the name given as the file)."""
    raw = raw or {}
    train = _load_file(train_file, columns, report, raw.get(train_file))
    domains = list(dict.fromkeys(r["domain"] for r in train))
    labels = sorted(
        {r["label"] for r in train},
        key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v),
    )
    if len(labels) < 2:
        raise DataFormatError(f"{train_file}: column {columns['label']!r} has a single label value {labels}")
    warn_about_labels(train, train_file, columns["label"])
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    if dev_file is None and test_file is None:
        for index, domain in enumerate(domains):
            part = seeded_split([r for r in train if r["domain"] == domain], split_fractions, seed + index)
            for split in splits:
                splits[split] += part[split]
    else:
        splits["train"] = train
        for split, path in (("dev", dev_file), ("test", test_file)):
            if path is None:
                continue
            rows = _load_file(path, columns, report, raw.get(path))
            for row in rows:
                if row["domain"] not in domains:
                    if row["domain"] == ONE_DOMAIN:
                        raise DataFormatError(
                            f"{path}: no {columns['domain']!r} column, but {train_file} has the domains {domains}: add "
                            "the column, with the same domain names"
                        )
                    raise DataFormatError(
                        f"{path}, line {row['_line']}: domain {row['domain']!r} does not occur in {train_file} "
                        f"(known: {domains})"
                    )
                if row["label"] not in labels:
                    raise DataFormatError(
                        f"{path}, line {row['_line']}: label {row['label']!r} does not occur in {train_file} "
                        f"(known: {labels})"
                    )
            splits[split] = rows
        if dev_file is None or test_file is None:
            missing = "dev" if dev_file is None else "test"
            kept, carved = [], []
            for index, domain in enumerate(domains):
                part = seeded_split(
                    [r for r in train if r["domain"] == domain], (0.9, 0.1, 0.0), seed + index
                )
                kept += part["train"]
                carved += part["dev"]
            splits["train"], splits[missing] = kept, carved
    _check_every_domain_in_every_split(splits, domains, train_file, dev_file, test_file, split_fractions)
    for rows in splits.values():
        for row in rows:
            row.pop("_line", None)
    return build_dataset_dict(splits, labels, domains, report)


def warn_about_labels(train: list[dict], train_file, column: str) -> dict:
    """Warn (never drop) about label values that look like mistakes: values that differ only in case
    or surrounding spaces ('Positive'/'positive' become two classes) and values with fewer than
    :data:`RARE_LABEL` training examples. Returns ``{"case": [...], "rare": {...}}`` (empty if none)."""
    counts = Counter(r["label"] for r in train)
    by_folded: dict[str, list[str]] = {}
    for label in counts:
        by_folded.setdefault(label.strip().casefold(), []).append(label)
    case = [sorted(group) for group in by_folded.values() if len(group) > 1]
    rare = {label: n for label, n in sorted(counts.items()) if n < RARE_LABEL}
    for group in case:
        logger.warning(
            "%s: column %r has labels that differ only in case, each a class of its own: %s; if they are one "
            "class, write them the same way", train_file, column, ", ".join(f"{g!r} ({counts[g]})" for g in group),
        )  # fmt: skip
    if rare:
        logger.warning(
            "%s: column %r has labels with fewer than %d training examples: %s (a typo, or too few to learn)",
            train_file, column, RARE_LABEL, ", ".join(f"{k!r} ({v})" for k, v in rare.items()),
        )  # fmt: skip
    return {"case": case, "rare": rare} if case or rare else {}


def _check_every_domain_in_every_split(splits, domains, train_file, dev_file, test_file, fractions) -> None:
    """A domain without dev or test examples would be silently missing from model selection or the
    results: refuse it, with the counts and the fix."""
    counts = {split: {d: 0 for d in domains} for split in splits}
    for split, rows in splits.items():
        for row in rows:
            counts[split][row["domain"]] += 1
    files = {"dev": dev_file, "test": test_file}
    for domain in domains:
        empty = [split for split in splits if counts[split][domain] == 0]
        if not empty:
            continue
        have = ", ".join(f"{split} {counts[split][domain]}" for split in splits)
        given = [split for split in empty if files.get(split) is not None]
        if given:
            fix = f"add {domain!r} examples to {files[given[0]]}, or drop the domain"
        else:
            fix = (
                f"the split cuts {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%} of each domain of {train_file}; "
                f"add examples of {domain!r} (at least 10), or give --dev_file and --test_file"
            )
        raise DataFormatError(f"domain {domain!r} has no {' and no '.join(empty)} examples ({have}): {fix}")
