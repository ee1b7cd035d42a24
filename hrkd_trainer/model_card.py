"""The model card of a published student: Hub metadata (``model-index`` included) and text, generated
from a run's ``results.json``; nothing in it is typed by hand."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from .assets import KNOWN_LICENSES, OFFLINE_MINILM_HUB_ID, hub_id_of
from .recipe_configs import recipe_scripts
from .vocabulary import METHOD_TEXT, TEACHER_TEXT

logger = logging.getLogger(__name__)

__all__ = ["KNOWN_LICENSES", "OFFLINE_MINILM_HUB_ID", "hub_id_of", "model_card"]

#: the card's words for each method and teacher type (from the one vocabulary)
METHOD_NAMES = {str(k): v for k, v in METHOD_TEXT.items()}
TEACHER_KINDS = {str(k): v for k, v in TEACHER_TEXT.items()}
#: Hub tags of every published student (the method and the domains are added per run)
BASE_TAGS = ("knowledge-distillation", "hrkd", "text-classification", "hrkd-trainer")
HRKD_CITATION = """@inproceedings{dong-etal-2021-hrkd,
    title = "{HRKD}: Hierarchical Relational Knowledge Distillation for Cross-domain Language Model Compression",
    author = "Dong, Chenhe and Li, Yaliang and Shen, Ying and Qiu, Minghui",
    booktitle = "Proceedings of the 2021 Conference on Empirical Methods in Natural Language Processing",
    year = "2021",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2021.emnlp-main.250/",
    doi = "10.18653/v1/2021.emnlp-main.250",
    pages = "3126--3136",
}"""


def model_label(source: str | None) -> str:
    """How the card names a model: its Hub id when known, else the last part of a local path."""
    hub_id = hub_id_of(source)
    if hub_id:
        return hub_id
    return f"a local model ({os.path.basename(os.path.normpath(source))})" if source else "an unnamed model"


def per_domain_models(results: dict) -> bool:
    return bool(results["student"].get("per_domain_models"))


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def card_metadata(results: dict, repo_id: str, base_model: str | None, license: str | None):
    """The card's YAML metadata as a ``huggingface_hub.ModelCardData`` (model-index included)."""
    from huggingface_hub import EvalResult, ModelCardData

    domains = results["domains"]
    dataset = results.get("dataset") or {}
    dataset_type = dataset.get("hub_id") or dataset.get("slug") or "custom"
    dataset_name = dataset.get("name") or "the run's data"
    teacher_accuracy = results["teacher"].get("accuracy", {})
    evals = []
    for domain in domains:
        common = dict(
            task_type="text-classification",
            task_name="Text Classification",
            dataset_type=dataset_type,
            dataset_name=f"{dataset_name}: {domain}",
            dataset_config=domain,
            dataset_split=results.get("evaluation_split", "test"),
        )
        evals.append(
            EvalResult(**common, metric_type="accuracy", metric_value=results["student"]["accuracy"][domain])
        )
        if domain in teacher_accuracy:  # the teacher's, for comparison (not a score of this model)
            evals.append(
                EvalResult(
                    **common,
                    metric_type="teacher_accuracy",
                    metric_name="Teacher accuracy (for comparison)",
                    metric_value=teacher_accuracy[domain],
                )
            )
    tags = list(BASE_TAGS)
    tags += [t for t in (results.get("method"), *domains) if t and t not in tags]
    return ModelCardData(
        base_model=base_model,
        datasets=[dataset["hub_id"]] if dataset.get("hub_id") else None,
        language=dataset.get("language"),
        library_name="transformers",
        license=license,
        metrics=["accuracy"],
        model_name=repo_id.split("/")[-1],
        pipeline_tag="text-classification",
        tags=tags,
        eval_results=evals,
    )


def model_card(
    results: dict,
    repo_id: str,
    base_model: str | None = None,
    license: str | None = None,
    files: Sequence[str] = (),
    example: dict | None = None,
) -> str:
    """The README.md of the Hub repo: metadata and text, every number taken from ``results``;
    ``example`` (see :func:`card_example`) goes into the usage snippet."""
    base_model = base_model or results["teacher"].get("hub_id") or hub_id_of(results["teacher"].get("source"))
    license = license or KNOWN_LICENSES.get(base_model or "")
    if base_model is None:
        logger.warning("the teacher's Hub id is unknown: the card has no base_model (pass --base-model)")
    if license is None:
        logger.warning("no licence is known for this model: the card has none (pass --license)")
    metadata = card_metadata(results, repo_id, base_model, license)
    sections = [
        _summary(results, repo_id, base_model),
        _results_section(results),
        _size_section(results),
        _usage_section(results, repo_id, example),
        _training_section(results, files),
        _limitations_section(results),
        _citation_section(results),
    ]
    return f"---\n{metadata.to_yaml()}\n---\n\n" + "\n\n".join(s.strip() for s in sections if s) + "\n"


def _summary(results: dict, repo_id: str, base_model: str | None) -> str:
    domains, student = results["domains"], results["student"]
    method = results.get("method", "multi-domain")
    teacher = base_model or model_label(results["teacher"].get("source"))
    teacher_kind = results.get("teacher_type") or results["teacher"].get("type")
    kind = f" ({TEACHER_KINDS.get(teacher_kind, teacher_kind)})" if teacher_kind else ""
    origin = (
        f"compressed from a teacher fine-tuned from `{teacher}`{kind} by {METHOD_NAMES.get(method, method)}"
        if results["teacher"]
        else f"trained by {method}"
    )
    layout = (
        "one separate model per domain"
        if per_domain_models(results)
        else "one shared encoder and one classification head per domain"
    )
    return f"""
# {repo_id.split("/")[-1]}

A {student.get("layers", "?")}-layer text classifier for {len(domains)} domains ({", ".join(f"`{d}`" for d in domains)}),
{origin}.
It has {layout}; labels: {", ".join(f"`{label}`" for label in results["labels"])}.
Made with hrkd-trainer, following HRKD (Dong et al., EMNLP 2021).
"""


def _results_section(results: dict) -> str:
    domains = results["domains"]
    columns = [("student", "this model")]
    if results["teacher"].get("accuracy"):
        columns.append(("teacher", "teacher"))
    if "baseline" in results:
        columns.append(("baseline", "same size, no KD"))
    header = "| domain | " + " | ".join(name for _, name in columns) + " |"
    lines = [header, "|---|" + "---|" * len(columns)]
    for domain in [*domains, "average"]:
        cells = [_pct(results[key]["accuracy"].get(domain)) for key, _ in columns]
        label = "**average**" if domain == "average" else f"`{domain}`"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    dev = [_pct(results[key].get("dev_accuracy", {}).get("average")) for key, _ in columns]
    if any(dev):
        lines.append("| dev average | " + " | ".join(dev) + " |")
    data = results.get("data", {})
    dataset = results.get("dataset") or {}
    source = (
        f"[{dataset['name']}]({dataset['url']})"
        if dataset.get("url")
        else dataset.get("name", "the run's data")
    )
    return f"""
## Results

{results.get("evaluation_split", "test").capitalize()} accuracy (%) per domain, each domain with its own classifier; data: {source}
({data.get("train", "?")} train, {data.get("dev", "?")} dev, {data.get("test", "?")} test examples over all domains).

{chr(10).join(lines)}
"""


def _size_section(results: dict) -> str:
    student, teacher = results["student"], results["teacher"]
    if not teacher.get("parameters"):
        return ""
    machine = results.get("machine", {})
    where = machine.get("gpu") or f"{machine.get('device', '?')}, {machine.get('torch_threads', '?')} threads"
    versions = f"torch {machine.get('torch', '?')}, transformers {machine.get('transformers', '?')}"
    rows = [
        f"| parameters | {teacher['parameters'] / 1e6:.1f} M | {student['parameters'] / 1e6:.1f} M "
        f"({results.get('compression', 0):.2f}× smaller) |"
    ]
    if teacher.get("weights_bytes") and student.get("weights_bytes"):
        rows.append(
            f"| weights on disk (one domain's model) | {teacher['weights_bytes'] / 2**20:.0f} MB | {student['weights_bytes'] / 2**20:.0f} MB "
            f"({results.get('size_ratio', 0):.2f}× smaller) |"
        )
    timing = ""
    if student.get("speedup"):
        spread = student.get("speedup_spread")
        quartiles = f", quartiles {spread['q1']:.1f}-{spread['q3']:.1f}×" if spread else ""
        rows.append(
            f"| inference time (same batches) | {teacher['inference_seconds']:.3f} s | "
            f"{student['inference_seconds']:.3f} s ({student['speedup']:.1f}× faster{quartiles}) |"
        )
        how = (
            f"the median of {spread['repeats']} interleaved repetitions (teacher and student back to back) over "
            f"the same {spread['batches']} batches of {spread['batch_size']}"
            if spread
            else "the median of 3 runs over the same batches of 32"
        )
        timing = (
            f"Timed on the machine that trained it ({where}; {versions}) as {how}, with dynamic padding. "
            "Speed-ups differ on other hardware."
        )
    return f"""
## Size and speed

| | teacher | this model (one domain) |
|---|---|---|
{chr(10).join(rows)}

{timing}
"""


def _usage_section(results: dict, repo_id: str, example: dict | None) -> str:
    domains = results["domains"]
    domain = domains[0]
    max_length = results.get("distillation", {}).get("max_length")
    truncation = f", truncation=True, max_length={max_length}" if max_length else ""
    encoder_folder = ", subfolder=domain" if per_domain_models(results) else ""
    classifier = 'f"{domain}/{domain}"' if per_domain_models(results) else "domain"
    call = f"print(classify({json.dumps(example['inputs'])}{truncation}))" if example else ""
    expected = f"\n\nThe run's own evaluation labels this example `{example['label']}`." if example else ""
    return f'''
## How to use

Each domain's classifier is a plain `AutoModelForSequenceClassification` in the subfolder named after
the domain; no `trust_remote_code` and no hrkd-trainer are needed.

```python
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

repo_id = "{repo_id}"
domain = "{domain}"  # one of: {", ".join(domains)}

# the {"encoder of that domain" if per_domain_models(results) else "shared encoder"} (features, no classifier)
encoder = AutoModel.from_pretrained(repo_id{encoder_folder})

# one domain's classifier
tokenizer = AutoTokenizer.from_pretrained(repo_id, subfolder={classifier})
model = AutoModelForSequenceClassification.from_pretrained(repo_id, subfolder={classifier})
classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
{call}
```{expected}

{_truncation_note(max_length)}
'''


def _truncation_note(max_length: int | None) -> str:
    if not max_length:
        return ""
    return (
        f"Inputs were truncated to {max_length} tokens in training and evaluation; pass the same truncation "
        "to get the evaluated behaviour."
    )


def _training_section(results: dict, files: Sequence[str]) -> str:
    settings = results.get("distillation", {})
    rows = "\n".join(f"| `{key}` | `{json.dumps(value)}` |" for key, value in settings.items())
    teacher = results["teacher"]
    lines = [
        f"- method: `{results.get('method')}`; teacher type: `{results.get('teacher_type')}`",
        f"- teacher: fine-tuned from `{model_label(teacher.get('source'))}`, {teacher['parameters'] / 1e6:.1f} M "
        "parameters" + (f", LoRA r={teacher['lora_r']} (merged)" if teacher.get("lora_r") else ""),
        f"- student initialised from `{model_label(results['student'].get('init'))}` "
        f"({results['student'].get('layers')} layers)",
    ]
    if results.get("few_shot_fraction"):
        lines.append(f"- few-shot: {100 * results['few_shot_fraction']:g} % of each domain's training data")
    if results.get("skipped_rows"):
        lines.append(f"- {results['skipped_rows']} rows of the source data were skipped by the data builder")
    wall = results.get("wall_time_seconds", {})
    if wall:
        lines.append("- wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in wall.items()))
    ratios = ""
    if "ratios.png" in files:
        ratios = "\n\nDomain-relational ratios over training (white = uniform):\n\n![ratios](ratios.png)"
    return f"""
## Training

```bash
python {_command(results.get("command", "?"))}
```

{chr(10).join(lines)}

| hyper-parameter | value |
|---|---|
{rows}

All numbers on this card come from `results.json`, written by the run.{ratios}
"""


def _command(command: str) -> str:
    """The recorded command; the recipes are recorded by file name and live in ``recipes/``."""
    return f"recipes/{command}" if command.split(" ")[0] in recipe_scripts() else command


def _limitations_section(results: dict) -> str:
    test = results.get("data", {}).get("test")
    per_domain = test // max(len(results["domains"]), 1) if test else None
    noise = (
        f" With about {per_domain} test examples per domain, differences under a few points are noise."
        if per_domain
        else ""
    )
    return f"""
## Intended use and limitations

For classifying text of the listed domains into the listed labels, where a small, fast model is
worth a little accuracy. Each domain head was trained only on its domain's data: text from other
domains gets no guarantee, and the domain must be chosen by the user.{noise} The model inherits the
biases of its teacher and of the training data; it was evaluated on accuracy only.
"""


def _citation_section(results: dict) -> str:
    dataset = results.get("dataset") or {}
    data = f"\n\nData: {dataset['name']}, {dataset['url']}." if dataset.get("name") else ""
    return f"""
## Citation

```bibtex
{HRKD_CITATION}
```{data}
"""
