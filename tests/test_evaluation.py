"""Inference timing: the interleaved teacher/student speed-up and its quartiles."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from hrkd_trainer.evaluation import interleaved_speedup, quantile


class Sleeper(torch.nn.Module):
    """Stands for a model whose forward takes ``seconds`` per batch; records the call order."""

    def __init__(self, seconds: float, name: str, calls: list):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seconds, self.name, self.calls = seconds, name, calls

    def forward(self, input_ids, attention_mask, token_type_ids, domain_ids):
        self.calls.append(self.name)
        time.sleep(self.seconds)
        return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], 2))


def rows(n: int) -> Dataset:
    return Dataset.from_dict(
        {
            "input_ids": [[1, 2, 3]] * n,
            "attention_mask": [[1, 1, 1]] * n,
            "domain_ids": [0] * n,
            "labels": [0] * n,
        }
    )


def test_quantile_matches_linear_interpolation():
    assert quantile([4, 1, 3, 2], 0.5) == 2.5
    assert quantile([1, 2, 3, 4, 5], 0.25) == 2.0
    assert quantile([10.0], 0.75) == 10.0


def test_speedup_is_the_median_ratio_of_interleaved_repeats():
    calls: list[str] = []
    teacher, student = Sleeper(0.012, "teacher", calls), Sleeper(0.003, "student", calls)
    speed = interleaved_speedup(
        teacher, rows(64), 0, student, rows(64), 0, batch_size=32, batches=1, repeats=6
    )
    assert 2.0 < speed["speedup"] < 6.0  # 4× by construction; sleep granularity gives slack
    spread = speed["speedup_spread"]
    assert spread["min"] <= spread["q1"] <= speed["speedup"] <= spread["q3"] <= spread["max"]
    assert (spread["repeats"], spread["batches"], spread["batch_size"]) == (6, 1, 32)
    assert speed["teacher_seconds"] > speed["student_seconds"]
    # a warm-up repetition plus 6, each model once per repetition, in alternating order
    assert calls == ["teacher", "student", "student", "teacher"] * 3 + ["teacher", "student"]


def test_speedup_needs_the_same_rows_for_both_models():
    calls: list[str] = []
    with pytest.raises(ValueError, match="same rows"):
        interleaved_speedup(Sleeper(0, "t", calls), rows(3), 0, Sleeper(0, "s", calls), rows(4), 0)


def test_correctness_and_accuracy_agree_with_accuracy_per_domain():
    from hrkd_trainer.evaluation import accuracy_of_correct, accuracy_per_domain, correctness

    splits = {"a": Dataset.from_dict({"labels": [0, 1, 1, 0]}), "b": Dataset.from_dict({"labels": [1, 1]})}
    predictions = {"a": [0, 1, 0, 1], "b": [1, 1]}
    correct = correctness(predictions, splits)
    assert correct == {"a": [1, 1, 0, 0], "b": [1, 1]}
    assert accuracy_of_correct(correct) == {"a": 0.5, "b": 1.0, "average": 0.75}
    assert accuracy_per_domain(predictions, splits) == accuracy_of_correct(correct)


def test_mean_ratios_and_spread_of_a_ratio_history():
    from hrkd_trainer.training_logs import mean_ratios, ratio_spread

    history = [
        {"step": 5, "ratios": [[0.5, 0.5], [0.2, 0.8]]},
        {"step": 10, "ratios": [[0.5, 0.5], [0.4, 0.6]]},
    ]
    assert [pytest.approx(row) for row in mean_ratios(history)] == [[0.5, 0.5], [0.3, 0.7]]
    assert ratio_spread(history, 2) == pytest.approx(0.3)
    assert mean_ratios([]) is None and ratio_spread([], 2) == 0.0
