"""Sharded engines (issue 18): HRKD with the student sharded by torch's FSDP2 over two CPU processes
(gloo) against one unsharded process on the same global batch; saving through the gathered full
state dict, restoring into the shards, and the export loaded in this (fresh) process. The gathering
helpers are also tested alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import safetensors.torch
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel
from hrkd_trainer.export import HEADS_WEIGHTS
from hrkd_trainer.sharded import is_sharded, module_path, part_state, split_student_state, with_prefix
from hrkd_trainer.training_state import AUX_WEIGHTS_NAME

from .conftest import DOMAINS, LABELS, common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "sharded_worker.py")


def _run(command: list[str], out: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    with open(os.path.join(out, "report.json")) as handle:
        return json.load(handle)


def torchrun(port: int) -> list[str]:
    """Two local processes over gloo (torch's own launcher: Accelerate runs FSDP only on GPUs)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, teacher_dir, bert_student_dir, tokenized):
    tmp = tmp_path_factory.mktemp("fsdp2")
    train, _ = tokenized
    train.save_to_disk(str(tmp / "train"))
    common_args = ["--teacher", teacher_dir, "--student", bert_student_dir, "--train", str(tmp / "train")]
    common_args += ["--steps", "3"]
    one = _run([sys.executable, WORKER, *common_args, "--out", str(tmp / "one"), "--per_domain_batch", "4"],
               str(tmp / "one"))  # fmt: skip
    launch = torchrun(29531)
    two = _run([*launch, WORKER, *common_args, "--out", str(tmp / "two"), "--per_domain_batch", "2", "--shard"],
               str(tmp / "two"))  # fmt: skip
    return tmp, one, two


def test_fsdp2_trains_like_one_process_with_an_unsharded_eval_teacher(runs):
    tmp, one, two = runs
    assert (one["processes"], one["sharded"]) == (1, False)
    assert (two["processes"], two["sharded"], two["parameter_type"]) == (2, True, "DTensor")
    assert not two["teacher_sharded"] and not two["teacher_training"] and not two["teacher_requires_grad"]
    # the loss is computed from global per-domain sums: the same on the sharded run
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-5)
    final_one, final_two = torch.load(tmp / "one" / "final.pt"), torch.load(tmp / "two" / "final.pt")
    assert final_one.keys() == final_two.keys()
    assert any(k.startswith("weighting.balancer.") for k in final_two)
    initial = torch.load(tmp / "one" / "initial.pt")
    moved = {name: (final_one[name] - initial[name]).abs().max().item() for name in final_one}
    # the comparison is not vacuous: training moved the student and the relational module far beyond it
    assert max(v for k, v in moved.items() if k.startswith("weighting.balancer.")) > 1e-3
    assert max(v for k, v in moved.items() if k.startswith("student.")) > 1e-3
    for name in final_one:
        assert (final_one[name] - final_two[name]).abs().max() <= 2e-5, name


def test_the_training_state_for_case_studies_is_gathered_from_the_shards(runs):
    from hrkd_trainer.distill_model import TRAINING_STATE_WEIGHTS, DistillationModel

    tmp, _, _ = runs
    gathered = torch.load(tmp / "two" / "final.pt")
    written = safetensors.torch.load_file(tmp / "two" / "training_state" / TRAINING_STATE_WEIGHTS)
    assert any(k.startswith("relational.") for k in written)
    for key, value in written.items():
        name, rest = key.split(".", 1)
        path = {"relational": "weighting.balancer", "projections": "projections"}[name]
        assert torch.equal(value, gathered[f"{path}.{rest}"]), key
    student = MultiDomainModel.from_pretrained(tmp / "two" / "export")
    rebuilt = DistillationModel.from_training_state(student, tmp / "two" / "training_state")
    assert rebuilt.relational is not None


def test_a_teacher_sharded_for_inference_gives_the_same_training(runs, teacher_dir, bert_student_dir):
    """--shard_teacher: the frozen teacher sharded per block too (a teacher larger than one device)."""
    tmp, one, _ = runs
    common_args = ["--teacher", teacher_dir, "--student", bert_student_dir, "--train", str(tmp / "train")]
    launch = torchrun(29533)
    out = tmp / "two_teacher"
    both = _run([*launch, WORKER, *common_args, "--steps", "3", "--out", str(out), "--per_domain_batch", "2",
                 "--shard", "--shard_teacher"], str(out))  # fmt: skip
    assert both["sharded"] and both["teacher_sharded"]
    assert not both["teacher_training"] and not both["teacher_requires_grad"]
    assert both["losses"] == pytest.approx(one["losses"], rel=1e-5)


def test_a_checkpoint_restores_the_shards_exactly(runs):
    _, one, two = runs
    for report in (one, two):
        assert report["restored_keys_match"]
        assert report["restored_max_difference"] == 0.0


def test_the_sharded_export_is_the_gathered_student_and_loads_with_auto_classes(runs, tokenizer):
    tmp, _, _ = runs
    gathered = torch.load(tmp / "two" / "final.pt")
    export = tmp / "two" / "export"  # the checkpoint (compact) and the final export (one copy per domain)
    encoder = safetensors.torch.load_file(export / "model.safetensors")
    assert encoder.keys() == part_state(gathered, "student.encoder").keys()
    for key, value in encoder.items():
        assert torch.equal(value, gathered[f"student.encoder.{key}"]), key
    modules = safetensors.torch.load_file(export / AUX_WEIGHTS_NAME)
    assert any(k.startswith("relational.") for k in modules) and any(
        k.startswith("projections.") for k in modules
    )
    for key, value in modules.items():
        name, rest = key.split(".", 1)
        path = {"relational": "weighting.balancer", "projections": "projections"}[name]
        assert torch.equal(value, gathered[f"{path}.{rest}"]), key
    batch = tokenizer(["good film", "a bad book"], return_tensors="pt", padding=True)
    assert AutoModel.from_pretrained(export)(**batch).last_hidden_state.isfinite().all()
    for domain in DOMAINS:
        sharded = AutoModelForSequenceClassification.from_pretrained(
            tmp / "two" / "full", subfolder=domain
        ).eval()
        single = AutoModelForSequenceClassification.from_pretrained(
            tmp / "one" / "full", subfolder=domain
        ).eval()
        with torch.no_grad():
            logits_two, logits_one = sharded(**batch).logits, single(**batch).logits
        assert torch.allclose(logits_two, logits_one, atol=1e-3), domain


def test_gathered_state_dict_is_split_into_export_parts(
    bert_student_dir, teacher_dir, tokenized, tokenizer, tmp_path
):
    """What ``_save(state_dict=...)`` does with a gathered dict, without processes: the export written
    from the dict equals the one written from the model, and the dict's training modules are saved."""
    from hrkd_trainer.modeling import load_multi_domain

    train, _ = tokenized
    student = MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0)
    trainer = HRKDTrainer(
        model=student, teacher_model=load_multi_domain(teacher_dir), train_dataset=train, processing_class=tokenizer,
        args=HRKDConfig(**common(tmp_path, "run", relational_mode="learned")),
    )  # fmt: skip
    root = trainer.accelerator.unwrap_model(trainer.model)
    assert not is_sharded(root)
    assert module_path(root, trainer.student) == "student"
    assert module_path(root, trainer.training_modules()["relational"]) == "weighting.balancer"
    state = {k: v.clone() for k, v in root.state_dict().items()}
    state = {k: (v + 0.5 if v.is_floating_point() else v) for k, v in state.items()}  # not the model's own
    trainer._saving_checkpoint = True  # a checkpoint: the compact layout and the training modules
    trainer._save(str(tmp_path / "from_dict"), state_dict=state)
    trainer._saving_checkpoint = False  # the export: one AutoModel-loadable copy per domain
    trainer._save(str(tmp_path / "export"), state_dict=state)
    encoder, heads = split_student_state(trainer.student, part_state(state, "student"))
    for folder in ("from_dict", "export"):
        written = safetensors.torch.load_file(tmp_path / folder / "model.safetensors")
        assert encoder.keys() == written.keys()
        for key, value in written.items():
            assert torch.equal(value, state[f"student.encoder.{key}"]), key
    head = safetensors.torch.load_file(tmp_path / "export" / DOMAINS[0] / "model.safetensors")
    assert head.keys() == heads[DOMAINS[0]].keys()
    for key, value in head.items():
        assert torch.equal(value, heads[DOMAINS[0]][key]), key
    compact = safetensors.torch.load_file(tmp_path / "from_dict" / HEADS_WEIGHTS)  # heads without the encoder
    assert {k.split(".", 1)[0] for k in compact} == set(DOMAINS) and not (
        tmp_path / "from_dict" / DOMAINS[0]
    ).exists()
    for key, value in compact.items():
        domain, rest = key.split(".", 1)
        assert torch.equal(value, heads[domain][rest]), key
    assert with_prefix({"a": 1}, "x") == {"x.a": 1} and with_prefix({"a": 1}, "") == {"a": 1}
    modules = safetensors.torch.load_file(tmp_path / "from_dict" / AUX_WEIGHTS_NAME)
    for key, value in modules.items():
        name, rest = key.split(".", 1)
        path = {"relational": "weighting.balancer", "projections": "projections"}[name]
        assert torch.equal(value, state[f"{path}.{rest}"]), key
    with pytest.raises(KeyError, match="encoder"):
        split_student_state(trainer.student, {"heads.x.weight": torch.zeros(1)})


def test_zero3_without_gathered_weights_writes_no_export_and_says_why(
    bert_student_dir, teacher_dir, tokenized, tokenizer, tmp_path, caplog
):
    from hrkd_trainer.modeling import load_multi_domain

    train, _ = tokenized
    trainer = HRKDTrainer(
        model=MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0),
        teacher_model=load_multi_domain(teacher_dir), train_dataset=train, processing_class=tokenizer,
        args=HRKDConfig(**common(tmp_path, "run")),
    )  # fmt: skip
    trainer._save(str(tmp_path / "empty"), state_dict={})  # what Trainer passes when ZeRO-3 cannot gather
    assert not os.path.exists(tmp_path / "empty" / "model.safetensors")
    assert "zero_to_fp32" in caplog.text


def test_gpu_check_skips_what_this_machine_cannot_run_and_says_why(tmp_path):
    from .test_significance import benchmark_module

    check = benchmark_module("gpu_check")
    assert check.skip_reason("multi_gpu", "cpu") is None
    assert "CUDA" in check.skip_reason("fsdp", "cpu")
    for config in ("deepspeed_zero2", "deepspeed_zero3"):
        assert check.skip_reason(config, "cpu")
    command = check.recipe_command("fsdp", str(tmp_path / "run"), "cuda", "--resume_from_checkpoint", "true")
    assert command[command.index("--config_file") + 1].endswith("recipes/accelerate/fsdp.yaml")
    assert command[-2:] == ["--resume_from_checkpoint", "true"] and "--bf16" in command
    report = {"device": "cpu", "command": "x", "seconds": 1.0, "engines": {
        "multi_gpu": {"status": "passed", "resumed_from": "/w/student_checkpoints/checkpoint-4",
                      "fresh_load": {"a": {"accuracy": 0.5}}, "reported_accuracy": {"a": 0.5}},
        "fsdp": {"status": "skipped", "reason": check.skip_reason("fsdp", "cpu")},
    }}  # fmt: skip
    table = check.markdown(report)
    assert "| multi_gpu | passed | checkpoint-4 | a 50.0/50.0 |" in table and "| fsdp | skipped |" in table
