"""Every shell command in README.md and docs/*.md is checked against the code, so that the docs run as
written: the cheap ones run (recipes at a tiny size, with a tiny teacher on the real VADER data and
the no-KD baseline on; ``--help``; the Hub dry run; the case study), the others are parsed by the
parser that would read them (paper recipes that need GPU-sized data and Hub models, pushes that need
a token, the multi-hour benchmarks, whose flags must appear in their ``--help``)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hrkd_trainer.hub_cli import build_parser as hub_parser
from hrkd_trainer.run import parse_recipe_args

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TINY = [
    "--student_layers", "2", "--max_train_samples_per_domain", "8", "--max_eval_samples_per_domain", "4",
    "--per_domain_train_batch_size", "4", "--max_steps", "2", "--teacher_num_train_epochs", "1",
    "--max_length", "32", "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "1",
    "--disable_tqdm", "true", "--speed_batches", "1", "--use_cpu", "true", "--report_to", "none",
    "--baseline", "true",
]  # fmt: skip


def doc_commands() -> list[tuple[str, str]]:
    """``(file, command)`` for every line of every bash block (continuations joined, comments cut)."""
    out = []
    for path in DOCS:
        for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split("  #")[0].split(" # ")[0].strip()
                if command and not command.startswith("#"):
                    out.append((path.name, command))
    return out


COMMANDS = doc_commands()


def test_the_docs_have_commands_and_no_placeholders():
    assert len(COMMANDS) > 20
    assert not [c for _, c in COMMANDS if "..." in c or "<" in c], "commands must run as written"


def kind(command: str) -> str:
    words = shlex.split(command)
    if words[0] == "make":
        return "make"
    if words[0] == "pip":
        return "pip"
    if words[0] == "hrkd-study" or words[:3] == ["python", "-m", "hrkd_trainer.study"]:
        return "study"
    if words[0] == "hrkd-distill" or words[:3] == ["python", "-m", "hrkd_trainer"]:
        return "cli-parse"
    if "accelerate" in words[0] or "--push_to_hub" in words:
        return "recipe-parse"
    script = words[1] if words[0] == "python" else words[0]
    if script.startswith("benchmarks/"):
        return "benchmark"
    if script in ("hub_upload.py", "hrkd-hub-upload"):
        return "hub-run" if "--dry-run" in words else "hub-parse"
    if script == "-m" and words[2] == "hrkd_trainer.case_study":
        return "case-study"
    if script in (
        "recipes/amazon.py",
        "recipes/mnli.py",
        "recipes/vader_mpnet.py",
    ):  # need downloads or GPU-sized time
        return "recipe-parse"
    if script == "recipes/vader.py":
        return "help" if "--help" in words else "recipe-run"
    raise AssertionError(f"no check for the documented command {command!r}")


def test_every_documented_command_has_a_check():
    kinds = {kind(c) for _, c in COMMANDS}
    assert {"recipe-run", "recipe-parse", "benchmark", "study", "hub-run", "case-study", "help"} <= kinds


@pytest.mark.parametrize("command", [c for _, c in COMMANDS if kind(c) == "cli-parse"])
def test_documented_hrkd_distill_commands_parse(command, tmp_path):
    from hrkd_trainer.cli import resolve
    from hrkd_trainer.run.recipes import RECIPES

    words = shlex.split(command)
    words = words[3:] if words[0] == "python" else words[1:]
    if "--help" in words:
        return
    name, argv = resolve(words)
    recipe, _ = parse_recipe_args(argv, default_config=RECIPES[name].config)
    assert recipe.method in ("hrkd", "multi-domain", "tinybert", "meta-distill")


def test_documented_pip_routes_match_the_makefile():
    """The README's pip route installs the same torch as the Makefile, from PyTorch's CPU index."""
    makefile = (ROOT / "Makefile").read_text()
    torch_pin = re.search(r"TORCH \?= (\S+)", makefile).group(1)
    pips = [shlex.split(c) for _, c in COMMANDS if kind(c) == "pip"]
    assert any(torch_pin in words and "https://download.pytorch.org/whl/cpu" in words for words in pips)
    assert any(words[:2] == ["pip", "install"] and "." in words for words in pips)


def recipe_args(words: list[str]) -> tuple[str, list[str]]:
    """The recipe script and its arguments in a (possibly ``accelerate launch``) command."""
    index = next(i for i, w in enumerate(words) if w.startswith("recipes/") and w.endswith(".py"))
    return words[index], words[index + 1 :]


def localise(args: list[str], runs: Path, shared_run: Path) -> list[str]:
    """``runs/...`` paths into the test's folder; a documented ``--teacher runs/*/teacher`` is the
    shared tiny run's teacher."""
    out = []
    for i, word in enumerate(args):
        if i and args[i - 1] == "--teacher" and word.startswith("runs/"):
            out.append(str(shared_run / "teacher"))
        elif word.startswith("runs/"):
            out.append(str(runs / word[len("runs/") :]))
        else:
            out.append(word)
    return out


@pytest.fixture(scope="module")
def vader_recipe():
    sys.path.insert(0, str(ROOT / "recipes"))
    import vader

    return vader


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, bert_teacher_dir, vader_recipe):
    """``runs/vader`` of the docs: a tiny HRKD run on VADER that later commands read."""
    out = tmp_path_factory.mktemp("runs") / "vader"
    vader_recipe.main(
        ["--method", "hrkd", "--teacher_init", bert_teacher_dir, *TINY, "--output_dir", str(out)]
    )
    return out


RUNS = [c for _, c in COMMANDS if kind(c) == "recipe-run"]


@pytest.mark.parametrize("command", RUNS, ids=[c.split("vader.py")[-1].strip()[:60] for c in RUNS])
def test_documented_vader_commands_run_at_a_tiny_size(
    command, tmp_path, bert_teacher_dir, shared_run, vader_recipe
):
    _script, args = recipe_args(shlex.split(command))
    args = localise(args, tmp_path / "runs", shared_run)
    if "--config" in args:  # the documented YAML is the user's own: use the shipped one
        config = tmp_path / args[args.index("--config") + 1]
        shutil.copy(ROOT / "recipes" / "configs" / "vader.yaml", config)
        args[args.index("--config") + 1] = str(config)
    extra = [] if "--teacher" in args else ["--teacher_init", bert_teacher_dir]
    if "--teacher_cache" in args:
        extra += ["--teacher_cache_dir", str(tmp_path / "teacher_cache")]
    results = vader_recipe.main([*args, *extra, *TINY, "--output_dir", str(tmp_path / "run")])
    domains = results["domains"]
    for model in ("teacher", "student", "baseline"):
        assert set(results[model]["accuracy"]) == {*domains, "average"}, model
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "student").is_dir()
    given = shlex.split(command)
    if "--method" in given:
        assert results["method"] == given[given.index("--method") + 1]
    if "--teacher_type" in given and "--teacher" not in given:
        assert results["teacher_type"] == given[given.index("--teacher_type") + 1]


@pytest.mark.parametrize("command", [c for _, c in COMMANDS if kind(c) == "recipe-parse"])
def test_documented_commands_that_need_a_gpu_or_the_hub_parse(command, tmp_path):
    script, args = recipe_args(shlex.split(command))
    config = ROOT / "recipes" / "configs" / (Path(script).stem + ".yaml")
    if "--bf16" in args:  # a GPU command: transformers refuses bf16 without a GPU unless told to use the CPU
        args = [*args, "--use_cpu", "true"]
    recipe, settings = parse_recipe_args(args, default_config=str(config))
    assert recipe.method in ("hrkd", "multi-domain", "tinybert", "meta-distill")
    if "--push_to_hub" in args:
        assert settings.push_to_hub and settings.hub_model_id


@pytest.mark.parametrize("command", [c for _, c in COMMANDS if kind(c) == "benchmark"])
def test_documented_benchmark_flags_exist(command):
    words = shlex.split(command)
    script = words[1]
    help_text = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for i, word in enumerate(words[2:], start=2):
        if words[i - 1] == "--flags":  # flags handed on to every recipe run: the recipe must take them
            parse_recipe_args([*shlex.split(word), "--output_dir", "x"])
        elif word.startswith("--"):
            assert word in help_text, f"{script} has no {word}"


@pytest.mark.parametrize("command", [c for _, c in COMMANDS if kind(c) == "study"])
def test_documented_study_commands_parse_with_every_row(command):
    """A documented study command: its flags, preset, overrides and every row's recipe flags parse; the
    pages it fills have the study's block."""
    from hrkd_trainer.study.cli import build_parser, study_run

    words = shlex.split(command)
    args = build_parser().parse_args(words[3:] if words[0] == "python" else words[1:])
    if not torch.cuda.is_available():  # a GPU preset's bf16 is refused by TrainingArguments on a CPU
        args.set = [*args.set, "bf16=false"]
    run = study_run(args)
    run.check_flags()
    for doc in args.doc:
        assert f"<!-- study:{run.study.name}-{run.preset.name}:begin" in (ROOT / doc).read_text(), doc


@pytest.mark.parametrize("command", [c for _, c in COMMANDS if kind(c) == "hub-parse"])
def test_documented_pushes_parse(command):
    words = shlex.split(command)
    args = hub_parser().parse_args(words[2:] if words[0] == "python" else words[1:])
    assert args.repo_id


def test_documented_help_runs():
    for command in [c for _, c in COMMANDS if kind(c) == "help"]:
        words = shlex.split(command)
        out = subprocess.run(
            [sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0 and "usage:" in out.stdout


def test_documented_dry_run_and_case_study_run(shared_run, tmp_path):
    for command in [c for _, c in COMMANDS if kind(c) in ("hub-run", "case-study")]:
        words = localise(shlex.split(command), tmp_path / "runs", shared_run)
        words = [str(shared_run) if w == str(tmp_path / "runs" / "vader") else w for w in words]
        if "--dry-run" in words:
            words += ["--output-dir", str(tmp_path / "staged")]
        out = subprocess.run(
            [sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        if "--dry-run" in words:
            assert (tmp_path / "staged" / "README.md").exists()
        else:
            assert "tweets" in out.stdout and "layer" in out.stdout
