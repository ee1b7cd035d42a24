"""The run's record, ``results.json``, built in one place for the recipes and for
``MultiDomainTrainer.push_to_hub``, so that every model card reads the same schema.

Schema (every key a card or a benchmark reads)::

    domains, labels                 the domain names (id order) and label names
    method, teacher_type            the distiller and how the teacher came to be (vocabulary values)
    teacher / student / baseline    per model: accuracy {domain…, average} on the test split (or the
                                    split named by evaluation_split), dev_accuracy, parameters,
                                    inference_seconds; the student also speedup (median of interleaved
                                    repeats) and speedup_spread {q1, q3, min, max, repeats, batches,
                                    batch_size}, init, layers, per_domain_models; the teacher source,
                                    hub_id, type
                                    weights_bytes: on-disk size of one domain's exported model (recipes)
    compression, size_ratio         teacher parameters / student parameters; the same for weights_bytes
    distillation                    the hyper-parameters of the distillation run
    command, machine                how and where it ran; wall_time_seconds per stage (recipes)

``test_predictions.json`` (recipes only, never uploaded) holds the student's test predictions with
their inputs, so that any export can be checked against the run's own evaluation, and the no-KD
baseline's predictions of the same rows when the run trained one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Sequence

import torch
from datasets import Dataset

from .assets import LOCAL_MARK, hub_id_of
from .evaluation import evaluate_per_domain, inference_seconds

RESULTS_FILE = "results.json"
#: the run's test predictions with their inputs (written by the recipes; not uploaded)
PREDICTIONS_FILE = "test_predictions.json"

#: hyper-parameters every distillation run reports, then those of the relational weighting
DISTILLATION_KEYS = (
    "temperature", "pred_loss_weight", "distill_losses", "layer_map", "mask_padding", "learning_rate",
    "num_train_epochs", "per_domain_train_batch_size", "max_length", "seed", "relational_mode", "loss_weighting",
)  # fmt: skip
ADAPTIVE_KEYS = (
    "weighting_floor", "weighting_temperature", "weighting_ema", "weighting_step_size", "weighting_noise_std",
)  # fmt: skip
#: Hinton's hard+soft prediction loss (only reported when it is on: eq. 2 is the default)
HINTON_KEYS = ("prediction_loss", "hard_label_weight")
RELATIONAL_KEYS = (
    "relational_ablations", "relational_learning_rate", "relational_weight_decay", "relational_heads",
    "relational_dropout", "prototype_mask_padding", "ratio_scale", "ratio_entropy_weight",
    "ratio_gradient", "relational_graph_residual",
)  # fmt: skip


def distillation_settings(config) -> dict:
    """The hyper-parameters that results.json (and the model card) report for a distillation run."""
    keys = DISTILLATION_KEYS + (RELATIONAL_KEYS if config.relational else ())
    keys += ADAPTIVE_KEYS if getattr(config, "adaptive_weighting", False) else ()
    keys += HINTON_KEYS if getattr(config, "prediction_loss", "soft-ce") == "hinton" else ()
    return json.loads(json.dumps({k: getattr(config, k) for k in keys}))  # enums → their values


def machine_description(device: torch.device) -> dict:
    """Where the timings were taken: device, CPU count and torch threads, versions."""
    import transformers

    info = {
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def command_line() -> str:
    """The command that is running, with the script's base name (no local folders)."""
    return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])


def model_entry(
    model, accuracy: dict, dev_accuracy: dict | None = None, seconds: float | None = None, **more
):
    """One model's block: accuracy, dev accuracy, parameters, inference time, and ``more``."""
    entry = {"accuracy": accuracy}
    if dev_accuracy is not None:
        entry["dev_accuracy"] = dev_accuracy
    entry["parameters"] = model.num_parameters()
    if seconds is not None:
        entry["inference_seconds"] = seconds
    entry.update(more)
    return entry


def weights_bytes(folder: str | None, domain: str) -> int | None:
    """On-disk size of one domain's model in an exported folder: the weight files (``*.safetensors``,
    ``*.bin``) of ``folder/domain``, the encoder with that domain's head, which is what a user loads with
    ``AutoModelForSequenceClassification`` (the export repeats the shared encoder in every domain's
    folder, so the folder as a whole is not the model's size). None when there is no such folder."""
    path = os.path.join(folder, domain) if folder else None
    if not path or not os.path.isdir(path):
        return None
    total = sum(
        os.path.getsize(os.path.join(path, f))
        for f in os.listdir(path)
        if f.endswith((".safetensors", ".bin"))
    )
    return total or None


def model_bytes(model) -> int:
    """Bytes of the weights one domain's classifier holds (the encoder with that domain's head), what
    ``AutoModelForSequenceClassification`` loads, counted from the tensors (a safetensors file of it
    adds a small header): the size of the deployed model without writing it to disk."""
    domain = model.domains[0]
    if not hasattr(model, "domain_model"):  # per-domain experts: one expert is one deployed model
        model = model.restrict([domain])
    tensors = {t.data_ptr(): t for t in model.domain_model(domain).state_dict().values()}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def build_results(
    *,
    domains: Sequence[str],
    labels: Sequence[str],
    method: str,
    student: dict,
    teacher: dict,
    baseline: dict | None = None,
    distillation: dict | None = None,
    device: torch.device | None = None,
    **sections,
) -> dict:
    """The results.json of a run: the model blocks of :func:`model_entry`, plus the student's speed-up
    and the compression when the teacher was measured, the command and the machine."""
    teacher_time, student_time = teacher.get("inference_seconds"), student.get("inference_seconds")
    if teacher_time and student_time and "speedup" not in student:
        student["speedup"] = teacher_time / student_time
    results = {"domains": list(domains), "labels": list(labels), "teacher": teacher, "student": student}
    if baseline is not None:
        results["baseline"] = baseline
    if teacher.get("parameters"):
        results["compression"] = teacher["parameters"] / student["parameters"]
    if teacher.get("weights_bytes") and student.get("weights_bytes"):
        results["size_ratio"] = teacher["weights_bytes"] / student["weights_bytes"]
    results["method"] = str(method)
    if distillation is not None:
        results["distillation"] = distillation
    results.update(sections)
    results["command"] = command_line()
    if device is not None:
        results["machine"] = machine_description(device)
    return json.loads(json.dumps(results))  # plain JSON types only (enums → values)


def trainer_results(trainer) -> dict:
    """A results.json for a trainer used directly (no recipe): the student's (and, when it reads the
    same inputs, the teacher's) accuracy on the trainer's per-domain ``eval_dataset``, sizes, speed,
    settings. The card then says which split it is."""
    splits = trainer.eval_dataset
    if not isinstance(splits, dict) or not splits:
        raise ValueError(
            "push_to_hub needs the trainer's eval_dataset as {domain: dataset} to fill the model card's results"
        )
    student, pad = trainer.student, trainer.processing_class.pad_token_id
    first = next(iter(splits.values()))
    student_entry = model_entry(
        student, evaluate_per_domain(student, splits, pad), seconds=inference_seconds(student, first, pad),
        init=getattr(student.config, "_name_or_path", None), layers=student.num_hidden_layers,
        per_domain_models=False,
    )  # fmt: skip
    teacher = getattr(trainer, "teacher", None)
    if teacher is None:
        return build_results(
            domains=student.domains, labels=student.label_names, method="fine-tuning (no distillation)",
            student=student_entry, teacher={}, device=next(student.parameters()).device,
            evaluation_split="eval",
        )  # fmt: skip
    source = getattr(teacher.config, "_name_or_path", None)
    teacher_entry = {"parameters": teacher.num_parameters(), "source": source, "hub_id": hub_id_of(source)}
    if "teacher_input_ids" not in first.column_names:  # the teacher reads the student's inputs
        teacher_entry["accuracy"] = evaluate_per_domain(teacher, splits, pad)
        teacher_entry["inference_seconds"] = inference_seconds(teacher, first, pad)
    return build_results(
        domains=student.domains, labels=student.label_names, method=trainer.args.method_name,
        student=student_entry, teacher=teacher_entry, distillation=distillation_settings(trainer.args),
        device=next(student.parameters()).device, evaluation_split="eval",
    )  # fmt: skip


def speedup_text(student: dict) -> str:
    """``6.1x [5.9-6.3]``: the median speed-up and, when measured interleaved, its quartiles."""
    spread = student.get("speedup_spread")
    text = f"{student['speedup']:.1f}x"
    return text + (f" [{spread['q1']:.1f}-{spread['q3']:.1f}]" if spread else "")


def format_table(
    domains: Sequence[str], rows: dict[str, dict[str, float]], extra: dict[str, dict[str, str]]
) -> str:
    """A fixed-width table: one row per model, one column per domain, then extra columns."""
    columns = [*domains, "average"]
    extra_columns = list(next(iter(extra.values())).keys()) if extra else []
    header = ["model", *columns, *extra_columns]
    lines = [header]
    for name, values in rows.items():
        lines.append(
            [
                name,
                *(f"{100 * values[c]:.1f}" for c in columns),
                *(extra.get(name, {}).get(c, "") for c in extra_columns),
            ]
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append(
            "  ".join(
                str(cell).rjust(width) if i else str(cell).ljust(width)
                for i, (cell, width) in enumerate(zip(line, widths))
            )
        )
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


#: an absolute local path inside a string: starts at "/" or "~/" that does not follow a word
#: character, ":" or "/" (so URLs and relative paths stay as they are)
_LOCAL_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)[^\s'\"]*")


def public_path(path: str, run_dir: str | None = None) -> str:
    """What a published file may say instead of a local path: the path relative to the run folder
    when it lies inside it; the Hub id it stands for when known (the offline MiniLM folder →
    ``sentence-transformers/all-MiniLM-L6-v2``, the assembled MPNet-base →
    ``sentence-transformers/all-mpnet-base-v2``); else ``<local>/`` plus its last two components."""
    expanded = os.path.expanduser(path)
    if run_dir is not None:
        root = os.path.abspath(run_dir)
        if os.path.abspath(expanded) == root:
            return "."
        if os.path.abspath(expanded).startswith(root + os.sep):
            return os.path.relpath(expanded, root)
    hub_id = hub_id_of(expanded) if os.path.exists(expanded) else None
    if hub_id:
        return hub_id
    tail = [part for part in os.path.normpath(expanded).split(os.sep) if part][-2:]
    return LOCAL_MARK + "/".join(tail)


def without_local_paths(content, run_dir: str | None = None):
    """``content`` (JSON-like) with every absolute local path in its strings replaced by
    :func:`public_path`, for files that are published (``results.json`` on the Hub)."""
    if isinstance(content, dict):
        return {key: without_local_paths(value, run_dir) for key, value in content.items()}
    if isinstance(content, list):
        return [without_local_paths(value, run_dir) for value in content]
    if isinstance(content, str):
        return _LOCAL_PATH.sub(lambda match: public_path(match.group(0), run_dir), content)
    return content


def write_json(path: str, content) -> None:
    """Write ``content`` as JSON next to ``path`` and rename it into place: a killed write never
    leaves a file that looks finished."""
    partial = f"{path}.partial"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(partial, "w") as handle:
        json.dump(content, handle, indent=2)
    os.replace(partial, path)


def write_results(path: str, results: dict) -> None:
    write_json(path, results)


def write_test_predictions(
    path: str,
    test: Dataset,
    predictions: dict[str, list[int]],
    labels: Sequence[str],
    max_length: int,
    baseline: dict[str, list[int]] | None = None,
) -> None:
    """The student's test predictions with their inputs, per domain, so that any export can be checked
    against the run's own evaluation (``tests/check_export.py``); with ``baseline``, the no-KD
    student's predictions too (``baseline_prediction``), for paired tests over examples."""
    domain_of = test["domain"]
    names = test.features["domain"].names
    columns = [c for c in ("text", "text_pair") if c in test.column_names]
    examples = {}
    for domain, predicted in predictions.items():
        rows = [i for i, d in enumerate(domain_of) if names[d] == domain]
        part = test.select(rows)
        examples[domain] = {c: list(part[c]) for c in columns}
        examples[domain]["label"] = list(part["label"])
        examples[domain]["prediction"] = predicted
        if baseline is not None:
            examples[domain]["baseline_prediction"] = baseline[domain]
    write_json(path, {"labels": list(labels), "max_length": max_length, "examples": examples})
