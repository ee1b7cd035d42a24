"""Per-domain metrics (plain numpy: ``evaluate.load`` needs the Hub)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def accuracy_metrics(eval_prediction) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: accuracy of argmax predictions."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    predictions = np.asarray(logits).argmax(axis=-1)
    return {"accuracy": float((predictions == np.asarray(labels)).mean())}


def average_over_domains(
    metrics: Mapping[str, float], prefix: str, domains: Sequence[str], name: str
) -> float:
    """Unweighted mean of ``{prefix}_{domain}_{name}`` over domains (the paper's "Average" column)."""
    values = [metrics[f"{prefix}_{d}_{name}"] for d in domains if f"{prefix}_{d}_{name}" in metrics]
    if len(values) != len(domains):
        missing = [d for d in domains if f"{prefix}_{d}_{name}" not in metrics]
        raise KeyError(f"no {name} for domain(s) {missing} in the evaluation results")
    return float(sum(values) / len(values))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
