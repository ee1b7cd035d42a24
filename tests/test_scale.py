"""Mixed precision with fp32 losses, the teacher under DeepSpeed, and the shipped Accelerate configs."""

from __future__ import annotations

import glob
import os

import pytest
import torch
import yaml

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel
from hrkd_trainer.distributed import teacher_deepspeed_config

from .conftest import DOMAINS, LABELS, common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bf16_autocast_keeps_every_loss_in_fp32(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    train, _ = tokenized
    losses = {}
    for precision in ("fp32", "bf16"):
        bf16 = precision == "bf16"
        config = HRKDConfig(
            **common(tmp_path, precision, bf16=bf16, relational_mode="frozen", max_steps=2, logging_steps=1)
        )
        trainer = HRKDTrainer(
            model=MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0),
            teacher_model=MultiDomainModel.from_pretrained(teacher_dir),
            args=config,
            train_dataset=train,
            processing_class=tokenizer,
        )
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "domain_ids")}
        # what Accelerate's mixed-precision forward does to the student during training
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        with autocast, torch.no_grad():
            teacher = trainer._teacher_forward(batch)
            student = trainer.model(**inputs, relational_seed=1)
            components = trainer.component_losses(student, teacher, batch)
            loss = trainer.compute_loss(trainer.model, batch)
        # the student ran in bf16 (its projections are bf16 matmuls) ...
        assert student.projected[1].dtype == (torch.bfloat16 if bf16 else torch.float32)
        # ... but every loss component, the ratios and the total are fp32
        assert all(v.dtype == torch.float32 for v in components.values())
        assert student.ratios.dtype == torch.float32 and loss.dtype == torch.float32
        losses[precision] = loss.item()
        trainer.train()  # and a real bf16 run trains with finite losses
        logged = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        assert len(logged) == 2 and all(torch.isfinite(torch.tensor(logged)))
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=5e-2)
    assert losses["bf16"] != losses["fp32"]  # autocast really was on


def test_teacher_deepspeed_config_follows_trl():
    student = {
        "zero_optimization": {"stage": 2, "overlap_comm": True},
        "optimizer": {"type": "AdamW"},
        "scheduler": {"type": "WarmupLR"},
        "bf16": {"enabled": True},
        "train_micro_batch_size_per_gpu": 8,
    }
    teacher = teacher_deepspeed_config(student, hidden_size=768)
    assert teacher["zero_optimization"] == {"stage": 0}  # nothing to shard without optimizer states
    assert "optimizer" not in teacher and "scheduler" not in teacher
    assert teacher["bf16"] == {"enabled": True} and teacher["train_micro_batch_size_per_gpu"] == 8
    assert student["zero_optimization"]["stage"] == 2 and "optimizer" in student  # not modified
    zero3 = teacher_deepspeed_config({"zero_optimization": {"stage": 3}}, hidden_size=768)[
        "zero_optimization"
    ]
    assert zero3["stage"] == 3  # sharded like the student
    assert zero3["stage3_param_persistence_threshold"] == 7680
    assert zero3["reduce_bucket_size"] == 768 * 768


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "recipes", "accelerate", "*.yaml"))))
def test_shipped_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(path)
    with open(path) as handle:
        raw = yaml.safe_load(handle)
    assert config.distributed_type.value == raw["distributed_type"]
    assert config.mixed_precision == "no"  # precision comes from --bf16/--fp16
    if raw["distributed_type"] == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] in (2, 3)
    if raw["distributed_type"] == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
