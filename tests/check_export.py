#!/usr/bin/env python
"""Check a published (or --dry-run) student folder the way a user of it would: plain transformers only.

    python tests/check_export.py FOLDER RUN_DIR/test_predictions.json

1. Runs the Python snippet of FOLDER/README.md (the model card) with ``repo_id`` pointed at FOLDER,
   and checks that it prints the label the card says the run predicted.
2. For every domain, loads the encoder with ``AutoModel`` and the classifier with
   ``AutoModelForSequenceClassification``, and classifies the run's test inputs through
   ``pipeline("text-classification")`` and through the model directly.
3. Prints a JSON report; exits 1 unless every prediction equals the run's own evaluation.

It never imports hrkd_trainer (checked at the end), so it proves the folder needs nothing else.
"""

import contextlib
import io
import json
import re
import sys

import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline


def run_card_snippet(folder: str) -> dict:
    with open(f"{folder}/README.md", encoding="utf-8") as handle:
        card = handle.read()
    code = "\n".join(re.findall(r"```python\n(.*?)```", card, flags=re.S))
    code = re.sub(r'^repo_id = ".*"$', f"repo_id = {folder!r}", code, flags=re.M)
    expected = re.search(r"The run's own evaluation labels this example `([^`]+)`", card)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md snippet", "exec"), {})
    printed = out.getvalue()
    return {
        "printed": printed.strip(),
        "expected_label": expected.group(1) if expected else None,
        "ok": expected is None or f"'label': '{expected.group(1)}'" in printed,
    }


def check_domain(folder: str, layout: dict, domain: str, rows: dict, max_length: int) -> dict:
    classifier_folder = f"{domain}/{domain}" if layout["per_domain"] else domain
    encoder = AutoModel.from_pretrained(folder, subfolder=domain if layout["per_domain"] else "")
    tokenizer = AutoTokenizer.from_pretrained(folder, subfolder=classifier_folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, subfolder=classifier_folder).eval()
    pair = "text_pair" in rows
    inputs = (
        [{"text": t, "text_pair": p} for t, p in zip(rows["text"], rows["text_pair"])]
        if pair
        else rows["text"]
    )
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    labels = classify(inputs, truncation=True, max_length=max_length, batch_size=32)
    via_pipeline = [model.config.label2id[item["label"]] for item in labels]
    with torch.no_grad():
        texts = (rows["text"], rows["text_pair"]) if pair else (rows["text"],)
        encoded = tokenizer(*texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        direct = model(**encoded).logits.argmax(-1).tolist()
        features = encoder(**encoded).last_hidden_state
    return {
        "examples": len(rows["prediction"]),
        "pipeline_agrees": via_pipeline == rows["prediction"],
        "model_agrees": direct == rows["prediction"],
        "pipeline_mismatches": sum(a != b for a, b in zip(via_pipeline, rows["prediction"])),
        "encoder_hidden_size": features.shape[-1],
        "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
        "accuracy": sum(int(p == y) for p, y in zip(via_pipeline, rows["label"])) / len(rows["label"]),
    }


def main(folder: str, predictions_path: str) -> int:
    with open(predictions_path) as handle:
        saved = json.load(handle)
    layout = {"per_domain": bool(__import__("os").path.exists(f"{folder}/hrkd_experts.json"))}
    report = {"card_snippet": run_card_snippet(folder), "domains": {}}
    if not layout["per_domain"]:
        report["shared_encoder_layers"] = AutoModel.from_pretrained(folder).config.num_hidden_layers
    for domain, rows in saved["examples"].items():
        report["domains"][domain] = check_domain(folder, layout, domain, rows, saved["max_length"])
    report["imported_hrkd_trainer"] = any(name.startswith("hrkd_trainer") for name in sys.modules)
    ok = (
        report["card_snippet"]["ok"]
        and not report["imported_hrkd_trainer"]
        and all(d["pipeline_agrees"] and d["model_agrees"] for d in report["domains"].values())
    )
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
