"""Per-domain evaluation, the one copy used by the trainers, the recipes, the Hub and the benchmarks:
predictions and accuracy per domain (each domain through its own head), and inference timing (one
model, or teacher against student interleaved).

``MultiDomainTrainer.evaluate`` reports the same accuracies through ``Trainer.evaluate`` (a test
checks that the two agree); these functions serve where no trainer is at hand (a finished run, an
exported student, a teacher from another run).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Sequence

import torch
from datasets import Dataset

from .collate import MultiDomainCollator
from .data.tokenized import by_domain  # noqa: F401  (release 0.1 imported it from here)


def padded_batches(
    dataset: Dataset, pad_token_id: int, batch_size: int, device, limit: int | None = None
) -> Iterator[dict[str, torch.Tensor]]:
    """Consecutive rows of a tokenised dataset as padded tensor batches on ``device`` (at most ``limit``)."""
    collate = MultiDomainCollator(pad_token_id)
    columns = dataset.column_names
    for number, start in enumerate(range(0, len(dataset), batch_size)):
        if limit is not None and number >= limit:
            return
        rows = dataset[start : start + batch_size]
        features = [dict(zip(columns, values)) for values in zip(*(rows[c] for c in columns))]
        yield {k: v.to(device) for k, v in collate(features).items()}


def batch_logits(model, batch: dict) -> torch.Tensor:
    """The model's logits for one padded batch (each row through its domain's head)."""
    return model(
        batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), batch["domain_ids"]
    ).logits


@torch.no_grad()
def predict_per_domain(
    model, splits: dict[str, Dataset], pad_token_id: int, batch_size: int = 64
) -> dict[str, list[int]]:
    """Predicted label id of every row, per domain (each domain with its own head), in row order."""
    model.eval()
    device = next(model.parameters()).device
    return {
        domain: [
            label
            for batch in padded_batches(dataset, pad_token_id, batch_size, device)
            for label in batch_logits(model, batch).argmax(-1).tolist()
        ]
        for domain, dataset in splits.items()
    }


def correctness(predictions: dict[str, list[int]], splits: dict[str, Dataset]) -> dict[str, list[int]]:
    """Per domain, 1 where the predicted label id equals the row's label, else 0 (row order): what the
    paired tests (McNemar, the bootstrap) compare between two models on the same examples."""
    return {
        d: [int(p == y) for p, y in zip(predicted, splits[d]["labels"])]
        for d, predicted in predictions.items()
    }


def accuracy_of_correct(correct: dict[str, list[int]]) -> dict[str, float]:
    """Accuracy per domain from per-example correctness, and their unweighted average."""
    accuracy = {d: sum(c) / len(c) for d, c in correct.items()}
    accuracy["average"] = sum(accuracy.values()) / len(correct)
    return accuracy


def accuracy_per_domain(predictions: dict[str, list[int]], splits: dict[str, Dataset]) -> dict[str, float]:
    """Accuracy per domain and their unweighted average (the paper's "Average" column)."""
    return accuracy_of_correct(correctness(predictions, splits))


def evaluate_per_domain(
    model, splits: dict[str, Dataset], pad_token_id: int, batch_size: int = 64
) -> dict[str, float]:
    """Accuracy per domain (each domain with its own head) and their unweighted average."""
    return accuracy_per_domain(predict_per_domain(model, splits, pad_token_id, batch_size), splits)


@torch.no_grad()
def inference_seconds(
    model,
    dataset: Dataset,
    pad_token_id: int,
    batch_size: int = 32,
    batches: int = 5,
    repeats: int = 3,
) -> float:
    """Median wall time of ``batches`` forward passes over the first rows (the same rows for every model)."""
    model.eval()
    device = next(model.parameters()).device
    prepared = list(padded_batches(dataset, pad_token_id, batch_size, device, limit=batches))
    timings = [_timed(model, prepared, device) for _ in range(repeats + 1)]
    return statistics.median(timings[1:])  # the first run warms up


def _timed(model, prepared: list[dict], device: torch.device) -> float:
    begin = time.perf_counter()
    for batch in prepared:
        batch_logits(model, batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - begin


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of ``values`` (numpy's default), ``0 <= q <= 1``."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@torch.no_grad()
def interleaved_speedup(
    teacher,
    teacher_dataset: Dataset,
    teacher_pad_id: int,
    student,
    student_dataset: Dataset,
    student_pad_id: int,
    batch_size: int = 32,
    batches: int = 5,
    repeats: int = 11,
) -> dict:
    """Inference speed-up of ``student`` over ``teacher`` on the same rows (each model reads its own
    tokenization of them), timed ``repeats`` times *interleaved*: each repetition times both models
    back to back, in alternating order (teacher first, then student first), so a slow stretch of the
    machine hits both. One warm-up repetition is not counted.

    Returns the median seconds of each model, the median of the per-repetition ratios
    ``t_teacher / t_student`` as ``speedup``, and that ratio's spread (quartiles, min, max).
    """
    if len(teacher_dataset) != len(student_dataset):
        raise ValueError("teacher and student must be timed on the same rows")
    models = {
        "teacher": (teacher, teacher_dataset, teacher_pad_id),
        "student": (student, student_dataset, student_pad_id),
    }
    prepared, devices = {}, {}
    for name, (model, dataset, pad) in models.items():
        model.eval()
        devices[name] = next(model.parameters()).device
        prepared[name] = list(padded_batches(dataset, pad, batch_size, devices[name], limit=batches))
    times: dict[str, list[float]] = {"teacher": [], "student": []}
    for repetition in range(repeats + 1):
        order = ("teacher", "student") if repetition % 2 == 0 else ("student", "teacher")
        for name in order:
            seconds = _timed(models[name][0], prepared[name], devices[name])
            if repetition > 0:  # the first repetition warms up
                times[name].append(seconds)
    ratios = [t / s for t, s in zip(times["teacher"], times["student"])]
    return {
        "teacher_seconds": statistics.median(times["teacher"]),
        "student_seconds": statistics.median(times["student"]),
        "speedup": statistics.median(ratios),
        "speedup_spread": {
            "q1": quantile(ratios, 0.25), "q3": quantile(ratios, 0.75), "min": min(ratios), "max": max(ratios),
            "repeats": repeats, "batches": len(prepared["student"]), "batch_size": batch_size,
        },
    }  # fmt: skip
