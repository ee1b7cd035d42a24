"""Publishing: the staged folder, the model card, loading without hrkd_trainer, and the push path
against a Hub on loopback (tests/fake_hub.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hrkd_trainer.hub import PREDICTIONS_FILE, PublishError, publish_run, read_results, stage_run

from .fake_hub import FakeHub
from .test_recipes import AMAZON_TINY

TOKEN = "hf_me"
USERS = {TOKEN: {"name": "me", "orgs": [{"name": "my-org"}]}, "hf_other": {"name": "other", "orgs": []}}
HERE = os.path.dirname(os.path.abspath(__file__))


def run_amazon(root, bert_teacher_dir, out, *extra):
    from .test_data import write_amazon

    sys.path.insert(0, os.path.join(HERE, "..", "recipes"))
    import amazon

    data = root / "sorted_data_acl"
    if not data.exists():
        write_amazon(data, n=12)
    return amazon.main([
        "--data_path", str(data), "--teacher_init", bert_teacher_dir, "--output_dir", str(out), "--method", "hrkd",
        *AMAZON_TINY, *extra,
    ])  # fmt: skip


@pytest.fixture(scope="module")
def hrkd_run(tmp_path_factory, bert_teacher_dir):
    """A finished HRKD run of the Amazon recipe (tiny models, files in the original format)."""
    root = tmp_path_factory.mktemp("hub_run")
    run_amazon(root, bert_teacher_dir, root / "run")
    return root / "run"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A loopback Hub, with huggingface_hub pointed at it: online, LFS transfers, no ambient token."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with FakeHub(USERS) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        yield server
    assert not server.unknown, f"requests the loopback Hub does not serve: {server.unknown}"


def folder_bytes(folder) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, folder).replace(os.sep, "/")] = handle.read()
    return out


# ---------------------------------------------------------------------------- the folder and the card
def test_staged_folder_holds_the_student_only(hrkd_run, tmp_path):
    results = json.loads((hrkd_run / "results.json").read_text())
    domains = results["domains"]
    staged = stage_run(str(hrkd_run), str(tmp_path / "stage"), "me/student")
    files = set(staged.files)
    tokenizer = {"tokenizer.json", "tokenizer_config.json"}
    expected = {"README.md", "results.json", "ratios.png", "config.json", "model.safetensors", *tokenizer}
    for domain in domains:
        expected |= {f"{domain}/{name}" for name in ("config.json", "model.safetensors", *tokenizer)}
    assert files == expected
    assert files == set(folder_bytes(tmp_path / "stage"))
    # the export's bytes, unchanged; the run's other files never read
    for name in files - {"README.md", "results.json", "ratios.png"}:
        assert (tmp_path / "stage" / name).read_bytes() == (hrkd_run / "student" / name).read_bytes(), name
    assert staged.left_out == [("student/training_args.bin", "not part of a model export")]
    assert (hrkd_run / "training_state").exists() and (hrkd_run / "teacher").exists()
    assert not any(
        word in f for f in files for word in ("teacher", "training_state", "projection", "optimizer")
    )
    listing = staged.describe()
    assert "left out: student/training_args.bin" in listing and "model.safetensors" in listing


def test_card_metadata_parses_and_equals_results(hrkd_run, tmp_path):
    from huggingface_hub import ModelCard

    results = json.loads((hrkd_run / "results.json").read_text())
    stage_run(str(hrkd_run), str(tmp_path / "stage"), "me/student", base_model="me/teacher", license="mit")
    text = (tmp_path / "stage" / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---\n")[1])
    assert metadata["base_model"] == "me/teacher" and metadata["license"] == "mit"
    assert metadata["datasets"] is not None if results["dataset"]["hub_id"] else "datasets" not in metadata
    assert set(metadata["tags"]) >= {
        "knowledge-distillation",
        "hrkd",
        "text-classification",
        *results["domains"],
    }
    card = ModelCard.load(str(tmp_path / "stage" / "README.md"))
    found = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    for domain in results["domains"]:
        assert found[(domain, "accuracy")] == results["student"]["accuracy"][domain]
        assert found[(domain, "teacher_accuracy")] == results["teacher"]["accuracy"][domain]
    assert len(found) == 2 * len(results["domains"])
    # the text: per-domain table, size, speed and hyper-parameters, all from results.json
    for domain in results["domains"]:
        student, teacher = (f"{100 * results[k]['accuracy'][domain]:.1f}" for k in ("student", "teacher"))
        assert f"| `{domain}` | {student} | {teacher} |" in text
    assert f"{results['teacher']['parameters'] / 1e6:.1f} M" in text
    assert f"{results['student']['speedup']:.1f}× faster" in text
    assert f"{results['compression']:.2f}× smaller" in text
    assert (
        f"| weights on disk (one domain's model) | {results['teacher']['weights_bytes'] / 2**20:.0f} MB |"
        in text
    )
    assert f"{results['size_ratio']:.2f}× smaller" in text
    spread = results["student"]["speedup_spread"]
    assert spread["q1"] <= results["student"]["speedup"] <= spread["q3"]
    assert f"the median of {spread['repeats']} interleaved repetitions" in text
    assert results["command"] in text
    assert f'| `relational_mode` | `"{results["distillation"]["relational_mode"]}"` |' in text
    assert "![ratios](ratios.png)" in text and "@inproceedings{dong-etal-2021-hrkd" in text
    assert "## Intended use and limitations" in text


def test_card_names_the_teacher_from_results(hrkd_run, tmp_path):
    """Without --base-model the card takes the teacher's Hub id from results.json (none for a local
    folder: then the metadata has no base_model rather than a path)."""
    results = read_results(str(hrkd_run))
    stage_run(str(hrkd_run), str(tmp_path / "a"), "me/student")
    metadata = yaml.safe_load((tmp_path / "a" / "README.md").read_text().split("---\n")[1])
    assert results["teacher"]["hub_id"] is None and "base_model" not in metadata
    assert str(tmp_path) not in (tmp_path / "a" / "README.md").read_text()  # no local paths leak


def test_a_compact_student_export_is_refused_with_the_fix(hrkd_run, tmp_path):
    import shutil

    from hrkd_trainer.modeling import MultiDomainModel

    run = tmp_path / "run"
    shutil.copytree(hrkd_run, run)
    student = MultiDomainModel.from_pretrained(str(run / "student"))
    shutil.rmtree(run / "student")
    student.save_pretrained(str(run / "student"), domain_copies=False)
    with pytest.raises(PublishError, match="--export_domain_copies false"):
        stage_run(str(run), str(tmp_path / "stage"), "me/student")


def test_dry_run_folder_loads_without_hrkd_trainer(hrkd_run, tmp_path):
    """The acceptance check: a fresh process with plain transformers loads every domain through
    AutoModel, AutoModelForSequenceClassification and pipeline, runs the card's snippet, and gets
    the run's own test predictions."""
    out = tmp_path / "stage"
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "..", "hub_upload.py"), str(hrkd_run), "--repo-id", "me/student",
         "--dry-run", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "dry run: nothing was pushed" in done.stdout and "README.md" in done.stdout
    check = subprocess.run(
        [sys.executable, os.path.join(HERE, "check_export.py"), str(out), str(hrkd_run / PREDICTIONS_FILE)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    results = read_results(str(hrkd_run))
    assert report["imported_hrkd_trainer"] is False
    assert report["card_snippet"]["expected_label"] in results["labels"]
    for domain in results["domains"]:
        assert report["domains"][domain]["accuracy"] == pytest.approx(results["student"]["accuracy"][domain])


def test_per_domain_students_publish_and_load(tmp_path, bert_teacher_dir):
    """TinyBERT-KD (one student per domain): every domain's own model loads through the card's routes."""
    run = tmp_path / "run"
    run_amazon(tmp_path, bert_teacher_dir, run, "--method", "tinybert", "--teacher_type", "mtl")
    staged = stage_run(str(run), str(tmp_path / "stage"), "me/experts")
    results = read_results(str(run))
    assert "hrkd_experts.json" in staged.files and "config.json" not in staged.files  # no shared encoder
    assert {f"{d}/{d}/model.safetensors" for d in results["domains"]} <= set(staged.files)
    check = subprocess.run(
        [sys.executable, os.path.join(HERE, "check_export.py"), str(tmp_path / "stage"), str(run / PREDICTIONS_FILE)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


def test_unfinished_runs_are_refused(tmp_path, hrkd_run):
    with pytest.raises(PublishError, match="run directory not found"):
        read_results(str(tmp_path / "nope"))
    (tmp_path / "run").mkdir()
    with pytest.raises(PublishError, match=r"no finished student: results\.json is missing"):
        read_results(str(tmp_path / "run"))
    (tmp_path / "run" / "results.json").write_text((hrkd_run / "results.json").read_text())
    with pytest.raises(PublishError, match=r"no finished student: the folder .*student is missing"):
        read_results(str(tmp_path / "run"))
    (tmp_path / "run" / "student").mkdir()
    (tmp_path / "run" / "student" / "config.json").write_text("{}")
    with pytest.raises(PublishError, match=r"model\.safetensors is missing"):
        read_results(str(tmp_path / "run"))
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "..", "hub_upload.py"), str(tmp_path / "run"), "--repo-id", "me/x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "no finished student" in done.stderr


# ---------------------------------------------------------------------------- the push
def test_push_sends_exactly_the_staged_files_and_is_idempotent(hrkd_run, tmp_path, hub):
    staged = stage_run(str(hrkd_run), str(tmp_path / "stage"), "me/student")
    info = publish_run(str(hrkd_run), "me/student", token=TOKEN, private=True)
    assert hub.files("me/student") == {
        **folder_bytes(tmp_path / "stage"),
        ".gitattributes": hub.files("me/student")[".gitattributes"],
    }
    assert set(hub.files("me/student")) == {*staged.files, ".gitattributes"}
    assert hub.repos["me/student"]["private"] is True
    assert info.oid == hub.repos["me/student"]["commits"][-1]["oid"]
    uploaded = len(hub.lfs)
    # again: nothing changes, no new commit, no LFS object sent twice
    publish_run(str(hrkd_run), "me/student", token=TOKEN)
    assert len(hub.repos["me/student"]["commits"]) == 1 and len(hub.lfs) == uploaded
    # a file the folder no longer has is removed in the next push (the repo mirrors the folder)
    hub.repos["me/student"]["branches"]["main"]["stale/model.safetensors"] = b"old"
    publish_run(str(hrkd_run), "me/student", token=TOKEN, commit_message="refresh")
    assert "stale/model.safetensors" not in hub.files("me/student")
    assert hub.repos["me/student"]["commits"][-1]["summary"] == "refresh"


def test_push_to_a_branch_and_an_organisation(hrkd_run, hub):
    publish_run(str(hrkd_run), "my-org/student", token=TOKEN, revision="v1")
    assert set(hub.files("my-org/student", "main")) == {".gitattributes"}
    assert "README.md" in hub.files("my-org/student", "v1")


def test_push_errors_are_clear_and_retry_fixes_them(hrkd_run, hub, monkeypatch):
    with pytest.raises(PublishError, match="no Hugging Face token: pass --token, set HF_TOKEN"):
        publish_run(str(hrkd_run), "me/student")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE is set"):
        publish_run(str(hrkd_run), "me/student", token=TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(PublishError, match="rejected the token"):
        publish_run(str(hrkd_run), "me/student", token="hf_wrong")
    with pytest.raises(PublishError, match=r"belongs to 'someone'.*use --repo-id me/student"):
        publish_run(str(hrkd_run), "someone/student", token=TOKEN)
    assert "someone/student" not in hub.repos
    # a network failure during the LFS uploads that outlasts huggingface_hub's retries: nothing is
    # committed, and running the same command again finishes the job
    import time

    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the client's back-off waits
    hub.fail = ("lfs-upload", 100)
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the token from the environment this time
    with pytest.raises(PublishError, match="run the same command again"):
        publish_run(str(hrkd_run), "me/student")
    assert set(hub.files("me/student")) == {".gitattributes"} and not hub.repos["me/student"]["commits"]
    assert not hub.lfs
    hub.fail = ("lfs-upload", 1)  # one more dropped connection: retried by the client itself
    publish_run(str(hrkd_run), "me/student")
    assert hub.fail == ("lfs-upload", 0) and "model.safetensors" in hub.files("me/student")
    assert len(hub.repos["me/student"]["commits"]) == 1


def test_recipe_push_to_hub_publishes_the_same_content(tmp_path, bert_teacher_dir, hub):
    """--push_to_hub on a recipe publishes what hub_upload.py would, and no trainer pushes the teacher."""
    out = tmp_path / "run"
    run_amazon(tmp_path, bert_teacher_dir, out, "--push_to_hub", "true", "--hub_model_id", "me/recipe-student",
               "--hub_token", TOKEN)  # fmt: skip
    assert set(hub.repos) == {"me/recipe-student"}
    stage_run(str(out), str(tmp_path / "stage"), "me/recipe-student")
    pushed = hub.files("me/recipe-student")
    pushed.pop(".gitattributes")
    assert pushed == folder_bytes(tmp_path / "stage")


def test_recipe_push_to_hub_fails_before_training(tmp_path, bert_teacher_dir, hub):
    with pytest.raises(SystemExit, match="needs --hub_model_id"):
        run_amazon(tmp_path, bert_teacher_dir, tmp_path / "a", "--push_to_hub", "true")
    with pytest.raises(SystemExit, match="no Hugging Face token"):
        run_amazon(
            tmp_path, bert_teacher_dir, tmp_path / "b", "--push_to_hub", "true", "--hub_model_id", "me/x"
        )
    assert not (tmp_path / "a" / "teacher").exists() and not (tmp_path / "b" / "teacher").exists()
    assert not hub.requests


def test_trainer_push_to_hub_publishes_the_student_with_a_card(tmp_path, tokenized, tokenizer, teacher_dir,
                                                               bert_student_dir, hub):  # fmt: skip
    from huggingface_hub import ModelCard

    from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel

    from .conftest import DOMAINS, LABELS, common

    train, dev = tokenized
    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    student = MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0)
    args = HRKDConfig(**common(tmp_path, "kd", max_steps=2, hub_model_id="me/trained", hub_token=TOKEN))
    trainer = HRKDTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=train, eval_dataset=dev,
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    trainer.push_to_hub()
    files = hub.files("me/trained")
    assert {"README.md", "results.json", "config.json", "model.safetensors"} <= set(files)
    assert {f"{d}/model.safetensors" for d in DOMAINS} <= set(files)
    assert not any(name.endswith((".bin", ".pt")) or "teacher" in name for name in files)
    results = json.loads(files["results.json"])
    card = ModelCard(files["README.md"].decode())
    metrics = trainer.evaluate()
    for result in card.data.eval_results:
        assert result.dataset_split == "eval"
        if result.metric_type == "accuracy":
            assert result.metric_value == pytest.approx(metrics[f"eval_{result.dataset_config}_accuracy"])
            assert result.metric_value == results["student"]["accuracy"][result.dataset_config]


def test_console_script_is_installed():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "hrkd-hub-upload"]
    assert script.value == "hrkd_trainer.hub_cli:main"
    command = os.path.join(os.path.dirname(sys.executable), "hrkd-hub-upload")
    done = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--repo-id" in done.stdout and "--dry-run" in done.stdout


def test_nothing_local_is_published(hrkd_run, tmp_path):
    """results.json records local folders (the teacher's source, the student's init, the command's
    --data_path); the staged copy replaces each by a run-relative path, a Hub id or <local>/name."""
    raw = (hrkd_run / "results.json").read_text()
    assert str(tmp_path.parent) in raw or "/tmp" in raw  # the run itself names local folders
    stage_run(str(hrkd_run), str(tmp_path / "stage"), "me/student")
    home = os.path.expanduser("~")
    for root, _, names in os.walk(tmp_path / "stage"):
        for name in names:
            path = os.path.join(root, name)
            if name.endswith((".json", ".md", ".txt", ".yaml")):
                text = Path(path).read_text(encoding="utf-8")
                for local in ("/tmp/", home + "/", "/work/", "site-packages"):
                    assert local not in text, f"{name} names {local}"
    staged = json.loads((tmp_path / "stage" / "results.json").read_text())
    assert staged["student"]["accuracy"] == json.loads(raw)["student"]["accuracy"]


def test_public_path_forms(tmp_path):
    from hrkd_trainer.results import public_path, without_local_paths

    run = tmp_path / "run"
    (run / "teacher").mkdir(parents=True)
    assert public_path(str(run / "teacher"), str(run)) == "teacher"
    assert public_path("/data/users/ann/corpus/train.csv") == "<local>/corpus/train.csv"
    text = f"amazon.py --data_path {tmp_path}/data --teacher_init bert-base-uncased --hub https://huggingface.co/a/b"
    cleaned = without_local_paths({"command": text, "n": [1, "runs/x"]}, str(run))
    assert cleaned["command"] == (
        f"amazon.py --data_path <local>/{tmp_path.name}/data --teacher_init bert-base-uncased "
        "--hub https://huggingface.co/a/b"
    )
    assert cleaned["n"] == [1, "runs/x"]
