"""Bad input fails before any training, with the flag or file, the value and the fix, and no
traceback: value ranges, the per-device batch flag, layer counts, the layer map, missing data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hrkd_trainer.run import parse_recipe_args
from hrkd_trainer.run.stages import check_models, load_user_data


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--learning_rate", "-1"], "--learning_rate must be in [0.0, inf], got -1.0"),
        (["--teacher_learning_rate", "0"], "--teacher_learning_rate must be in (0.0, inf], got 0.0"),
        (["--student_layers", "0"], "--student_layers must be in [1, inf], got 0"),
        (["--few_shot_fraction", "1.5"], "--few_shot_fraction must be in (0.0, 1.0], got 1.5"),
        (["--num_train_epochs", "-2"], "--num_train_epochs must be in [0.0, inf], got -2.0"),
        (["--max_train_samples_per_domain", "0"], "--max_train_samples_per_domain must be in [1, inf]"),
    ],
)
def test_values_out_of_range_are_refused_while_parsing(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(["--output_dir", "x", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_per_device_batch_flag_names_the_per_domain_one(tmp_path):
    for argv in (["--per_device_train_batch_size", "64"], ["--per_device_train_batch_size=64"]):
        with pytest.raises(SystemExit, match="Pass --per_domain_train_batch_size N instead"):
            parse_recipe_args(["--output_dir", "x", *argv])
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: x\nper_device_train_batch_size: 64\n")
    with pytest.raises(SystemExit, match=r"c.yaml: per_device_train_batch_size is not used"):
        parse_recipe_args(["--config", str(path)])


def test_layer_counts_and_the_layer_map_are_checked_from_the_configs(bert_teacher_dir, bert_student_dir):
    # the tiny teacher has 4 layers, the tiny student 2
    recipe, config = parse_recipe_args(["--output_dir", "x", "--student_layers", "9"])
    with pytest.raises(
        SystemExit, match=r"--student_layers 9: .* has only 4 layers; pass --student_layers 1..4"
    ):
        check_models(recipe, config, bert_teacher_dir, bert_teacher_dir)
    recipe, config = parse_recipe_args(
        ["--output_dir", "x", "--student_layers", "2", "--layer_map", "1:2,2:7"]
    )
    with pytest.raises(
        SystemExit, match=r"--layer_map '1:2,2:7' does not fit a 2-layer student and a 4-layer"
    ):
        check_models(recipe, config, bert_teacher_dir, bert_teacher_dir)
    recipe, config = parse_recipe_args(
        ["--output_dir", "x", "--student", bert_student_dir, "--student_layers", "3"]
    )
    with pytest.raises(SystemExit, match=r"cut from --student .* only 2 layers"):
        check_models(recipe, config, bert_teacher_dir, bert_student_dir)
    recipe, config = parse_recipe_args(["--output_dir", "x", "--student_layers", "2"])
    check_models(recipe, config, bert_teacher_dir, bert_teacher_dir)  # fits: no error
    with pytest.raises(
        SystemExit, match=r"the default teacher '/no/such/model': cannot read its config.json"
    ):
        check_models(recipe, config, "/no/such/model", bert_teacher_dir)


def test_missing_data_is_one_line_with_the_fix(tmp_path):
    recipe, _ = parse_recipe_args(["--output_dir", "x", "--data_path", str(tmp_path / "none.tar.gz")])
    from hrkd_trainer.data import load_vader

    with pytest.raises(
        SystemExit, match=r"cannot load the data: VADER archive not found: .*none.tar.gz. Pass --data_path"
    ):
        load_user_data(lambda r: load_vader(archive=r.data_path), recipe)


def test_the_recipe_prints_no_traceback_for_a_user_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "recipes/vader.py", "--output_dir", str(tmp_path), "--student_layers", "99"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--student_layers 99" in result.stderr and "pass --student_layers 1..6" in result.stderr
