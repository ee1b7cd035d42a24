"""One cell of a study: one row trained at one seed on one share of the data, through the runner's own
stages (distillation, or the baseline stage for a ``fine-tune`` row), evaluated on the whole test
splits, and written as one JSON file (``store.py``).

Every cell of a seed and a share gets that seed's teachers, the same pretrained student layers (the
same initial weights), the same data and the same number of epochs; dev (the preset's dev rows) picks
the snapshot that is kept; test reports. The cell's file holds per-domain accuracy and which test
examples the student got right, so that any two rows can later be paired example by example.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

from filelock import FileLock

from ..evaluation import accuracy_of_correct, correctness, interleaved_speedup, predict_per_domain
from ..results import model_bytes, write_json
from ..run import StageRecord, distill_student, train_baseline
from ..training_logs import mean_ratios, ratio_spread
from ..vocabulary import Method
from .share import Share
from .spec import FINE_TUNE, Row
from .store import cell_path, read_json

logger = logging.getLogger(__name__)


def cell_flags(share: Share, row: Row, seed: int, learning_rate: float, work: str) -> dict:
    """The recipe flags of one cell: the preset's, the row's, then what the protocol fixes (the seed,
    the epochs of the share, the per-domain rows' steps, the learning rate, the teacher-output cache
    shared by every row that distils the same teacher)."""
    flags = {**row.flags, **share.run_flags(seed, work), "num_train_epochs": share.epochs}
    if row.method == FINE_TUNE:
        return {**flags, "baseline_learning_rate": learning_rate, "max_steps": -1}
    flags.update(method=row.method, teacher_type=row.teacher, learning_rate=learning_rate)
    # one student per domain trains as many steps of its domain as the multi-domain run takes in all
    flags["max_steps"] = share.steps if row.per_domain else -1
    if row.method == Method.META_DISTILL:  # it reads the teacher's domain module every step: no cache
        flags["teacher_cache"] = False
    else:
        flags["teacher_cache_dir"] = os.path.join(share.teacher_folder(seed, row.teacher), "cache")
    return flags


def run_cell(share: Share, row: Row, seed: int, learning_rate: float) -> dict:
    """Train (or read back) one row at one seed on one share; the cell's record. Two tasks may need
    the same cell (the largest few-shot rate is the tables' share): a file lock makes the second wait
    and read the first one's result."""
    path = cell_path(share.out, share.fraction, seed, row.key, learning_rate)
    if os.path.exists(path):
        return read_json(path)
    work = os.path.join(share.scratch, f"seed{seed}", "work", f"{row.key}-lr{learning_rate:g}")
    os.makedirs(os.path.dirname(work), exist_ok=True)
    with FileLock(work + ".lock"):
        if os.path.exists(path):
            return read_json(path)
        return _train_cell(share, row, seed, learning_rate, path, work)


def _train_cell(share: Share, row: Row, seed: int, learning_rate: float, path: str, work: str) -> dict:
    shutil.rmtree(work, ignore_errors=True)  # a killed cell's checkpoints must not count as this cell's
    teacher, corruption = share.teacher(seed, row.teacher) if row.teacher else (None, None)
    recipe, config = share.parse(cell_flags(share, row, seed, learning_rate, work))
    base = share.state_for(recipe, meta=row.method == Method.META_DISTILL)
    state = dataclasses.replace(
        base, recipe=recipe, config=config, teacher=teacher, corruption=corruption,
        record=StageRecord(work), timings={}, trained={},
    )  # fmt: skip
    if row.method == FINE_TUNE:
        train_baseline(state)
        student, stage = state.baseline, "baseline"
    else:
        distill_student(state)
        student, stage = state.student, "distillation"
    trained = state.trained.get(stage, {})
    pad = share.state.tokenizer.pad_token_id
    test = correctness(predict_per_domain(student, share.data.test, pad), share.data.test)
    dev = correctness(predict_per_domain(student, share.data.dev, pad), share.data.dev)
    ratios = trained.get("ratios") or []
    result = {
        "seed": seed, "row": row.key, "label": row.label, "teacher": row.teacher, "method": row.method,
        "settings": row.flags, "fraction": share.fraction, "learning_rate": learning_rate, "epochs": share.epochs,
        "per_domain_steps": share.steps if row.per_domain else None, "train_sizes": share.sizes(),
        "transfer_rows": 0 if state.transfer is None else len(state.transfer),
        "steps": trained.get("steps"), "best_checkpoint_step": trained.get("best_checkpoint_step"),
        "train_seconds": state.timings[stage], "seconds_per_step": trained.get("seconds_per_step"),
        "dev_accuracy": accuracy_of_correct(dev), "dev_best_avg_accuracy": trained.get("best_metric"),
        "test_accuracy": accuracy_of_correct(test), "test_correct": test,
        "final_ratios": ratios[-1]["ratios"] if ratios else None, "mean_ratios": mean_ratios(ratios),
        "ratio_spread": ratio_spread(ratios, len(test)),
    }  # fmt: skip
    if share.preset.measure and teacher is not None:
        result["measures"] = measures(state, teacher, student)
    write_json(path, result)
    shutil.rmtree(work, ignore_errors=True)
    return result


def measures(state, teacher, student) -> dict:
    """Parameters and size of teacher and student, and the student's inference speed-up over the
    teacher (timed interleaved on the same test rows, each reading its own tokenization)."""
    first = state.domains[0]
    speed = interleaved_speedup(
        teacher, state.teacher_data.test[first], state.teacher_tokenizer.pad_token_id,
        student, state.student_data.test[first], state.tokenizer.pad_token_id,
        batches=state.recipe.speed_batches, repeats=state.recipe.speed_repeats,
    )  # fmt: skip
    return {
        "parameters": {"teacher": teacher.num_parameters(), "student": student.num_parameters()},
        "weights_bytes": {"teacher": model_bytes(teacher), "student": model_bytes(student)},
        "speedup": speed["speedup"],
        "speedup_spread": speed["speedup_spread"],
    }
