"""Recipe argument parsing and the paper recipes' fail-fast checks."""

import os
import subprocess
import sys

import pytest

from hrkd_trainer.run import parse_recipe_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: runs/x\nlearning_rate: 0.1\ntemperature: 2.0\nstudent_layers: 2\n")
    recipe, config = parse_recipe_args(
        ["--config", str(path), "--learning_rate", "0.5", "--distill_losses", "hidden", "prediction"]
    )
    assert config.learning_rate == 0.5 and config.temperature == 2.0 and recipe.student_layers == 2
    assert config.distill_losses == ["hidden", "prediction"]
    _, config = parse_recipe_args([str(path)])
    assert config.learning_rate == 0.1


def test_bad_yaml_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: x\nlerning_rate: 1\n")
    with pytest.raises(SystemExit, match="lerning_rate"):
        parse_recipe_args(["--config", str(path)])


@pytest.mark.parametrize("recipe", ["amazon", "mnli"])
def test_paper_recipes_fail_fast_with_what_is_missing(recipe):
    result = subprocess.run(
        [sys.executable, f"recipes/{recipe}.py"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "cannot start" in result.stderr
    assert (
        "--data_path" in result.stderr and "--teacher_init" in result.stderr and "--student" in result.stderr
    )


def test_amazon_recipe_runs_hrkd_end_to_end(tmp_path, bert_teacher_dir):
    """The paper recipe (method hrkd from its YAML) on Amazon files in the original format, tiny models."""
    import json

    from .test_data import write_amazon

    sys.path.insert(0, "recipes")
    import amazon

    write_amazon(tmp_path / "sorted_data_acl", n=12)
    out = tmp_path / "run"
    results = amazon.main([
        "--data_path", str(tmp_path / "sorted_data_acl"), "--teacher_init", bert_teacher_dir, "--student_layers", "2",
        "--output_dir", str(out), "--max_length", "32", "--per_domain_train_batch_size", "4", "--max_steps", "3",
        "--teacher_num_train_epochs", "1", "--eval_strategy", "no", "--save_strategy", "no", "--baseline", "false",
        "--logging_steps", "1", "--disable_tqdm", "true", "--speed_batches", "1", "--use_cpu", "true",
        "--report_to", "none",
    ])  # fmt: skip
    assert results["method"] == "hrkd" and results["distillation"]["relational_mode"] == "frozen"
    ratios = results["final_ratios"]
    assert len(ratios) == 3 and all(abs(sum(row) - 1) < 1e-4 for row in ratios)  # embeddings + 2 layers
    for name in ("ratios.png", "ratio_history.json", "case_study.md", "training_state", "student"):
        assert (out / name).exists(), name
    assert "| books |" in (out / "case_study.md").read_text()
    assert json.loads((out / "results.json").read_text())["final_ratios"] == ratios


def test_method_and_mode_must_agree():
    _, config = parse_recipe_args(["--output_dir", "x", "--method", "hrkd"])
    assert config.relational_mode == "frozen"
    _, config = parse_recipe_args(["--output_dir", "x", "--method", "hrkd", "--relational_mode", "learned"])
    assert config.relational_mode == "learned"
    with pytest.raises(SystemExit, match="needs --method hrkd"):
        parse_recipe_args(["--output_dir", "x", "--relational_mode", "learned"])


AMAZON_TINY = [
    "--max_length", "32", "--per_domain_train_batch_size", "4", "--max_steps", "3", "--teacher_num_train_epochs", "1",
    "--eval_strategy", "no", "--save_strategy", "no", "--baseline", "false", "--logging_steps", "1",
    "--disable_tqdm", "true", "--speed_batches", "1", "--use_cpu", "true", "--report_to", "none", "--student_layers", "2",
]  # fmt: skip


@pytest.mark.parametrize(
    "teacher_type,method",
    [
        ("single", "tinybert"),
        ("mix", "tinybert"),
        ("mtl", "tinybert"),
        ("hrkd", "tinybert"),
        ("hrkd", "multi-domain"),
        ("hrkd", "hrkd"),
        ("mtl", "multi-domain"),
        ("meta", "meta-distill"),
    ],
)
def test_amazon_recipe_runs_every_baseline_row(tmp_path, bert_teacher_dir, teacher_type, method):
    """Each teacher × distiller row of Tables 2-3 runs from the recipe on files in the original format,
    with the no-KD baseline on (the meta-distill row once crashed there on Meta-KD's weight column)."""
    import json

    from hrkd_trainer.modeling import load_multi_domain

    from .test_data import write_amazon

    sys.path.insert(0, "recipes")
    import amazon

    write_amazon(tmp_path / "sorted_data_acl", n=12)
    out = tmp_path / "run"
    results = amazon.main([
        "--data_path", str(tmp_path / "sorted_data_acl"), "--teacher_init", bert_teacher_dir, "--output_dir", str(out),
        "--teacher_type", teacher_type, "--method", method, *AMAZON_TINY, "--baseline", "true",
    ])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert saved["teacher_type"] == teacher_type and saved["method"] == method
    domains = saved["domains"]
    assert set(saved["student"]["accuracy"]) == {*domains, "average"}
    assert set(saved["teacher"]["accuracy"]) == {*domains, "average"}
    assert set(saved["baseline"]["accuracy"]) == {*domains, "average"}
    teacher = load_multi_domain(str(out / "teacher"))
    student = load_multi_domain(str(out / "student"))
    assert teacher.domains == student.domains == domains
    assert saved["student"]["per_domain_models"] == (method in ("tinybert", "meta-distill"))
    if teacher_type in ("mix", "meta"):
        assert teacher.shared_head  # one classifier, re-tied on loading
    if method == "meta-distill":
        assert saved["meta_distill"]["transfer_term"] is True
        assert (out / "teacher" / "hrkd_domain_corruption.safetensors").exists()
    assert results["student"]["accuracy"] == saved["student"]["accuracy"]


def test_typos_get_a_suggestion_and_no_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(["--output_dir", "x", "--lerning_rate", "1e-3"])
    assert exit_info.value.code == 2
    assert "--lerning_rate (did you mean '--learning_rate'?)" in capsys.readouterr().err
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: x\nrelational_mod: learned\n")
    with pytest.raises(SystemExit, match=r"'relational_mod' \(did you mean 'relational_mode'\?\)"):
        parse_recipe_args(["--config", str(path)])
    path.write_text("output_dir: x\nmethod: hrdk\n")  # a YAML value is checked like a flag's
    with pytest.raises(SystemExit):
        parse_recipe_args(["--config", str(path)])
    assert "--method must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_recipe_args(["--output_dir", "x", "--distill_losses", "hidden", "logits"])
    assert "invalid choice: 'logits'" in capsys.readouterr().err


def test_help_is_grouped_by_topic():
    result = subprocess.run(
        [sys.executable, "recipes/vader.py", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    titles = [
        line[:-1]
        for line in result.stdout.splitlines()
        if line and not line[0].isspace() and line.endswith(":")
    ]
    assert titles == [
        "options",
        "recipe: data, models, stages",
        "your own data (instead of the recipe's)",
        "transfer text and augmentation (rows the teacher labels for the student)",
        "multi-domain training",
        "distillation (HRKD §2.1, eq. 1-5)",
        "HRKD relational weighting (§2.2-2.3, eq. 6-17)",
        "teacher-output cache",
        "Meta-KD (baseline)",
        "Trainer (transformers.TrainingArguments)",
    ]
    assert result.stdout.startswith(
        "usage: vader.py [--config FILE.yaml | FILE.yaml] [--method {multi-domain,"
    )
    hrkd_part = result.stdout.split("HRKD relational weighting")[1].split("teacher-output cache")[0]
    assert "--relational_mode" in hrkd_part and "--learning_rate" not in hrkd_part
    assert "--meta_domain_loss_weight" in result.stdout.split("Meta-KD (baseline):")[1].split("Trainer (")[0]


def test_dependent_defaults_are_decided_while_parsing(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: x\nmethod: hrkd\nlearning_rate: 0.1\n")
    recipe, config = parse_recipe_args(["--config", str(path)])
    assert recipe.method == "hrkd" and config.relational_mode == "frozen"  # from the YAML's method
    _, config = parse_recipe_args(["--config", str(path), "--method", "multi-domain"])
    assert config.relational_mode == "off"
    _, config = parse_recipe_args(["--config", str(path), "--few_shot_fraction", "0.1"])
    assert config.learning_rate == 5e-5  # the few-shot rate replaces the YAML's
    _, config = parse_recipe_args(
        ["--config", str(path), "--few_shot_fraction", "0.1", "--learning_rate", "0.2"]
    )
    assert config.learning_rate == 0.2  # an explicit flag wins
    recipe, _ = parse_recipe_args(["--output_dir", "x", "--meta_domain_loss_weight", "0.3"])
    assert recipe.meta_kd().domain_loss_weight == 0.3 and recipe.meta_kd().transfer_loss_weight == 0.5


def test_transfer_text_makes_hard_plus_soft_labels_the_default_unless_the_loss_is_given(tmp_path):
    """The distillation study's winner (α·CE + (1−α)·t²·KL, α = 0.5) is the default once the teacher labels
    text for the student; without transfer text the paper's soft CE stays; a given loss or α wins."""
    _, config = parse_recipe_args(["--output_dir", "x"])
    assert (config.prediction_loss, config.hard_label_weight) == ("soft-ce", 0.0)
    for transfer in (["--transfer_rest_of_train"], ["--transfer_rest_of_train", "true"],
                     ["--transfer_file", "t.csv"], ["--transfer_dataset_name", "d"], ["--augment", "1"]):  # fmt: skip
        _, config = parse_recipe_args(["--output_dir", "x", *transfer])
        assert (config.prediction_loss, config.hard_label_weight) == ("hinton", 0.5), transfer
    _, config = parse_recipe_args(["--output_dir", "x", "--transfer_rest_of_train", "false"])
    assert config.prediction_loss == "soft-ce"
    _, config = parse_recipe_args(["--output_dir", "x", "--augment", "1", "--prediction_loss", "soft-ce"])
    assert (config.prediction_loss, config.hard_label_weight) == ("soft-ce", 0.0)
    _, config = parse_recipe_args(["--output_dir", "x", "--augment", "1", "--prediction_loss", "hinton",
                                   "--hard_label_weight", "0.2"])  # fmt: skip
    assert config.hard_label_weight == 0.2
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: x\ntransfer_rest_of_train: true\n")
    _, config = parse_recipe_args(["--config", str(path)])
    assert config.prediction_loss == "hinton"  # transfer text from the YAML file counts too
    path.write_text("output_dir: x\ntransfer_rest_of_train: true\nprediction_loss: soft-ce\n")
    _, config = parse_recipe_args(["--config", str(path)])
    assert (config.prediction_loss, config.hard_label_weight) == ("soft-ce", 0.0)


def test_one_recipe_list_the_runner_and_the_model_card_agree_on():
    from hrkd_trainer.model_card import _command
    from hrkd_trainer.recipe_configs import recipe_names, recipe_scripts
    from hrkd_trainer.run.recipes import RECIPES

    assert sorted(RECIPES) == recipe_names()
    assert "vader_mpnet.py" in recipe_scripts()
    for script in recipe_scripts():  # each recipe's script exists in recipes/
        assert os.path.isfile(os.path.join(ROOT, "recipes", script)), script
    assert _command("vader_mpnet.py --seed 1") == "recipes/vader_mpnet.py --seed 1"
    assert _command("__main__.py vader") == "__main__.py vader"
