"""Data builders. Each returns a ``datasets.DatasetDict`` with ``train``/``dev``/``test`` splits and
columns ``text`` (and ``text_pair`` for sentence pairs), ``label`` and ``domain`` (both ``ClassLabel``).
Rows a builder leaves out are logged and counted in ``dataset_dict.skipped``."""

from .amazon import AMAZON_DOMAINS, load_amazon
from .amazon import SOURCE as AMAZON_SOURCE
from .common import (
    DataFormatError,
    DataSource,
    SkipReport,
    domain_names,
    few_shot,
    label_names,
    per_domain_head,
    select_domains,
)
from .files import load_files, load_hub_data
from .mnli import MNLI_DOMAINS, load_mnli, load_mnli_glue, load_mnli_hub
from .mnli import SOURCE as MNLI_SOURCE
from .vader import SOURCE as VADER_SOURCE
from .vader import VADER_DOMAINS, fetch_vader_archive, load_vader

__all__ = [
    "AMAZON_DOMAINS",
    "AMAZON_SOURCE",
    "MNLI_DOMAINS",
    "MNLI_SOURCE",
    "VADER_DOMAINS",
    "VADER_SOURCE",
    "DataFormatError",
    "DataSource",
    "SkipReport",
    "domain_names",
    "fetch_vader_archive",
    "few_shot",
    "label_names",
    "load_amazon",
    "load_files",
    "load_hub_data",
    "load_mnli",
    "load_mnli_glue",
    "load_mnli_hub",
    "load_vader",
    "per_domain_head",
    "select_domains",
]
