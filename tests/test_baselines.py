"""The paper's baseline teachers and distillers (Tables 2-3) on tiny random models."""

import math

import pytest
import torch
from torch.nn import functional as F

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainArguments, MultiDomainModel
from hrkd_trainer.collate import MultiDomainCollator
from hrkd_trainer.data.tokenized import TokenizedData, add_instance_weights
from hrkd_trainer.lora import LoraSettings, add_lora, has_lora, merge_lora
from hrkd_trainer.losses import RowLoss
from hrkd_trainer.meta_trainers import (
    MetaDistillConfig,
    MetaDistillTrainer,
    MetaTeacherConfig,
    MetaTeacherTrainer,
    meta_teacher_loss,
    weighted_instance_mean,
)
from hrkd_trainer.metakd import DomainCorruption, encoder_prototype_scores
from hrkd_trainer.modeling import DomainExperts, load_multi_domain
from hrkd_trainer.per_domain import distill_per_domain
from hrkd_trainer.run import parse_recipe_args
from hrkd_trainer.sampling import MixedBatchSampler
from hrkd_trainer.teacher_training import train_teacher

from .conftest import DOMAINS, LABELS, common

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def batch_of(dataset, rows):
    collate = MultiDomainCollator(0)
    columns = dataset.column_names
    return collate([dict(zip(columns, (dataset[i][c] for c in columns))) for i in rows])


def tokenized_data(tokenized):
    train, dev = tokenized
    return TokenizedData(train=train, dev=dev, test=dev, domains=list(DOMAINS), labels=list(LABELS))


# ---------------------------------------------------------------------------- sampling
def test_mixed_batch_sampler_pooled_and_one_domain():
    ids = [0] * 5 + [1] * 3 + [2] * 8
    pooled = MixedBatchSampler(ids, 4, "pooled", seed=3)
    batches = list(pooled)
    assert len(batches) == len(pooled) == 4 and all(len(b) <= 4 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(16))
    assert any(len({ids[i] for i in b}) > 1 for b in batches)  # domains mixed in a batch

    mtl = MixedBatchSampler(ids, 4, "one-domain", seed=3)
    batches = list(mtl)
    assert len(batches) == len(mtl) == 2 + 1 + 2
    assert all(len({ids[i] for i in b}) == 1 for b in batches)  # each step trains one domain
    assert sorted(i for b in batches for i in b) == list(range(16))
    assert [ids[b[0]] for b in batches] != [0, 0, 1, 2, 2]  # batches of all domains shuffled together
    assert list(mtl) == batches  # a pure function of (seed, epoch)
    mtl.set_epoch(1)
    assert list(mtl) != batches
    with pytest.raises(ValueError, match="mode"):
        MixedBatchSampler(ids, 4, "every-domain")


# ---------------------------------------------------------------------------- models
def test_shared_head_ties_reloads_and_takes_the_plain_mean(bert_teacher_dir, tokenized, tmp_path):
    model = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, LABELS, seed=0, shared_head=True)
    assert model.shared_head and model.heads["alpha"] is model.heads["gamma"]
    batch = batch_of(tokenized[0], [0, 1, 50, 100])
    out = model(**batch)
    assert out.loss.item() == pytest.approx(F.cross_entropy(out.logits, batch["labels"]).item(), rel=1e-6)
    model.save_pretrained(str(tmp_path / "m"))
    again = load_multi_domain(str(tmp_path / "m"))
    assert again.shared_head and again.heads["alpha"] is again.heads["beta"]
    model.eval(), again.eval()
    assert torch.allclose(again(**batch).logits, model(**batch).logits, atol=1e-6)
    separate = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, LABELS, seed=0)
    assert not separate.shared_head


def test_restricted_view_and_experts_route_rows(teacher_dir, tokenized, tmp_path):
    teacher = MultiDomainModel.from_pretrained(teacher_dir).eval()
    batch = batch_of(tokenized[0], [0, 1, 50, 51, 100])  # alpha, alpha, beta, beta, gamma
    full = teacher(**batch).logits
    beta = teacher.restrict(["beta"])
    assert beta.encoder is teacher.encoder and beta.heads["beta"] is teacher.heads["beta"]
    rows = torch.tensor([2, 3])
    view = beta(
        batch["input_ids"][rows], batch["attention_mask"][rows], None, torch.zeros(2, dtype=torch.long)
    )
    assert torch.allclose(view.logits, full[rows], atol=1e-6)

    experts = DomainExperts({d: teacher.restrict([d]) for d in DOMAINS}, DOMAINS)
    assert torch.allclose(
        experts(**{k: v for k, v in batch.items() if k != "labels"}).logits, full, atol=1e-6
    )
    experts.save_pretrained(str(tmp_path / "experts"))
    again = load_multi_domain(str(tmp_path / "experts"))
    assert isinstance(again, DomainExperts) and again.domains == DOMAINS
    assert torch.allclose(
        again.eval()(**{k: v for k, v in batch.items() if k != "labels"}).logits, full, atol=1e-5
    )
    with pytest.raises(ValueError, match="tinybert or meta-distill"):
        again.restrict(DOMAINS)


# ---------------------------------------------------------------------------- teachers
@pytest.mark.parametrize("kind", ["single", "mix", "mtl"])
def test_each_teacher_type_learns(kind, bert_teacher_dir, tokenized, tokenizer, tmp_path):
    data = tokenized_data(tokenized)
    args = MultiDomainArguments(
        **common(
            tmp_path, "t", num_train_epochs=6, learning_rate=3e-3, logging_steps=2, save_strategy="epoch"
        )
    )
    trained = train_teacher(kind, bert_teacher_dir, data, args, tokenizer, str(tmp_path / "teacher"))
    model = trained.model
    assert isinstance(model, DomainExperts) == (kind == "single")
    assert getattr(model, "shared_head", False) == (kind == "mix")
    again = load_multi_domain(str(tmp_path / "teacher"))
    assert again.domains == DOMAINS
    from hrkd_trainer.evaluation import evaluate_per_domain

    accuracy = evaluate_per_domain(again, data.dev, tokenizer.pad_token_id)
    assert accuracy["average"] > 0.7, accuracy
    if kind == "single":  # each domain's checkpoints go once its expert is exported (it never resumes)
        assert not any((tmp_path / "t" / domain).exists() for domain in DOMAINS)


def test_meta_teacher_loss_golden():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    domain_logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    corrupted = torch.tensor([2, 1])
    weights = torch.tensor([0.5, 0.9])
    ce = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(1))]
    dom = [-math.log(1 / (math.e + 2)), math.log(3)]
    expected = (0.5 * (ce[0] + 0.25 * dom[0]) + 0.9 * (ce[1] + 0.25 * dom[1])) / 2
    loss, task, domain = meta_teacher_loss(logits, labels, domain_logits, corrupted, weights, 0.25)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert task.item() == pytest.approx(sum(ce) / 2, rel=1e-6) and domain.item() == pytest.approx(
        sum(dom) / 2
    )
    unweighted, _, _ = meta_teacher_loss(logits, labels, domain_logits, corrupted, None, 0.0)
    assert unweighted.item() == pytest.approx(sum(ce) / 2, rel=1e-6)


def test_meta_teacher_uses_shuffled_domain_ids_and_learns(
    bert_teacher_dir, tokenized, tokenizer, tmp_path, monkeypatch
):
    import hrkd_trainer.meta_trainers as meta_trainers

    seen = []
    original = meta_trainers.corrupted_domain_ids

    def record(domain_ids, generator=None):
        out = original(domain_ids, generator)
        seen.append((domain_ids.clone(), out.clone()))
        return out

    monkeypatch.setattr(meta_trainers, "corrupted_domain_ids", record)
    data = tokenized_data(tokenized)
    scores = torch.linspace(0.2, 1.0, len(data.train))
    data = add_instance_weights(data, scores)
    model = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, LABELS, seed=0, shared_head=True)
    args = MetaTeacherConfig(
        **common(tmp_path, "meta", num_train_epochs=6, learning_rate=3e-3, logging_steps=3)
    )
    trainer = MetaTeacherTrainer(
        model=model, args=args, train_dataset=data.train, eval_dataset=data.dev, processing_class=tokenizer
    )
    before = {k: v.clone() for k, v in trainer.training_modules()["corruption"].state_dict().items()}
    trainer.train()
    assert args.domain_sampling == "pooled" and seen
    for ids, corrupted in seen:  # the corruption targets are the batch's own ids, permuted
        assert sorted(ids.tolist()) == sorted(corrupted.tolist())
    assert any(not torch.equal(ids, corrupted) for ids, corrupted in seen)
    logs = [e for e in trainer.state.log_history if "task_loss" in e]
    assert logs[-1]["task_loss"] < 0.7 * logs[0]["task_loss"] and "domain_loss" in logs[0]
    after = trainer.training_modules()["corruption"].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the corruption branch trains (γ1 > 0)
    assert trainer.evaluate()["eval_avg_accuracy"] > 0.7
    trainer.save_domain_corruption(str(tmp_path / "export"))
    loaded = DomainCorruption.load(str(tmp_path / "export"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in after.items())
    assert DomainCorruption.load(str(tmp_path)) is None
    with pytest.raises(ValueError, match="instance_weights"):
        MetaTeacherTrainer(model=model, args=args, train_dataset=tokenized[0], processing_class=tokenizer)


def test_encoder_prototype_scores_match_the_formula(bert_teacher_dir, tiny_data):
    from transformers import AutoModel, AutoTokenizer

    from hrkd_trainer.metakd import mean_token_embeddings, prototype_scores

    train = tiny_data["train"].select(range(0, 144, 8))
    scores = encoder_prototype_scores(bert_teacher_dir, train, max_length=16, batch_size=5, device="cpu")
    tok = AutoTokenizer.from_pretrained(bert_teacher_dir)
    encoder = AutoModel.from_pretrained(bert_teacher_dir).eval()
    embeddings = []
    for text in train["text"]:  # one at a time: no padding at all
        batch = tok(text, truncation=True, max_length=16, return_tensors="pt")
        with torch.no_grad():
            embeddings.append(mean_token_embeddings(encoder(**batch).last_hidden_state)[0])
    expected = prototype_scores(torch.stack(embeddings), torch.tensor(train["domain"]), 3)
    assert torch.allclose(scores, expected, atol=1e-5)


# ---------------------------------------------------------------------------- distillers
def test_weighted_instance_mean_is_per_instance():
    rows = RowLoss(total=torch.tensor([2.0, 9.0, 4.0]), count=torch.tensor([2.0, 3.0, 1.0]))  # means 1, 3, 4
    weights = torch.tensor([1.0, 0.0, 0.5])
    assert weighted_instance_mean(rows, weights).item() == pytest.approx((1 * 1 + 0 * 3 + 0.5 * 4) / 3)
    # not the batch-averaged weighting of the EasyNLP port: mean(λ) · (Σ total / Σ count)
    assert weighted_instance_mean(rows, weights).item() != pytest.approx(0.5 * 15 / 6)


def test_meta_distill_weights_each_instance(teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path):
    data = tokenized_data(tokenized).restrict("beta")
    teacher = MultiDomainModel.from_pretrained(teacher_dir, **NO_DROPOUT).restrict(["beta"])
    torch.manual_seed(0)
    corruption = DomainCorruption(3, teacher.hidden_size)
    n = len(data.train)
    data = add_instance_weights(data, torch.zeros(n))
    student = MultiDomainModel.from_encoder(bert_student_dir, ["beta"], LABELS, seed=0, **NO_DROPOUT)
    config = MetaDistillConfig(
        **common(tmp_path, "md", num_train_epochs=6, learning_rate=3e-3, logging_steps=3)
    )
    trainer = MetaDistillTrainer(
        model=student, teacher_model=teacher, args=config, train_dataset=data.train, processing_class=tokenizer,
        teacher_corruption=corruption, domain_index=1,
    )  # fmt: skip
    model = trainer.model
    model.train()
    batch = batch_of(data.train, range(6))

    def loss_with(t):
        inputs = {**batch, "instance_weights": torch.tensor(t, dtype=torch.float)}
        with torch.no_grad():
            return trainer.compute_loss(model, inputs).item()

    assert loss_with([-1.0] * 6) == 0.0  # every λ_i = (1 + t_i)·w_i = 0
    base = loss_with([0.0] * 6)
    assert base > 0 and loss_with([1.0] * 6) == pytest.approx(2 * base, rel=1e-5)  # linear in (1 + t)
    only = [loss_with([0.0 if i == j else -1.0 for i in range(6)]) for j in range(6)]
    assert sum(only) == pytest.approx(base, rel=1e-5)  # the loss is a sum of per-instance terms
    assert len({round(x, 6) for x in only}) > 1
    trainer.train()
    logs = [e for e in trainer.state.log_history if "hidn_loss" in e]
    assert {"embd_loss", "attn_loss", "dom_loss", "instance_weight"} <= set(logs[0])
    assert logs[-1]["loss"] < 0.7 * logs[0]["loss"], [e["loss"] for e in logs]
    with pytest.raises(ValueError, match="stage 2"):
        MetaDistillTrainer(
            model=student, teacher_model=teacher,
            args=MetaDistillConfig(output_dir=str(tmp_path), distill_losses=["prediction"]),
        )  # fmt: skip


@pytest.mark.parametrize("method", ["tinybert", "meta-distill"])
def test_per_domain_distillers_produce_one_student_per_domain(
    method, teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    data = tokenized_data(tokenized)
    if method == "meta-distill":
        data = add_instance_weights(
            data, torch.rand(len(data.train), generator=torch.Generator().manual_seed(0))
        )
    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    config = HRKDConfig(
        **common(
            tmp_path, "kd", num_train_epochs=10, learning_rate=3e-3, logging_steps=6, save_strategy="epoch"
        )
    )

    def new_student(domains):
        return MultiDomainModel.from_encoder(bert_student_dir, domains, LABELS, seed=0)

    students = distill_per_domain(
        method, teacher, new_student, data, config, tokenizer, str(tmp_path / "student"),
        meta=MetaDistillConfig(output_dir=str(tmp_path)), prediction_stage={"num_train_epochs": 8},
    )  # fmt: skip
    assert isinstance(students, DomainExperts) and students.domains == DOMAINS
    encoders = {id(students.experts[d].encoder) for d in DOMAINS}
    assert len(encoders) == 3  # separate students
    again = load_multi_domain(str(tmp_path / "student"))
    assert isinstance(again, DomainExperts)
    from hrkd_trainer.evaluation import evaluate_per_domain

    accuracy = evaluate_per_domain(again, data.dev, tokenizer.pad_token_id)
    assert accuracy["average"] > 0.65, accuracy  # each student learned its domain from the teacher
    # a finished domain's checkpoints are deleted (a per-domain stage restarts, never resumes); the heads
    # learned their domains above, which meta-distillation's stage 1 alone (intermediate layers) cannot do
    assert not any((tmp_path / "kd" / domain).exists() for domain in DOMAINS)


# ---------------------------------------------------------------------------- LoRA
def test_lora_teacher_merges_to_the_same_function_and_distils_identically(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    teacher = MultiDomainModel.from_pretrained(teacher_dir, **NO_DROPOUT)
    total = sum(p.numel() for p in teacher.parameters())
    trainable = add_lora(teacher, LoraSettings(r=4, dropout=0.0))
    assert has_lora(teacher) and 0 < trainable < total / 2
    assert all(
        p.requires_grad == ("lora_" in n or "pooler" in n) for n, p in teacher.encoder.named_parameters()
    )
    with torch.no_grad():  # adapters that change the function (lora_B starts at zero)
        for name, p in teacher.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    batch = batch_of(tokenized[0], [0, 1, 50, 100])
    teacher.eval()
    with torch.no_grad():
        before = teacher(**batch).logits

    def distil(model):
        student = MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0, **NO_DROPOUT)
        config = HRKDConfig(**common(tmp_path, "kd", max_steps=3, learning_rate=3e-3))
        trainer = HRKDTrainer(
            model=student,
            teacher_model=model,
            args=config,
            train_dataset=tokenized[0],
            processing_class=tokenizer,
        )
        trainer.train()
        return {k: v.clone() for k, v in trainer.student.state_dict().items()}, trainer.state.log_history

    unmerged_student, unmerged_logs = distil(teacher)
    assert merge_lora(teacher) > 0 and not has_lora(teacher)
    with torch.no_grad():
        assert torch.allclose(teacher(**batch).logits, before, atol=1e-5)
    merged_student, merged_logs = distil(teacher)
    losses = [[e["loss"] for e in logs if "loss" in e] for logs in (merged_logs, unmerged_logs)]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-4)
    for key, value in merged_student.items():
        assert torch.allclose(value, unmerged_student[key], atol=1e-5), key


def test_lora_teacher_training_updates_only_adapters_and_heads(
    bert_teacher_dir, tokenized, tokenizer, tmp_path
):
    data = tokenized_data(tokenized)
    args = MultiDomainArguments(**common(tmp_path, "t", num_train_epochs=2, learning_rate=3e-3))
    reference = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, LABELS, seed=0)
    trained = train_teacher(
        "mtl", bert_teacher_dir, data, args, tokenizer, str(tmp_path / "teacher"), lora=LoraSettings(r=2)
    )
    assert trained.trainable_parameters < sum(p.numel() for p in reference.parameters()) / 2
    assert not has_lora(trained.model)  # merged before export
    exported = load_multi_domain(str(tmp_path / "teacher"))
    word = "embeddings.word_embeddings.weight"
    assert torch.equal(exported.encoder.state_dict()[word], reference.encoder.state_dict()[word])  # frozen
    query = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(
        exported.encoder.state_dict()[query], reference.encoder.state_dict()[query]
    )  # merged


# ---------------------------------------------------------------------------- recipe flags
def test_recipe_flags_for_baselines_and_few_shot():
    recipe, config = parse_recipe_args(["--output_dir", "x", "--few_shot_fraction", "0.05"])
    assert config.learning_rate == 5e-5  # paper §3.5
    _, config = parse_recipe_args(
        ["--output_dir", "x", "--few_shot_fraction", "0.05", "--few_shot_learning_rate", "1e-4"]
    )
    assert config.learning_rate == 1e-4
    with pytest.raises(SystemExit, match="tinybert or meta-distill"):
        parse_recipe_args(["--output_dir", "x", "--teacher_type", "single", "--method", "hrkd"])
    with pytest.raises(SystemExit, match="needs --method hrkd"):
        parse_recipe_args(["--output_dir", "x", "--method", "tinybert", "--relational_mode", "learned"])
    recipe, _ = parse_recipe_args(["--output_dir", "x", "--teacher_type", "meta", "--method", "meta-distill"])
    assert recipe.teacher_type == "meta" and recipe.method == "meta-distill"
