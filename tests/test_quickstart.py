"""One small run of the real quick-start path: VADER data, offline MiniLM teacher, export, results.json."""

import json
import os
import sys

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "recipes"))


def test_vader_quickstart_small(tmp_path):
    import vader

    out = tmp_path / "run"
    results = vader.main([
        "--output_dir", str(out), "--max_train_samples_per_domain", "32", "--max_eval_samples_per_domain", "16",
        "--num_train_epochs", "1", "--teacher_num_train_epochs", "1", "--per_domain_train_batch_size", "8",
        "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true", "--speed_batches", "1",
    ])  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert saved["domains"] == ["tweets", "movie_reviews", "amazon_reviews", "nyt_editorials"]
    for model in ("teacher", "student", "baseline"):
        accuracy = saved[model]["accuracy"]
        assert set(accuracy) == {*saved["domains"], "average"}
        assert abs(accuracy["average"] - sum(accuracy[d] for d in saved["domains"]) / 4) < 1e-9
    assert saved["student"]["layers"] == 3 and saved["student"]["speedup"] > 1.0
    assert saved["teacher"]["parameters"] > saved["student"]["parameters"]
    assert results["student"]["accuracy"] == saved["student"]["accuracy"]
    # size on disk, and the no-KD baseline's predictions next to the student's (paired tests)
    # one domain's model on disk: the fp32 encoder and that domain's head
    params = saved["student"]["parameters"]
    assert 0.99 * 4 * params < saved["student"]["weights_bytes"] < 1.01 * 4 * params
    assert saved["teacher"]["weights_bytes"] > saved["student"]["weights_bytes"]
    predictions = json.loads((out / "test_predictions.json").read_text())["examples"]
    for domain in saved["domains"]:
        rows = predictions[domain]
        correct = [p == y for p, y in zip(rows["baseline_prediction"], rows["label"])]
        assert abs(sum(correct) / len(correct) - saved["baseline"]["accuracy"][domain]) < 1e-9
    student = out / "student"
    encoder = AutoModel.from_pretrained(str(student))
    assert encoder.config.num_hidden_layers == 3 and encoder.config.hrkd_domains == saved["domains"]
    classifier = AutoModelForSequenceClassification.from_pretrained(str(student), subfolder="tweets").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(student / "tweets"))
    with torch.no_grad():
        logits = classifier(**tokenizer(["what a lovely day"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    assert not any("projection" in name for name in os.listdir(student))
