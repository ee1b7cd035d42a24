"""Shared fixtures: tiny random encoders built from configs, a tiny WordPiece tokenizer, tiny data."""

from __future__ import annotations

import os
import random

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast, MPNetConfig, MPNetModel, MPNetTokenizerFast

from hrkd_trainer import MultiDomainArguments, MultiDomainModel, MultiDomainTrainer, tokenize_multi_domain
from hrkd_trainer.data.common import build_dataset_dict
from hrkd_trainer.data.tokenized import by_domain
from hrkd_trainer.evaluation import evaluate_per_domain

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["good", "great", "happy", "love", "fine", "nice"]
NEGATIVE = ["bad", "awful", "sad", "hate", "poor", "ugly"]
NEUTRAL = ["movie", "film", "food", "service", "news", "phone"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DOMAINS = ["alpha", "beta", "gamma"]
LABELS = ["neg", "pos"]


@pytest.fixture(scope="session")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(SPECIAL + POSITIVE + NEGATIVE + NEUTRAL))
    return str(path)


@pytest.fixture(scope="session")
def tokenizer(vocab_file):
    return BertTokenizerFast(vocab=vocab_file)


def tiny_bert_config(vocab_size: int, hidden=32, layers=4, heads=4, **kw) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=64, **kw,
    )  # fmt: skip


def save_tiny_bert(path, tokenizer, seed: int, **config) -> str:
    torch.manual_seed(seed)
    BertModel(tiny_bert_config(len(tokenizer), **config)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def bert_teacher_dir(tmp_path_factory, tokenizer):
    return save_tiny_bert(tmp_path_factory.mktemp("bert_teacher"), tokenizer, 0, hidden=32, layers=4, heads=4)


@pytest.fixture(scope="session")
def bert_student_dir(tmp_path_factory, tokenizer):
    return save_tiny_bert(tmp_path_factory.mktemp("bert_student"), tokenizer, 1, hidden=16, layers=2, heads=4)


@pytest.fixture(scope="session")
def mpnet_dir(tmp_path_factory, vocab_file):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("mpnet")
    tok = MPNetTokenizerFast(vocab=vocab_file)
    config = MPNetConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=80,
    )  # fmt: skip
    MPNetModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def make_rows(n_per_domain: int, seed: int, domains=DOMAINS) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for domain in domains:
        for _ in range(n_per_domain):
            positive = rng.random() < 0.5
            words = [rng.choice(POSITIVE if positive else NEGATIVE) for _ in range(rng.randint(1, 5))]
            words += [rng.choice(NEUTRAL) for _ in range(rng.randint(0, 6))]
            rng.shuffle(words)
            rows.append({"text": " ".join(words), "label": "pos" if positive else "neg", "domain": domain})
    return rows


@pytest.fixture(scope="session")
def tiny_data():
    return build_dataset_dict(
        {"train": make_rows(48, 0), "dev": make_rows(16, 1), "test": make_rows(16, 2)},
        ["neg", "pos"],
        DOMAINS,
    )


def common(tmp_path, name, **kw):
    """TrainingArguments values shared by the trainer tests (CPU, no reporting, log every step)."""
    values = dict(
        output_dir=str(tmp_path / name), per_domain_train_batch_size=8, report_to="none", use_cpu=True,
        logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True,
    )  # fmt: skip
    values.update(kw)
    return values


@pytest.fixture(scope="session")
def tokenized(tiny_data, tokenizer):
    train = tokenize_multi_domain(tiny_data["train"], tokenizer, 32)
    dev = by_domain(tokenize_multi_domain(tiny_data["dev"], tokenizer, 32), DOMAINS)
    return train, dev


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory, bert_teacher_dir, tokenized, tokenizer):
    """A tiny teacher fine-tuned with MultiDomainTrainer (also checks that fine-tuning learns)."""
    tmp = tmp_path_factory.mktemp("teacher")
    train, dev = tokenized
    model = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, LABELS, seed=0)
    args = MultiDomainArguments(
        **common(tmp, "run", num_train_epochs=15, learning_rate=3e-3, logging_steps=6)
    )
    trainer = MultiDomainTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer
    )
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses[-1] < losses[0] * 0.7, losses
    metrics = trainer.evaluate()
    assert metrics["eval_avg_accuracy"] > 0.75, metrics
    assert set(metrics) >= {f"eval_{d}_accuracy" for d in DOMAINS}
    # the recipes' own evaluation agrees with Trainer.evaluate
    ours = evaluate_per_domain(trainer.student, dev, tokenizer.pad_token_id, batch_size=5)
    for domain in DOMAINS:
        assert ours[domain] == pytest.approx(metrics[f"eval_{domain}_accuracy"])
    assert ours["average"] == pytest.approx(metrics["eval_avg_accuracy"])
    trainer.save_model(str(tmp / "teacher"))
    return str(tmp / "teacher")
