"""HRKD's relational module inside HRKDTrainer (eq. 6-17): learning modes, the uniform ablation,
checkpoints and resume, logging, the ratio report and the case study."""

import json
import os

import pytest
import torch

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel
from hrkd_trainer.case_study import case_study, format_case_study, load_run
from hrkd_trainer.case_study import main as case_study_main
from hrkd_trainer.trainer import AUX_WEIGHTS_NAME

from .conftest import DOMAINS, LABELS, common

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def make_trainer(tmp_path, name, teacher_dir, student_dir, train, tokenizer, **kw):
    config = HRKDConfig(**common(tmp_path, name, **kw))
    return HRKDTrainer(
        model=MultiDomainModel.from_encoder(student_dir, DOMAINS, LABELS, seed=0, **NO_DROPOUT),
        teacher_model=MultiDomainModel.from_pretrained(teacher_dir, **NO_DROPOUT),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
    )


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return [k for k, v in module.state_dict().items() if not torch.equal(before[k], v)]


@pytest.fixture
def setup(teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path):
    train, _ = tokenized

    def build(name, **kw):
        kw.setdefault("learning_rate", 1e-3)
        return make_trainer(tmp_path, name, teacher_dir, bert_student_dir, train, tokenizer, **kw)

    return build


def test_frozen_keeps_the_module_while_learned_trains_it_in_its_own_group(setup):
    frozen = setup("frozen", max_steps=4, relational_mode="frozen")
    before, student_before = snapshot(frozen.relational), snapshot(frozen.student)
    frozen.train()
    assert changed(before, frozen.relational) == []
    assert all(not p.requires_grad and p.grad is None for p in frozen.relational.parameters())
    assert changed(student_before, frozen.student)  # the student did learn
    assert not any(g.get("hrkd_relational") for g in frozen.optimizer.param_groups)

    learned = setup(
        "learned", max_steps=4, relational_mode="learned", relational_learning_rate=5e-3,
        relational_weight_decay=0.1, lr_scheduler_type="constant",
    )  # fmt: skip
    before = snapshot(learned.relational)
    learned.train()
    moved = changed(before, learned.relational)
    assert any(k.startswith("graphs.") for k in moved) and any("bilinear" in k for k in moved), moved
    groups = [g for g in learned.optimizer.param_groups if g.get("hrkd_relational")]
    assert len(groups) == 1 and groups[0]["lr"] == 5e-3 and groups[0]["weight_decay"] == 0.1
    relational_ids = {id(p) for p in learned.relational.parameters()}
    assert {id(p) for p in groups[0]["params"]} == relational_ids
    others = [p for g in learned.optimizer.param_groups if not g.get("hrkd_relational") for p in g["params"]]
    assert not relational_ids & {id(p) for p in others}  # no parameter is in two groups


def test_uniform_ablation_is_multi_domain_kd_at_the_same_scale(setup):
    """Table 4's '- Domain Rel.' row trains exactly like the foundation's multi-domain KD (eq. 5)."""
    plain = setup("plain", max_steps=5, distill_losses=["embedding", "hidden", "attention", "prediction"])
    plain.train()
    uniform = setup(
        "uniform", max_steps=5, relational_mode="frozen", relational_ablations=["domain_relation"]
    )
    uniform.train()
    losses = [[e["loss"] for e in t.state.log_history if "loss" in e] for t in (plain, uniform)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    a, b = plain.student.state_dict(), uniform.student.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    entry = next(e for e in uniform.state.log_history if "loss" in e)
    assert entry["ratio/layer1/alpha"] == pytest.approx(1 / 3)
    # eq. 17 as written ('sum') is the same run at 1/D of the loss
    written = setup("sum", max_steps=1, relational_mode="frozen", relational_ablations=["domain_relation"],
                    ratio_scale="sum")  # fmt: skip
    written.train()
    first = next(e["loss"] for e in written.state.log_history if "loss" in e)
    assert first == pytest.approx(losses[0][0] / len(DOMAINS), rel=1e-5)


def test_hrkd_ratios_are_logged_and_reported(setup, tmp_path):
    trainer = setup("logged", max_steps=4, logging_steps=2, relational_mode="frozen")
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    assert len(logs) == 2
    for entry in logs:
        for position in ("embeddings", "layer1", "layer2"):
            row = [entry[f"ratio/{position}/{d}"] for d in DOMAINS]
            assert sum(row) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 < entry["ratio_entropy"] <= 1.0
        similarity = [entry[f"similarity/layer2/beta/{p}"] for p in ("embeddings", "layer1", "layer2")]
        assert sum(similarity) == pytest.approx(1.0, abs=1e-5)
        assert not any(k.startswith("similarity/embeddings") for k in entry)
    report = json.loads((tmp_path / "logged" / "ratio_history.json").read_text())
    assert report["positions"] == ["embeddings", "layer1", "layer2"] and report["domains"] == DOMAINS
    assert [h["step"] for h in report["history"]] == [2, 4]
    assert report["history"][0]["ratios"][1] == pytest.approx([logs[0][f"ratio/layer1/{d}"] for d in DOMAINS])
    png = tmp_path / "logged" / "ratios.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the student export never carries the relational module
    trainer.save_model(str(tmp_path / "export"))
    assert not any(
        "relational" in name or name == AUX_WEIGHTS_NAME for name in os.listdir(tmp_path / "export")
    )


def test_resume_gives_the_same_next_step_losses(setup, tmp_path):
    """Learned mode with relational dropout on: a run resumed from step 4 logs the same losses for
    steps 5-8 and ends with the same student, projections, module and optimizer state."""

    def run(name):
        return setup(
            name, max_steps=8, relational_mode="learned", relational_learning_rate=5e-3,
            save_strategy="steps", save_steps=4, hidden_projection="linear",
        )  # fmt: skip

    full = run("full")
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-4"
    assert (checkpoint / AUX_WEIGHTS_NAME).exists() and (checkpoint / "optimizer.pt").exists()
    resumed = run("resumed")
    resumed.train(resume_from_checkpoint=str(checkpoint))

    def losses(trainer):
        return {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e and e["step"] > 4}

    assert sorted(losses(resumed)) == [5, 6, 7, 8]
    assert losses(resumed) == pytest.approx(losses(full), rel=1e-5)
    a = full.accelerator.unwrap_model(full.model).state_dict()
    b = resumed.accelerator.unwrap_model(resumed.model).state_dict()
    assert a.keys() == b.keys() and any(k.startswith("weighting.balancer.") for k in a)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    # the ratio history of the resumed run still covers the steps before the checkpoint
    assert [h["step"] for h in resumed.ratio_history()] == list(range(1, 9))


def test_case_study_from_a_trained_run(setup, tmp_path, tokenizer, capsys):
    trainer = setup("cs", max_steps=2, relational_mode="learned")
    trainer.train()
    run = tmp_path / "cs-run"
    trainer.save_model(str(run / "student"))
    trainer.save_training_state(str(run / "training_state"))
    model, tok = load_run(str(run))
    texts = {"alpha": "good movie", "beta": "awful food service", "gamma": "nice phone"}
    rows = case_study(model, tok, [{"domain": d, "text": t} for d, t in reversed(texts.items())])
    assert [r.domain for r in rows] == DOMAINS  # put in domain order
    # r_{m,·} is a distribution over domains, α^H_{m,d} over positions 0..m
    for m in range(3):
        assert sum(r.ratios[m] for r in rows) == pytest.approx(1.0, abs=1e-5)
    assert [len(s) for s in rows[0].similarity] == [2, 3]
    assert all(sum(s) == pytest.approx(1.0, abs=1e-5) for r in rows for s in r.similarity)
    # eval mode: deterministic, and equal to the trained module's own computation on the same prototypes
    again = case_study(model, tok, [{"domain": d, "text": t} for d, t in texts.items()])
    assert [r.ratios for r in again] == [r.ratios for r in rows]
    assert "| beta | – | awful food service |" in format_case_study([rows])
    code = case_study_main([str(run), *(f"--text={d}={t}" for d, t in texts.items()), "--label", "beta=neg"])
    assert code == 0
    assert "| beta | neg | awful food service |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="exactly one example per domain"):
        case_study(model, tok, [{"domain": "alpha", "text": "x"}, {"domain": "alpha", "text": "y"}])
    with pytest.raises(ValueError, match="unknown domain"):
        case_study(model, tok, [{"domain": "delta", "text": "x"}])
    assert case_study_main([str(tmp_path / "nowhere"), "--text", "alpha=x"]) == 2


def test_relational_config_errors(tmp_path):
    with pytest.raises(ValueError, match="relational_mode"):
        HRKDConfig(**common(tmp_path, "x", relational_mode="meta"))
    with pytest.raises(ValueError, match="needs the relational module"):
        HRKDConfig(**common(tmp_path, "x", relational_ablations=["hierarchy"]))
    with pytest.raises(ValueError, match="unknown ablation"):
        HRKDConfig(**common(tmp_path, "x", relational_mode="frozen", relational_ablations=["graphs"]))
    with pytest.raises(ValueError, match="ratio_entropy_weight"):
        HRKDConfig(**common(tmp_path, "x", relational_mode="learned", ratio_entropy_weight=-1.0))


def test_ratio_gradient_switch_and_padding_in_prototypes(setup):
    """``ratio_gradient=False`` detaches the prototypes (the student sees the ratios as constants);
    ``prototype_mask_padding=False`` lets padding change the prototypes."""
    outputs = {}
    for name, kw in {
        "through": {},
        "detached": {"ratio_gradient": False},
        "padded": {"prototype_mask_padding": False},
    }.items():
        trainer = setup(name, max_steps=1, relational_mode="frozen", relational_dropout=0.0, **kw)
        batch = next(iter(trainer.get_train_dataloader()))
        model = trainer.model.train()
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "domain_ids")}
        outputs[name] = model(**inputs, relational_seed=0)
    assert outputs["through"].ratios.requires_grad
    assert not outputs["detached"].ratios.requires_grad
    assert torch.equal(outputs["through"].ratios, outputs["detached"].ratios)
    # padding moves the prototypes, which the similarity ratios show (the tiny GATs' ratios stay at
    # 1/D: on a complete graph every node attends alike unless the scores straddle LeakyReLU's kink)
    assert not torch.equal(outputs["through"].similarity[0], outputs["padded"].similarity[0])
    # under mixed precision the ratios stay fp32 (they weigh the losses)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(**inputs, relational_seed=0)
    assert mixed.ratios.dtype == torch.float32 and mixed.similarity[0].dtype == torch.float32
