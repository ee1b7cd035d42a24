"""``hrkd-distill``: a shipped recipe by name, or its settings on your own data (CSV with dev/test cut
from it, JSON lines with separate dev/test files, a datasets folder of splits), on real VADER text
at a tiny size; unknown recipes and conflicting data flags get one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from hrkd_trainer.cli import main
from hrkd_trainer.data import load_vader
from hrkd_trainer.run.own_data import DataArguments, load_own_data

TINY = [
    "--student_layers", "2", "--max_length", "32", "--per_domain_train_batch_size", "4", "--max_steps", "2",
    "--teacher_num_train_epochs", "0.2", "--eval_strategy", "no", "--save_strategy", "no", "--baseline", "false",
    "--disable_tqdm", "true", "--speed_batches", "1", "--use_cpu", "true", "--report_to", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def vader_rows():
    """40 real VADER examples of each of two domains, as plain rows with a 'site' domain column."""
    data = load_vader()
    train = data["train"]
    domains, labels = train.features["domain"].names, train.features["label"].names
    rows = {"tweets": [], "nyt_editorials": []}
    for row in train:
        name = domains[row["domain"]]
        if name in rows and len(rows[name]) < 40:
            rows[name].append({"review": row["text"], "label": labels[row["label"]], "site": name})
    return rows["tweets"] + rows["nyt_editorials"]


def test_own_csv_from_the_command_line(tmp_path, vader_rows, bert_teacher_dir):
    import csv

    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "label", "site"])
        writer.writeheader()
        writer.writerows(vader_rows)
    out = tmp_path / "run"
    results = main([
        "--train_file", str(path), "--text_column", "review", "--domain_column", "site",
        "--teacher_init", bert_teacher_dir, "--output_dir", str(out), *TINY,
    ])  # fmt: skip
    assert results["domains"] == ["tweets", "nyt_editorials"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["student"]["accuracy"] == results["student"]["accuracy"]
    assert (out / "student" / "config.json").exists()


def test_own_jsonl_and_a_datasets_folder(tmp_path, vader_rows, bert_teacher_dir):
    jsonl = {}
    for split, part in (("train", vader_rows[:30] + vader_rows[40:70]), ("dev", vader_rows[30:35] + vader_rows[70:75]),
                        ("test", vader_rows[35:40] + vader_rows[75:80])):  # fmt: skip
        jsonl[split] = tmp_path / f"{split}.jsonl"
        jsonl[split].write_text("\n".join(json.dumps(r) for r in part) + "\n")
    args = DataArguments(
        train_file=str(jsonl["train"]), dev_file=str(jsonl["dev"]), test_file=str(jsonl["test"]),
        text_column="review", domain_column="site",
    )  # fmt: skip
    data = load_own_data(args, seed=1)
    assert {s: len(data[s]) for s in data} == {"train": 60, "dev": 10, "test": 10}
    folder = tmp_path / "saved"
    DatasetDict({
        "train": Dataset.from_list(vader_rows[:30] + vader_rows[40:70]),
        "validation": Dataset.from_list(vader_rows[30:35] + vader_rows[70:75]),
        "test": Dataset.from_list(vader_rows[35:40] + vader_rows[75:80]),
    }).save_to_disk(str(folder))  # fmt: skip
    results = main([
        "--dataset_name", str(folder), "--text_column", "review", "--domain_column", "site",
        "--teacher_init", bert_teacher_dir, "--output_dir", str(tmp_path / "run"), *TINY,
    ])  # fmt: skip
    assert results["domains"] == ["tweets", "nyt_editorials"]
    assert results["data"] == {"train": 60, "dev": 10, "test": 10}  # the folder's own splits
    one_split = tmp_path / "one_split"
    Dataset.from_list(vader_rows).save_to_disk(str(one_split))  # a single split as --train_file
    data = load_own_data(
        DataArguments(train_file=str(one_split), text_column="review", domain_column="site"), 1
    )
    assert sum(len(data[s]) for s in data) == 80


def test_command_line_errors(tmp_path):
    with pytest.raises(SystemExit, match=r"unknown recipe 'amazn' \(did you mean 'amazon'\?\)"):
        main(["amazn"])
    with pytest.raises(SystemExit, match="not both"):
        main(["--train_file", "a.csv", "--dataset_name", "x", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--dev_file/--test_file need --train_file"):
        main(["--dev_file", "a.csv", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"cannot load the data: data file not found: .*missing.csv"):
        main(
            [
                "--train_file",
                str(tmp_path / "missing.csv"),
                "--output_dir",
                str(tmp_path),
                "--student_layers",
                "2",
            ]
        )


def test_installed_command_and_module():
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "hrkd-distill"]
    assert script.value == "hrkd_trainer.cli:console"
    command = os.path.join(os.path.dirname(sys.executable), "hrkd-distill")
    done = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "vader" in done.stdout and "--train_file" in done.stdout
    done = subprocess.run([sys.executable, "-m", "hrkd_trainer", "vader", "--help"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0 and "your own data (instead of the recipe's):" in done.stdout


def test_the_wheel_holds_the_command_and_its_configs(tmp_path, vader_rows, bert_teacher_dir):
    """Build the wheel, install it alone into a folder (dependencies from this environment), and run
    the installed package from outside the repository: the recipes' YAML files travel with it."""
    import csv

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), root],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    (wheel,) = wheels.glob("hrkd_trainer-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    assert sorted(p.name for p in (target / "hrkd_trainer" / "configs").glob("*.yaml")) == [
        "amazon.yaml", "mnli.yaml", "vader.yaml", "vader_mpnet.yaml",
    ]  # fmt: skip
    assert sorted(p.name for p in (target / "hrkd_trainer" / "studies").glob("*.yaml")) == [
        "compression.yaml", "distillation.yaml", "report.yaml", "weighting.yaml",
    ]  # fmt: skip
    path = tmp_path / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "label", "site"])
        writer.writeheader()
        writer.writerows(vader_rows)
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-m", "hrkd_trainer", "--train_file", str(path), "--text_column", "review",
         "--domain_column", "site", "--teacher_init", bert_teacher_dir, *TINY],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((tmp_path / "runs" / "own" / "results.json").read_text())
    assert results["domains"] == ["tweets", "nyt_editorials"]
    assert "[hrkd]" in run.stderr  # the package's progress lines are shown
    study = subprocess.run([sys.executable, "-m", "hrkd_trainer.study", "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert study.returncode == 0 and "weighting" in study.stdout  # the shipped studies travel too


@pytest.mark.packaging
def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path, vader_rows, bert_teacher_dir):
    """The README's pip route on this machine: a new venv, torch as the Makefile pins it, the wheel
    with its declared dependencies, then the installed hrkd-distill on tiny data."""
    import csv
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch_pin = re.search(r"TORCH \?= (\S+)", Path(root, "Makefile").read_text()).group(1)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), root],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    (wheel,) = wheels.glob("hrkd_trainer-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, torch_pin], check=True, capture_output=True, timeout=1800)
    done = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    path = tmp_path / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "label", "site"])
        writer.writeheader()
        writer.writerows(vader_rows)
    run = subprocess.run(
        [str(venv / "bin" / "hrkd-distill"), "--train_file", str(path), "--text_column", "review",
         "--domain_column", "site", "--teacher_init", bert_teacher_dir, *TINY],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "runs" / "own" / "results.json").read_text())
    assert results["domains"] == ["tweets", "nyt_editorials"]


@pytest.fixture(scope="module")
def small_mpnet_dir(tmp_path_factory):
    """A tiny random MPNet with all-mpnet-base-v2's real vocabulary, which is BERT-uncased's with
    ``<s> <pad> </s> <unk>`` in front and ``<mask>`` at the end (ids differ from MiniLM's, the
    WordPiece split is the same)."""
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    from hrkd_trainer.assets import offline_minilm_path

    path = tmp_path_factory.mktemp("small_mpnet")
    bert_vocab = Path(offline_minilm_path(), "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = path / "mpnet_vocab.txt"
    vocab.write_text(
        "\n".join(["<s>", "<pad>", "</s>", "<unk>", *bert_vocab, "<mask>"]) + "\n", encoding="utf-8"
    )
    tokenizer = MPNetTokenizerFast(vocab=str(vocab), unk_token="[UNK]")  # as all-mpnet-base-v2 says
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=80,
    )  # fmt: skip
    MPNetModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_vader_mpnet_recipe_distils_an_mpnet_teacher_into_a_minilm_student(tmp_path, small_mpnet_dir):
    """The real-compression recipe's shape, without the 400 MB download: an MPNet teacher (tiny, its own
    tokenizer) → the offline MiniLM-L6 selected by its short name and cut to one layer, on real VADER
    text; the teacher output cache and the no-KD baseline on, as the recipe ships them."""
    from hrkd_trainer.assets import offline_minilm_path

    out = tmp_path / "run"
    results = main([
        "vader-mpnet", "--teacher_init", small_mpnet_dir, "--output_dir", str(out), "--max_train_samples_per_domain", "8",
        "--max_eval_samples_per_domain", "4", *TINY, "--student_layers", "1", "--baseline", "true",
        "--teacher_cache_dir", str(tmp_path / "cache"), "--speed_repeats", "3", "--max_transfer_samples_per_domain", "4",
    ])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert saved["student"]["layers"] == 1
    # the shipped transfer text: 4 rest-of-train rows per domain here, and one augmented copy of each of the
    # 8 gold rows per domain
    assert saved["transfer"]["rows"] == 4 * 4 + 4 * 8
    assert (
        saved["teacher"]["parameters"] < saved["student"]["parameters"]
    )  # a tiny teacher; real sizes in docs
    assert saved["student"]["init"] == offline_minilm_path()  # the short name 'minilm-l6', resolved
    assert saved["student"]["speedup_spread"]["repeats"] == 3 and "baseline" in saved
    config = json.loads((out / "student" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_size"] == 384
    assert os.listdir(tmp_path / "cache"), "the recipe uses the teacher-output cache"
    assert results["student"]["accuracy"] == saved["student"]["accuracy"]
    assert os.path.isdir(offline_minilm_path())


def test_the_vader_mpnet_recipe_ships_a_real_compression():
    """The shipped config: the MPNet-base teacher by default, a 4-layer MiniLM student (5.7× fewer
    parameters than MPNet-base's 109.5 M), the teacher-output cache on, full test splits, the losses
    dev chose."""
    from hrkd_trainer.assets import offline_mpnet_path
    from hrkd_trainer.run import parse_recipe_args
    from hrkd_trainer.run.recipes import RECIPES

    spec = RECIPES["vader-mpnet"]
    assert spec.default_teacher_init is offline_mpnet_path
    recipe, config = parse_recipe_args(["--output_dir", "x"], default_config=spec.config)
    assert recipe.student == "minilm-l6" and recipe.student_layers == 4
    assert config.teacher_cache and recipe.max_eval_samples_per_domain is None
    assert recipe.baseline
    # the distillation study's K4: the token-level losses through least-squares projections, t = 1
    assert config.distill_losses == ["embedding", "hidden", "prediction"]
    assert config.projection_init == "lstsq"
    assert (config.prediction_loss, config.hard_label_weight, config.learning_rate) == ("hinton", 0.5, 2e-4)
    assert config.temperature == 1.0 and recipe.augment == 1
    assert recipe.transfer_rest_of_train and recipe.max_transfer_samples_per_domain == 500
