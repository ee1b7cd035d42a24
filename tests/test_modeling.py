"""Multi-domain models for BERT and MPNet; export → AutoModel / AutoModelForSequenceClassification / pipeline."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from hrkd_trainer.modeling import MultiDomainModel

from .conftest import DOMAINS


def _batch(vocab=20, n=6, length=9):
    torch.manual_seed(0)
    ids = torch.randint(5, vocab, (n, length))
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, 5:] = 0
    mask[3, 2:] = 0
    return ids, mask


@pytest.mark.parametrize("fixture", ["bert_teacher_dir", "mpnet_dir"])
def test_export_round_trip_identical_outputs(fixture, request, tmp_path):
    path = request.getfixturevalue(fixture)
    model = MultiDomainModel.from_encoder(path, DOMAINS, ["neg", "pos"], seed=0).eval()
    model.prepare_for_capture()
    ids, mask = _batch()
    domains = torch.tensor([0, 0, 1, 1, 2, 2])
    with torch.no_grad():
        mixed = model(ids, mask, domain_ids=domains).logits
    model.save_pretrained(str(tmp_path), tokenizer=None)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["hrkd_domains"] == DOMAINS
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    encoder = AutoModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        expected = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(
            encoder(input_ids=ids, attention_mask=mask).last_hidden_state, expected, atol=1e-6
        )
        for index, domain in enumerate(DOMAINS):
            classifier = AutoModelForSequenceClassification.from_pretrained(
                str(tmp_path), subfolder=domain
            ).eval()
            logits = classifier(input_ids=ids, attention_mask=mask).logits
            rows = domains == index
            assert torch.allclose(logits[rows], mixed[rows], atol=1e-5)
            single = model(ids, mask, domain_ids=torch.full((6,), index)).logits
            assert torch.allclose(logits, single, atol=1e-5)
            assert classifier.config.id2label == {0: "neg", 1: "pos"}
    reloaded = MultiDomainModel.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(ids, mask, domain_ids=domains).logits, mixed, atol=1e-6)


@pytest.mark.parametrize("fixture", ["bert_teacher_dir", "mpnet_dir"])
@pytest.mark.parametrize("shared_head", [False, True])
def test_the_compact_layout_holds_the_encoder_once_and_loads_the_same_model(
    fixture, shared_head, request, tmp_path
):
    from hrkd_trainer.export import HEADS_CONFIG, HEADS_WEIGHTS
    from hrkd_trainer.modeling import DomainExperts, load_multi_domain

    path = request.getfixturevalue(fixture)
    model = MultiDomainModel.from_encoder(
        path, DOMAINS, ["neg", "pos"], seed=0, shared_head=shared_head
    ).eval()
    with torch.no_grad():  # heads that differ from a fresh initialisation
        for head in model.heads.values():
            for parameter in head.parameters():
                parameter.add_(0.25)
    ids, mask = _batch()
    domains = torch.tensor([0, 0, 1, 1, 2, 2])
    model.save_pretrained(str(tmp_path / "full"))
    model.save_pretrained(str(tmp_path / "compact"), domain_copies=False)
    assert (tmp_path / "compact" / HEADS_CONFIG).exists() and not (tmp_path / "compact" / DOMAINS[0]).exists()

    def size(folder):
        return sum(f.stat().st_size for f in folder.rglob("*.safetensors"))

    assert size(tmp_path / "compact") * len(DOMAINS) < size(
        tmp_path / "full"
    )  # the encoder once, not D+1 times
    state = torch.random.get_rng_state()
    reloaded = MultiDomainModel.from_pretrained(str(tmp_path / "compact")).eval()
    assert torch.equal(torch.random.get_rng_state(), state)  # rebuilding the heads draws nothing
    assert (
        reloaded.shared_head == shared_head
        and reloaded.domains == DOMAINS
        and reloaded.id2label == model.id2label
    )
    with torch.no_grad():
        assert torch.equal(
            reloaded(ids, mask, domain_ids=domains).logits, model(ids, mask, domain_ids=domains).logits
        )
    full = model.state_dict()
    assert {k: v for k, v in reloaded.state_dict().items()}.keys() == full.keys()
    assert all(torch.equal(v, full[k]) for k, v in reloaded.state_dict().items())
    # one expert per domain (a 'single' teacher) in the compact layout too
    experts = DomainExperts(
        {d: MultiDomainModel.from_encoder(path, [d], ["neg", "pos"], seed=i) for i, d in enumerate(DOMAINS)},
        DOMAINS,
    )
    experts.save_pretrained(str(tmp_path / "experts"), domain_copies=False)
    back, experts = load_multi_domain(str(tmp_path / "experts")).eval(), experts.eval()
    with torch.no_grad():
        assert torch.equal(
            back(ids, mask, domain_ids=domains).logits, experts(ids, mask, domain_ids=domains).logits
        )
    import safetensors.torch

    heads = safetensors.torch.load_file(tmp_path / "compact" / HEADS_WEIGHTS)
    prefix = model.heads[DOMAINS[0]].base_model_prefix + "."
    assert heads and not any(k.split(".", 1)[1].startswith(prefix) for k in heads)  # no encoder weights


def test_heads_are_independent_and_encoder_is_shared(bert_teacher_dir):
    model = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, ["neg", "pos"], seed=0)
    weights = [model.heads[d].classifier.weight for d in DOMAINS]
    assert not torch.equal(weights[0], weights[1])
    names = [n for n, _ in model.named_parameters()]
    assert sum(n.startswith("encoder.") for n in names) == len(list(model.encoder.parameters()))
    assert all(n.startswith(("encoder.", "heads.")) for n in names)


def test_student_from_first_layers(bert_teacher_dir):
    student = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, ["neg", "pos"], num_hidden_layers=2)
    teacher = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, ["neg", "pos"])
    assert student.num_hidden_layers == 2
    assert torch.equal(
        student.encoder.encoder.layer[1].output.dense.weight,
        teacher.encoder.encoder.layer[1].output.dense.weight,
    )
    with pytest.raises(ValueError, match="has only 4"):
        MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, ["neg", "pos"], num_hidden_layers=9)


def test_bad_domain_names_and_plain_encoder_errors(bert_teacher_dir):
    with pytest.raises(ValueError, match="folder name"):
        MultiDomainModel.from_encoder(bert_teacher_dir, ["a/b"], ["neg", "pos"])
    with pytest.raises(ValueError, match="hrkd_domains"):
        MultiDomainModel.from_pretrained(bert_teacher_dir)


def test_export_loads_in_a_fresh_process_without_hrkd_trainer(bert_teacher_dir, tokenizer, tmp_path):
    model = MultiDomainModel.from_encoder(bert_teacher_dir, DOMAINS, ["neg", "pos"], seed=0).eval()
    model.prepare_for_capture()
    model.save_pretrained(str(tmp_path), tokenizer=tokenizer)
    texts = ["good movie", "bad food service", "love it"]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(
            encoded["input_ids"],
            encoded["attention_mask"],
            encoded["token_type_ids"],
            domain_ids=torch.ones(3, dtype=torch.long),
        ).logits
    expected = [model.id2label[i] for i in logits.argmax(-1).tolist()]
    script = f"""
import sys, json
from transformers import AutoModel, pipeline
AutoModel.from_pretrained({str(tmp_path)!r})
clf = pipeline("text-classification", model={os.path.join(str(tmp_path), "beta")!r})
out = clf({texts!r})
assert "hrkd_trainer" not in sys.modules
print(json.dumps([o["label"] for o in out]))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=str(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


def test_loading_reports_expected_weights_in_one_line_and_warns_about_the_rest(
    bert_teacher_dir, tmp_path, caplog
):
    import logging
    import shutil

    import safetensors.torch

    from hrkd_trainer.loading import load_quietly

    with caplog.at_level(logging.INFO, logger="hrkd_trainer"):
        load_quietly(bert_teacher_dir, 2, num_hidden_layers=2, num_labels=3)
    lines = [r for r in caplog.records if r.name == "hrkd_trainer.loading"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert (
        "kept the first 2 layers" in lines[0].getMessage()
        and "new classification head" in lines[0].getMessage()
    )
    odd = tmp_path / "odd"
    shutil.copytree(bert_teacher_dir, odd)
    weights = safetensors.torch.load_file(str(odd / "model.safetensors"))
    weights["bert.surprise.weight"] = torch.zeros(2)
    safetensors.torch.save_file(weights, str(odd / "model.safetensors"), metadata={"format": "pt"})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hrkd_trainer"):
        load_quietly(str(odd), None, num_labels=3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "surprise" in warnings[0]


def test_loading_a_checkpoint_with_an_unused_pooler_does_not_warn(mpnet_dir, caplog):
    """all-mpnet-base-v2 is saved with a pooler that MPNetForSequenceClassification does not have."""
    import logging

    from hrkd_trainer.loading import load_quietly

    with caplog.at_level(logging.INFO, logger="hrkd_trainer"):
        load_quietly(mpnet_dir, None, num_labels=2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("pooler (2 weights) is not used" in r.getMessage() for r in caplog.records)
