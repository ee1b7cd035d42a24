"""End-to-end behaviour of MultiDomainTrainer and HRKDTrainer on tiny random models."""

import os

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hrkd_trainer import (
    HRKDConfig,
    HRKDTrainer,
    MultiDomainModel,
    check_token_alignment,
    tokenize_multi_domain,
)
from hrkd_trainer.trainer import AUX_WEIGHTS_NAME

from .conftest import DOMAINS, LABELS, common

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def make_student(bert_student_dir, **kw):
    return MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0, **kw)


def test_distillation_loss_falls_and_logs_per_domain(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    train, dev = tokenized
    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    config = HRKDConfig(**common(tmp_path, "kd", num_train_epochs=8, learning_rate=3e-3, logging_steps=6))
    trainer = HRKDTrainer(
        model=make_student(bert_student_dir),
        teacher_model=teacher,
        args=config,
        train_dataset=train,
        eval_dataset=dev,
        processing_class=tokenizer,
    )
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    assert len(logs) == 8  # 6 steps per epoch, logged every 6 steps
    assert logs[-1]["loss"] < 0.6 * logs[0]["loss"], [e["loss"] for e in logs]
    for kind in ("embd", "attn", "hidn", "pred"):
        for domain in DOMAINS:
            assert f"{kind}_loss/{domain}" in logs[0]
    # logged components reproduce the logged total (eq. 5 with γ = 1), averaged over the same window
    for entry in logs:
        total = sum(entry[f"{k}_loss/{d}"] for k in ("embd", "attn", "hidn", "pred") for d in DOMAINS)
        assert total == pytest.approx(entry["loss"], rel=1e-3)
    # the teacher is frozen: no gradient, no change, eval mode
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training
    metrics = trainer.evaluate()
    assert "eval_avg_accuracy" in metrics and "eval_alpha_loss" in metrics


def test_gradient_accumulation_scales_the_loss(teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path):
    train, _ = tokenized
    config = HRKDConfig(
        **common(
            tmp_path,
            "ga",
            max_steps=1,
            learning_rate=0.0,
            gradient_accumulation_steps=2,
            lr_scheduler_type="constant",
        )
    )
    trainer = HRKDTrainer(
        model=make_student(bert_student_dir, **NO_DROPOUT),
        teacher_model=MultiDomainModel.from_pretrained(teacher_dir, **NO_DROPOUT),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
    )
    batches = []
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    for batch in loader:
        batches.append(batch)
        if len(batches) == 2:
            break
    trainer.model.train()
    with torch.no_grad():
        expected = sum(trainer.compute_loss(trainer.model, b).item() for b in batches) / 2
    trainer.train()
    logged = next(e["loss"] for e in trainer.state.log_history if "loss" in e)
    assert logged == pytest.approx(expected, rel=1e-4)


def test_export_has_student_only_and_checkpoints_resume_exactly(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    train, _ = tokenized

    def run(name, **kw):
        config = HRKDConfig(
            **common(
                tmp_path,
                name,
                max_steps=10,
                learning_rate=1e-2,
                save_strategy="steps",
                save_steps=2,
                lr_scheduler_type="constant",
                **kw,
            )
        )
        trainer = HRKDTrainer(
            model=make_student(bert_student_dir, **NO_DROPOUT),
            teacher_model=MultiDomainModel.from_pretrained(teacher_dir, **NO_DROPOUT),
            args=config,
            train_dataset=train,
            processing_class=tokenizer,
        )
        return trainer

    full = run("full")
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-8"
    assert (checkpoint / AUX_WEIGHTS_NAME).exists()  # projections live in checkpoints
    assert AutoModel.from_pretrained(str(checkpoint)) is not None  # checkpoints are exports too
    resumed = run("resumed")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    # step 8 lies in the second epoch (6 steps each): the resumed stream must be epoch 1's
    assert full.domain_batch_sampler.epoch == resumed.domain_batch_sampler.epoch == 1
    a = full.accelerator.unwrap_model(full.model).state_dict()
    b = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    export = tmp_path / "export"
    full.save_model(str(export))
    assert not (export / AUX_WEIGHTS_NAME).exists()
    assert sorted(p for p in os.listdir(export) if os.path.isdir(export / p)) == sorted(DOMAINS)
    reloaded = MultiDomainModel.from_pretrained(str(export))
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in full.student.state_dict().items())


def test_compatibility_errors(teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path):
    train, _ = tokenized
    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    config = HRKDConfig(**common(tmp_path, "e"))
    other = MultiDomainModel.from_encoder(bert_student_dir, ["alpha", "beta"], LABELS)
    with pytest.raises(ValueError, match="student domains"):
        HRKDTrainer(
            model=other, teacher_model=teacher, args=config, train_dataset=train, processing_class=tokenizer
        )
    with pytest.raises(ValueError, match="teacher has only 4 layers"):
        HRKDTrainer(
            model=make_student(bert_student_dir),
            teacher_model=teacher,
            args=HRKDConfig(**common(tmp_path, "e2", layer_map="1:2,2:8")),
            train_dataset=train,
            processing_class=tokenizer,
        )
    two_heads = MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, num_attention_heads=2)
    with pytest.raises(ValueError, match="attention_head_reduction mean"):
        HRKDTrainer(
            model=two_heads,
            teacher_model=teacher,
            args=config,
            train_dataset=train,
            processing_class=tokenizer,
        )
    trainer = HRKDTrainer(
        model=two_heads,
        teacher_model=teacher,
        args=HRKDConfig(**common(tmp_path, "e3", attention_head_reduction="mean", max_steps=1)),
        train_dataset=train,
        processing_class=tokenizer,
    )
    trainer.train()
    with pytest.raises(ValueError, match="unknown loss"):
        HRKDConfig(**common(tmp_path, "e4", distill_losses=["logits"]))


def test_token_alignment_check(tokenized):
    train, _ = tokenized
    aligned = train.add_column("teacher_input_ids", train["input_ids"])
    check_token_alignment(aligned)
    shifted = train.add_column("teacher_input_ids", [[*ids, 1] for ids in train["input_ids"]])
    with pytest.raises(ValueError, match="different numbers of tokens"):
        check_token_alignment(shifted)


def test_mpnet_teacher_with_its_own_tokenizer(mpnet_dir, bert_student_dir, tiny_data, tokenizer, tmp_path):
    teacher_tokenizer = AutoTokenizer.from_pretrained(mpnet_dir)
    train = tokenize_multi_domain(tiny_data["train"], tokenizer, 32, teacher_tokenizer)
    assert "teacher_input_ids" in train.column_names
    teacher = MultiDomainModel.from_encoder(mpnet_dir, DOMAINS, LABELS, seed=0)
    config = HRKDConfig(**common(tmp_path, "mp", max_steps=3, learning_rate=1e-3, hidden_projection="linear"))
    trainer = HRKDTrainer(
        model=make_student(bert_student_dir),
        teacher_model=teacher,
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
        teacher_processing_class=teacher_tokenizer,
    )
    trainer.train()
    logs = [e for e in trainer.state.log_history if "attn_loss/alpha" in e]
    assert len(logs) == 3 and all(e["attn_loss/alpha"] > 0 for e in logs)


def test_subset_of_losses_logs_only_those(teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path):
    train, _ = tokenized
    config = HRKDConfig(**common(tmp_path, "sub", max_steps=2, distill_losses=["embedding", "hidden"]))
    trainer = HRKDTrainer(
        model=make_student(bert_student_dir),
        teacher_model=MultiDomainModel.from_pretrained(teacher_dir),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
    )
    trainer.train()
    entry = next(e for e in trainer.state.log_history if "loss" in e)
    assert "hidn_loss/alpha" in entry and "embd_loss/alpha" in entry
    assert not any(k.startswith(("attn_loss", "pred_loss")) for k in entry)
    assert config.ddp_find_unused_parameters is True
    # no attention loss: nothing is captured, the student keeps SDPA
    assert trainer.student.encoder.config._attn_implementation == "sdpa"


def test_the_least_squares_map_recovers_a_linear_relation():
    from hrkd_trainer.distill_model import least_squares_map

    torch.manual_seed(0)
    x = torch.randn(500, 6)
    true_w, true_b = torch.randn(9, 6), torch.randn(9)
    weight, bias = least_squares_map(x, x @ true_w.T + true_b, ridge=0.0)
    assert torch.allclose(weight, true_w, atol=1e-4) and torch.allclose(bias, true_b, atol=1e-4)
    # a small ridge keeps a degenerate student (a constant feature) solvable
    x[:, 0] = 1.0
    weight, _ = least_squares_map(x, x @ true_w.T, ridge=1e-4)
    assert torch.isfinite(weight).all()


def test_lstsq_projections_start_closer_to_the_teacher_and_draw_no_random_numbers(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    """A 16-wide student against a 32-wide teacher: after --projection_init lstsq the hidden-state loss
    at the start is below the random start's and at a minimum over the maps; fitting draws nothing from
    the random state, so training from there is seeded as before."""
    from hrkd_trainer.components import component_losses

    train, _ = tokenized

    def trainer(init):
        config = HRKDConfig(**common(tmp_path, init, max_steps=1, projection_init=init,
                                     distill_losses=["embedding", "hidden", "prediction"]))  # fmt: skip
        return HRKDTrainer(
            model=MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0),
            teacher_model=MultiDomainModel.from_pretrained(teacher_dir), args=config, train_dataset=train,
            processing_class=tokenizer,
        )  # fmt: skip

    def start_loss(t):
        t.model.eval()
        t.student.eval()
        batch = t._prepare_inputs(t.data_collator([train[i] for i in range(24)]))
        with torch.no_grad():
            t.model.train()
            t.student.eval()  # no dropout: the loss of the states themselves
            out = t.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "domain_ids")})
            parts = component_losses(t.component_rows(out, t._teacher_forward(batch), batch), batch["domain_ids"],
                                     len(DOMAINS), len(t.layer_map.pairs))  # fmt: skip
        return (parts["hidn"].sum() + parts["embd"].sum()).item()

    random_start, fitted = trainer("random"), trainer("lstsq")
    state = torch.random.get_rng_state()
    fitted.fit_projections()
    assert torch.equal(torch.random.get_rng_state(), state)
    best = start_loss(fitted)
    assert best < 0.85 * start_loss(random_start)
    with torch.no_grad():  # the least-squares start is a minimum: moving the maps raises the loss
        for linear in fitted.accelerator.unwrap_model(fitted.model).projections.maps.values():
            linear.weight.add_(0.05 * torch.randn_like(linear.weight))
    assert start_loss(fitted) > best
    with pytest.raises(ValueError, match="--projection_init"):
        HRKDConfig(**common(tmp_path, "x", projection_init="pca"))
