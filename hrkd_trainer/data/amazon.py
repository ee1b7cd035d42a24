"""Blitzer et al. (2007) multi-domain Amazon sentiment data, split as the HRKD release does.

Input: the ``sorted_data_acl`` folder (or the ``domain_sentiment_data.tar.gz`` tarball that holds it)
with ``<domain>/{positive,negative}.review`` for books, dvd, electronics and kitchen
(``kitchen_&_housewares`` on disk). ``unlabeled.review`` is not used.

Parsing (docs/design-choices.md, "Data and batches"): after a line ``<review_text>``, every non-empty stripped line up to
``</review_text>`` is joined with single spaces; title, rating etc. are ignored, HTML entities kept.
Labels are fixed: ``negative`` = 0, ``positive`` = 1 (the release derives them from a Python set,
so its ids depend on ``PYTHONHASHSEED``; we do not reproduce that bug).

Split: per domain, the 2,000 reviews (positives first, then negatives) are shuffled with
``random.Random(seed)`` and cut into the paper's fixed sizes (Table 1: books 1,631/170/199, dvd
1,621/194/185, electronics 1,615/172/213, kitchen 1,613/184/203). A domain with another number of
reviews is cut with the same proportions (81.5 % / 9 % / 9.5 %). The released code draws its own
random split of these sizes, so the exact examples differ from the paper's; ours is reproducible.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path

from datasets import DatasetDict

from .common import DataFormatError, DataSource, SkipReport, build_dataset_dict

AMAZON_DOMAINS = ("books", "dvd", "electronics", "kitchen")
DIRECTORY_NAMES = {"kitchen": ("kitchen", "kitchen_&_housewares")}
LABELS = ("negative", "positive")
SOURCE = DataSource(
    name="Multi-Domain Sentiment Dataset (Blitzer et al., ACL 2007)",
    slug="amazon-multi-domain-sentiment",
    url="https://www.cs.jhu.edu/~mdredze/datasets/sentiment/",
    language="en",
)
#: per-domain (train, dev, test) sizes of the paper's Table 1 (from Meta-KD's split procedure)
PAPER_SPLIT_SIZES = {
    "books": (1631, 170, 199),
    "dvd": (1621, 194, 185),
    "electronics": (1615, 172, 213),
    "kitchen": (1613, 184, 203),
}


def parse_review_file(text: str, source: str, report: SkipReport) -> list[str]:
    """Review texts of one ``*.review`` file; an unclosed ``<review_text>`` raises with its line."""
    reviews = []
    current: list[str] | None = None
    opened_at = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line == "<review_text>":
            if current is not None:
                raise DataFormatError(
                    f"{source}, line {number}: <review_text> opened at line {opened_at} is not closed"
                )
            current, opened_at = [], number
        elif line == "</review_text>":
            if current is None:
                raise DataFormatError(f"{source}, line {number}: </review_text> without <review_text>")
            review = " ".join(current).strip()
            if review:
                reviews.append(review)
            else:
                report.skip(source, "empty <review_text>")
            current = None
        elif current is not None and line:
            current.append(line)
    if current is not None:
        raise DataFormatError(f"{source}, line {opened_at}: <review_text> is never closed (file ends)")
    return reviews


class _Source:
    """Reads ``<domain>/<file>`` from a folder or from a tarball holding ``sorted_data_acl``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"Amazon reviews data not found at {self.path}: give the 'sorted_data_acl' folder or the "
                "'domain_sentiment_data.tar.gz' tarball (Blitzer et al., 2007)"
            )
        self.members: dict[str, bytes] | None = None
        if self.path.is_file():
            with tarfile.open(self.path) as archive:
                self.members = {
                    m.name: archive.extractfile(m).read()
                    for m in archive.getmembers()
                    if m.isfile() and m.name.endswith(("positive.review", "negative.review"))
                }

    def read(self, domain: str, filename: str) -> tuple[str, str]:
        for directory in DIRECTORY_NAMES.get(domain, (domain,)):
            if self.members is None:
                candidate = self.path / directory / filename
                if candidate.exists():
                    return str(candidate), candidate.read_bytes().decode("utf-8", errors="replace")
            else:
                for name, data in self.members.items():
                    parts = Path(name).parts
                    if len(parts) >= 2 and parts[-2] == directory and parts[-1] == filename:
                        return f"{self.path}:{name}", io.BytesIO(data).read().decode(
                            "utf-8", errors="replace"
                        )
        raise FileNotFoundError(
            f"{self.path}: no {filename} for domain {domain!r} (looked for "
            f"{', '.join(d + '/' + filename for d in DIRECTORY_NAMES.get(domain, (domain,)))})"
        )


def split_sizes(domain: str, n: int) -> tuple[int, int, int]:
    if domain in PAPER_SPLIT_SIZES and sum(PAPER_SPLIT_SIZES[domain]) == n:
        return PAPER_SPLIT_SIZES[domain]
    train, dev = round(0.815 * n), round(0.09 * n)
    return train, dev, n - train - dev


def load_amazon(path: str | os.PathLike, domains=AMAZON_DOMAINS, seed: int = 42) -> DatasetDict:
    """Build the Amazon multi-domain sentiment ``DatasetDict`` (train/dev/test, 4 domains)."""
    source = _Source(path)
    report = SkipReport("amazon")
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for domain in domains:
        rows = []
        for label in ("positive", "negative"):
            name, text = source.read(domain, f"{label}.review")
            rows += [
                {"text": r, "label": label, "domain": domain} for r in parse_review_file(text, name, report)
            ]
        if not rows:
            raise DataFormatError(f"{path}: domain {domain!r} has no reviews")
        random.Random(seed).shuffle(rows)
        n_train, n_dev, _ = split_sizes(domain, len(rows))
        splits["train"] += rows[:n_train]
        splits["dev"] += rows[n_train : n_train + n_dev]
        splits["test"] += rows[n_train + n_dev :]
    return build_dataset_dict(splits, LABELS, list(domains), report)
