"""VADER's human-rated sentiment ground truth (Hutto & Gilbert, ICWSM 2014), four domains.

The data ships inside the *source archive* of ``vaderSentiment==3.3.2`` on PyPI (the wheel does not
contain it): ``additional_resources/hutto_ICWSM_2014.tar.gz`` → ``<domain>_GroundTruth.txt``, lines
``id <TAB> mean rating (-4..4) <TAB> text``. We fetch the archive with pip, check its sha256, and cache
it. Label: ``positive`` if the mean rating is > 0, ``negative`` if < 0; ratings with
``|rating| < min_abs_rating`` (default 0.5, near-neutral, rater disagreement) are skipped and reported.

Cite: C.J. Hutto and E.E. Gilbert. VADER: A Parsimonious Rule-based Model for Sentiment Analysis of
Social Media Text. ICWSM 2014.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from datasets import DatasetDict

from ..assets import cache_root
from .common import DataFormatError, DataSource, SkipReport, build_dataset_dict, seeded_split

VADER_REQUIREMENT = "vaderSentiment==3.3.2"
logger = logging.getLogger(__name__)
VADER_ARCHIVE = "vaderSentiment-3.3.2.tar.gz"
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"

#: domain name → ground-truth file inside the inner archive
VADER_DOMAINS = {
    "tweets": "hutto_ICWSM_2014/tweets_GroundTruth.txt",
    "movie_reviews": "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
    "amazon_reviews": "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt",
    "nyt_editorials": "hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt",
}
LABELS = ("negative", "positive")
SOURCE = DataSource(
    name="VADER sentiment ground truth (Hutto & Gilbert, ICWSM 2014)",
    slug="vader-sentiment-ground-truth",
    url="https://github.com/cjhutto/vaderSentiment",
    language="en",
)


def cache_dir() -> Path:
    """The cache root (``$HRKD_CACHE``, see :func:`hrkd_trainer.assets.cache_root`)."""
    return cache_root()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_vader_archive(target_dir: str | os.PathLike | None = None) -> Path:
    """Return the verified ``vaderSentiment-3.3.2.tar.gz``, downloading it with pip if needed."""
    target = Path(target_dir) if target_dir else cache_dir() / "vader"
    path = target / VADER_ARCHIVE
    if path.exists():
        if sha256_of(path) == VADER_SHA256:
            return path
        path.unlink()  # a corrupt or partial download: fetch it again
    target.mkdir(parents=True, exist_ok=True)
    logger.info("VADER: downloading %s from PyPI with pip (about 2.5 MB) into %s", VADER_REQUIREMENT, target)
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", VADER_REQUIREMENT, "-d", tmp,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        downloaded = Path(tmp) / VADER_ARCHIVE
        if result.returncode != 0 or not downloaded.exists():
            raise RuntimeError(
                f"could not download the {VADER_REQUIREMENT} source archive with pip "
                f"({' '.join(command)}):\n{result.stderr.strip()[-2000:]}\n"
                f"Download it by hand and pass its path (archive=...), or place it at {path}."
            )
        digest = sha256_of(downloaded)
        if digest != VADER_SHA256:
            raise RuntimeError(
                f"{VADER_ARCHIVE} has sha256 {digest}, expected {VADER_SHA256}; refusing to use it"
            )
        shutil.move(str(downloaded), path)
    logger.info("VADER: %s verified (sha256) and cached", path)
    return path


def read_vader_files(archive: str | os.PathLike) -> dict[str, str]:
    """``{domain: text of its ground-truth file}`` from the source archive."""
    archive = Path(archive)
    if not archive.exists():
        raise FileNotFoundError(
            f"VADER archive not found: {archive}. Pass --data_path to the {VADER_ARCHIVE} source archive, or leave "
            "--data_path unset to fetch it from PyPI"
        )
    if sha256_of(archive) != VADER_SHA256:
        raise DataFormatError(f"{archive}: sha256 does not match {VADER_REQUIREMENT} ({VADER_SHA256})")
    with tarfile.open(archive) as outer:
        try:
            inner_bytes = outer.extractfile(INNER_ARCHIVE).read()
        except KeyError as err:
            raise DataFormatError(f"{archive} has no member {INNER_ARCHIVE}") from err
    texts = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for domain, member in VADER_DOMAINS.items():
            texts[domain] = inner.extractfile(member).read().decode("utf-8", errors="replace")
    return texts


def parse_ground_truth(
    text: str, source: str, domain: str, min_abs_rating: float, report: SkipReport
) -> list[dict]:
    """Parse ``id <TAB> rating <TAB> text`` lines; malformed lines raise with file and line number."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            report.skip(source, "empty line")
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise DataFormatError(
                f"{source}, line {number}: expected 'id<TAB>rating<TAB>text', got {line[:80]!r}"
            )
        try:
            rating = float(fields[1])
        except ValueError as err:
            raise DataFormatError(f"{source}, line {number}: rating {fields[1]!r} is not a number") from err
        sentence = "\t".join(fields[2:]).strip()
        if not sentence:
            report.skip(source, "empty text")
            continue
        if abs(rating) < min_abs_rating or rating == 0:
            report.skip(source, f"near-neutral rating (|rating| < {min_abs_rating})")
            continue
        rows.append({"text": sentence, "label": "positive" if rating > 0 else "negative", "domain": domain})
    return rows


def load_vader(
    archive: str | os.PathLike | None = None,
    min_abs_rating: float = 0.5,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 42,
) -> DatasetDict:
    """Build the four-domain VADER data set: seeded 80/10/10 train/dev/test split per domain."""
    archive = Path(archive) if archive else fetch_vader_archive()
    texts = read_vader_files(archive)
    report = SkipReport("vader")
    splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
    for index, (domain, text) in enumerate(texts.items()):
        rows = parse_ground_truth(text, f"{archive}:{VADER_DOMAINS[domain]}", domain, min_abs_rating, report)
        for split, part in seeded_split(rows, split_fractions, seed + index).items():
            splits[split].extend(part)
    return build_dataset_dict(splits, LABELS, list(VADER_DOMAINS), report)
