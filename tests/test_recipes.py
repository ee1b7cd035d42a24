"""Recipe argument parsing and the paper recipes' fail-fast checks."""

import subprocess
import sys

import pytest

from hrkd_trainer.pipeline import parse_recipe_args


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: runs/x\nlearning_rate: 0.1\ntemperature: 2.0\nstudent_layers: 2\n")
    recipe, config = parse_recipe_args(
        ["--config", str(path), "--learning_rate", "0.5", "--distill_losses", "hidden", "prediction"]
    )
    assert config.learning_rate == 0.5 and config.temperature == 2.0 and recipe.student_layers == 2
    assert config.distill_losses == ["hidden", "prediction"]
    recipe, config = parse_recipe_args([str(path)])
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
