"""The runs of the paper report (``benchmarks/report.py``): presets, rows, teachers and students.

One *cell* is one student row trained at one seed on one share of the training data. Every cell of
a seed and a share uses that seed's teachers (trained once per teacher type and share, reused by
every row that distils them), the same pretrained student layers, the same data and the same number
of epochs, and is evaluated on the whole test splits; dev picks each run's snapshot. A finished
cell is a JSON file and is never recomputed, so a killed report resumes after its last finished run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field

from filelock import FileLock

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainArguments, MultiDomainModel, tokenize_splits
from hrkd_trainer.baselines import add_instance_weights, distill_per_domain, fine_tune, train_teacher
from hrkd_trainer.config import MetaKDFields
from hrkd_trainer.data.common import few_shot
from hrkd_trainer.evaluation import predict_per_domain
from hrkd_trainer.metakd import DomainCorruption, encoder_prototype_scores
from hrkd_trainer.modeling import load_multi_domain
from hrkd_trainer.results import write_json


@dataclass(frozen=True)
class Preset:
    """Everything a report run holds fixed. ``train_fraction`` is the tables' share of each domain's
    train split; the few-shot rates are shares of ``few_shot_pool`` (the paper: of the whole split)."""

    name: str
    data: str  # vader | amazon | mnli
    teacher_init: str
    student_init: str
    student_layers: int
    train_fraction: float
    few_shot_pool: float
    few_shot_rates: tuple[float, ...]
    few_shot_learning_rates: tuple[float, ...]  # dev chooses one
    seeds: tuple[int, ...]
    teacher_epochs: float
    teacher_learning_rate: float
    epochs: float
    learning_rate: float
    per_domain_batch: int
    max_length: int
    few_shot_min_steps: int = 0  # stretch epochs so a tiny share still trains this many steps
    dev_per_domain: int | None = None  # dev rows per domain that pick snapshots (None: all)
    evaluations: int = 3  # dev evaluations (and snapshots) per run, evenly spaced
    losses: tuple[str, ...] = ("embedding", "hidden", "prediction")
    use_cpu: bool = True
    bf16: bool = False
    description: str = ""


PRESETS = {
    "cpu": Preset(
        name="cpu", data="vader", teacher_init="minilm-l6", student_init="minilm-l6", student_layers=3,
        train_fraction=0.04, few_shot_pool=0.2, few_shot_rates=(0.02, 0.05, 0.1, 0.2),
        few_shot_learning_rates=(5e-5, 5e-4), seeds=(1, 2, 3), teacher_epochs=3, teacher_learning_rate=2e-4,
        epochs=3, learning_rate=5e-4, per_domain_batch=16, max_length=64, few_shot_min_steps=30,
        dev_per_domain=150, description="VADER (offline), MiniLM-L6 teacher → its pretrained first 3 layers, 2-core CPU",
    ),
    "paper": Preset(
        name="paper", data="amazon", teacher_init="bert-base-uncased",
        student_init="huawei-noah/TinyBERT_General_4L_312D", student_layers=4, train_fraction=1.0,
        few_shot_pool=1.0, few_shot_rates=(0.02, 0.05, 0.1, 0.2), few_shot_learning_rates=(5e-5, 5e-4),
        seeds=(1, 2, 3, 4, 5), teacher_epochs=3, teacher_learning_rate=5e-5, epochs=10, learning_rate=5e-4,
        per_domain_batch=8, max_length=128, losses=("embedding", "attention", "hidden", "prediction"),
        use_cpu=False, bf16=True,
        description="the paper's settings (§3.3): BERT-base → TinyBERT-4L-312, batch 32, length 128, one GPU",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One teacher → distiller row: ``method`` is ``tinybert``/``meta-distill`` (one student per domain)
    or ``multi-domain`` (one student, every domain in every step) with ``settings`` for HRKDConfig."""

    key: str
    label: str
    teacher: str
    method: str
    settings: dict = field(default_factory=dict)


BASELINE = "hrkd-uniform"  # uniform multi-domain KD: every paired interval is against it
TABLE_ROWS = [
    Row("single-tinybert", "BERT-single → TinyBERT-KD", "single", "tinybert"),
    Row("mix-tinybert", "BERT-mix → TinyBERT-KD", "mix", "tinybert"),
    Row("mtl-tinybert", "BERT-mtl → TinyBERT-KD", "mtl", "tinybert"),
    Row("meta-metadistill", "Meta-teacher → Meta-distillation", "meta", "meta-distill"),
    Row("hrkd-tinybert", "HRKD-teacher → TinyBERT-KD", "hrkd", "tinybert"),
    Row(BASELINE, "HRKD-teacher → multi-domain KD (uniform, our default)", "hrkd", "multi-domain"),
    Row("hrkd-hrkd", "HRKD-teacher → HRKD (paper's graph, frozen)", "hrkd", "multi-domain",
        {"relational_mode": "frozen"}),
    Row("hrkd-hrkd-learned", "HRKD-teacher → HRKD (graph learned)", "hrkd", "multi-domain",
        {"relational_mode": "learned"}),
    Row("hrkd-loss-progress", "HRKD-teacher → loss-progress weighting", "hrkd", "multi-domain",
        {"loss_weighting": "loss-progress"}),
]  # fmt: skip
#: Table 4: the relational modules removed progressively, as the paper does
ABLATION_STEPS = [
    ("self_attention", "− Self-attention"),
    ("compare_aggregate", "− Comp-Agg"),
    ("hierarchy", "− Hierarchical Rel."),
    ("domain_relation", "− Domain Rel."),
]


def ablation_rows() -> list[Row]:
    rows, removed = [], []
    for switch, label in ABLATION_STEPS:
        removed.append(switch)
        key = "hrkd-minus-" + "-".join(s.replace("_", "") for s in removed)
        settings = {"relational_mode": "frozen", "relational_ablations": list(removed)}
        rows.append(Row(key, label, "hrkd", "multi-domain", settings))
    return rows


ROWS = {row.key: row for row in [*TABLE_ROWS, *ablation_rows()]}
FEW_SHOT_BASE = "single-tinybert"
FEW_SHOT_ROWS = [FEW_SHOT_BASE, "meta-metadistill", "hrkd-hrkd", BASELINE]


def load_data(preset: Preset, data_path: str | None):
    """The preset's whole data set (train, dev, test)."""
    if preset.data == "vader":
        from hrkd_trainer.data import load_vader

        return load_vader()
    if data_path is None:
        raise SystemExit(f"--preset {preset.name} reads {preset.data} from files: pass --data_path")
    if preset.data == "amazon":
        from hrkd_trainer.data import load_amazon

        return load_amazon(data_path)
    from hrkd_trainer.data import load_mnli

    return load_mnli(data_path)


def epochs_for(preset: Preset, train, base_epochs: float) -> tuple[float, int]:
    """``base_epochs``, stretched so that a tiny share still trains ``few_shot_min_steps`` steps (an
    epoch is the largest domain once, ``per_domain_batch`` rows a step), and the steps that makes."""
    largest = max(Counter(train["domain"]).values())
    steps = math.ceil(largest / preset.per_domain_batch)
    epochs = max(base_epochs, preset.few_shot_min_steps / steps)
    return epochs, math.ceil(epochs * steps)


class Share:
    """One share of the training data (dev and test whole), tokenised once, with its teachers."""

    def __init__(
        self,
        preset: Preset,
        raw,
        fraction: float,
        tokenizer,
        sources: tuple[str, str],
        scratch: str,
        out: str,
    ):
        self.preset, self.fraction, self.tokenizer, self.out = preset, fraction, tokenizer, out
        self.source, self.source_student = sources  # teacher's and student's pretrained weights
        self.raw = few_shot(raw, fraction) if fraction < 1 else raw
        self.data = tokenize_splits(self.raw, tokenizer, preset.max_length)
        if preset.dev_per_domain:  # snapshots are picked on the first rows of each domain's dev split
            self.data.dev = {
                d: split.select(range(min(len(split), preset.dev_per_domain)))
                for d, split in self.data.dev.items()
            }
        self.scratch = os.path.join(scratch, f"f{fraction:g}")
        # one student per domain (TinyBERT-KD, Meta-distillation, the single teacher) trains as many steps
        # of its own domain as the multi-domain run takes in all: the same rows of that domain, the same steps
        self.epochs, self.steps = epochs_for(preset, self.raw["train"], preset.epochs)
        self.teacher_epochs, self.teacher_steps = epochs_for(preset, self.raw["train"], preset.teacher_epochs)
        self._weighted = None

    def sizes(self) -> dict:
        """Training rows per domain (by name)."""
        counts = Counter(self.data.train["domain_ids"])
        return {domain: counts[i] for i, domain in enumerate(self.data.domains)}

    def weighted(self):
        """The data with Meta-KD's prototype scores t_i (from the pretrained teacher encoder)."""
        if self._weighted is None:
            scores = encoder_prototype_scores(self.source, self.raw["train"], self.preset.max_length)
            self._weighted = add_instance_weights(self.data, scores)
        return self._weighted

    def common_args(self, seed: int, output_dir: str) -> dict:
        preset = self.preset
        return dict(
            output_dir=output_dir, seed=seed, data_seed=10_000 * seed,  # seeds' epoch orders never overlap
            per_domain_train_batch_size=preset.per_domain_batch, per_device_eval_batch_size=64,
            max_length=preset.max_length, eval_strategy="steps", save_strategy="steps", load_best_model_at_end=True,
            eval_steps=1 / preset.evaluations, save_steps=1 / preset.evaluations,  # ratios of the run's steps
            metric_for_best_model="avg_accuracy", save_total_limit=1, logging_steps=5, report_to="none",
            disable_tqdm=True, use_cpu=preset.use_cpu, bf16=preset.bf16, warmup_steps=0.1, weight_decay=0.01,
        )  # fmt: skip

    def teacher(self, seed: int, kind: str):
        """The seed's teacher of ``kind``: trained once (under a file lock: report workers share it),
        then loaded from the scratch folder."""
        folder = os.path.join(self.scratch, f"seed{seed}", f"teacher-{kind}")
        os.makedirs(folder, exist_ok=True)
        with FileLock(folder + ".lock"):
            return self._teacher(seed, kind, folder)

    def _teacher(self, seed: int, kind: str, folder: str):
        done = os.path.join(folder, "done.json")
        export = os.path.join(folder, "teacher")
        if os.path.exists(done):
            return load_multi_domain(export), DomainCorruption.load(export)
        work = os.path.join(folder, "checkpoints")
        shutil.rmtree(work, ignore_errors=True)
        args = MultiDomainArguments(
            **self.common_args(seed, work),
            num_train_epochs=self.teacher_epochs,
            max_steps=self.teacher_steps if kind == "single" else -1,
            learning_rate=self.preset.teacher_learning_rate,
        )
        data = self.weighted() if kind == "meta" else self.data
        begin = time.time()
        trained = train_teacher(kind, self.source, data, args, self.tokenizer, export, meta=MetaKDFields())
        seconds = time.time() - begin
        shutil.rmtree(work, ignore_errors=True)
        record = {"seed": seed, "kind": kind, "fraction": self.fraction, "seconds": seconds}
        if self.fraction == self.preset.train_fraction:  # the tables report teachers; few-shot shares do not
            test = predict_per_domain(trained.model, self.data.test, self.tokenizer.pad_token_id)
            record.update(accuracy_fields(correctness(test, self.data.test)))
        # every share's teacher is recorded: its time counts in the report's compute
        write_json(teacher_path(self.out, self.fraction, seed, kind), record)
        write_json(done, record)
        return trained.model, trained.corruption


def correctness(predictions: dict, splits: dict) -> dict:
    return {d: [int(p == y) for p, y in zip(predictions[d], splits[d]["labels"])] for d in predictions}


def accuracy_fields(correct: dict) -> dict:
    accuracy = {d: sum(c) / len(c) for d, c in correct.items()}
    accuracy["average"] = sum(accuracy.values()) / len(correct)
    return {"test_accuracy": accuracy, "test_correct": correct}


def teacher_path(out: str, fraction: float, seed: int, kind: str) -> str:
    return os.path.join(out, "runs", f"f{fraction:g}", f"seed{seed}", f"teacher-{kind}.json")


def cell_path(out: str, fraction: float, seed: int, row: str, learning_rate: float) -> str:
    return os.path.join(out, "runs", f"f{fraction:g}", f"seed{seed}", f"{row}-lr{learning_rate:g}.json")


def run_cell(share: Share, out: str, seed: int, row: Row, learning_rate: float) -> dict:
    """Train (or read) one student row at one seed on one share of the data."""
    path = cell_path(out, share.fraction, seed, row.key, learning_rate)
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    teacher, corruption = share.teacher(seed, row.teacher)
    work = os.path.join(share.scratch, f"seed{seed}", "work", f"{row.key}-lr{learning_rate:g}")
    shutil.rmtree(work, ignore_errors=True)  # a killed run's checkpoints must not count as this run's
    preset = share.preset
    config = HRKDConfig(
        **share.common_args(seed, work), num_train_epochs=share.epochs, learning_rate=learning_rate,
        max_steps=share.steps if row.method != "multi-domain" else -1, distill_losses=list(preset.losses),
        # meta-distillation reads the teacher's domain module every step: it cannot use the cache
        teacher_cache=row.method != "meta-distill", teacher_cache_dir=os.path.join(work, "cache"),
        **row.settings,
    )  # fmt: skip

    def new_student(domains):
        return MultiDomainModel.from_encoder(
            share.source_student,
            domains,
            share.data.labels,
            num_hidden_layers=preset.student_layers,
            seed=seed,
        )

    begin = time.time()
    ratios, steps, dev_best = [], None, None
    if row.method == "multi-domain":
        trainer = fine_tune(
            new_student(share.data.domains), share.data, config, share.tokenizer, None, HRKDTrainer,
            teacher_model=teacher,
        )  # fmt: skip
        student, steps, dev_best = trainer.student, trainer.state.global_step, trainer.state.best_metric
        ratios = trainer.ratio_history()
    else:
        data = share.weighted() if row.method == "meta-distill" else share.data
        student = distill_per_domain(
            row.method, teacher, new_student, data, config, share.tokenizer, os.path.join(work, "export"),
            teacher_corruption=corruption, meta=MetaKDFields(),
        )  # fmt: skip
    seconds = time.time() - begin
    test = correctness(
        predict_per_domain(student, share.data.test, share.tokenizer.pad_token_id), share.data.test
    )
    dev = correctness(
        predict_per_domain(student, share.data.dev, share.tokenizer.pad_token_id), share.data.dev
    )
    dev_accuracy = accuracy_fields(dev)["test_accuracy"]
    result = {
        "seed": seed, "row": row.key, "label": row.label, "teacher": row.teacher, "method": row.method,
        "settings": row.settings, "fraction": share.fraction, "learning_rate": learning_rate,
        "epochs": share.epochs, "per_domain_steps": share.steps if row.method != "multi-domain" else None, "train_sizes": share.sizes(), "steps": steps, "train_seconds": seconds,
        "dev_accuracy": dev_accuracy, "dev_best_avg_accuracy": dev_best, **accuracy_fields(test),
        "final_ratios": ratios[-1]["ratios"] if ratios else None,
        "mean_ratios": mean_ratios(ratios),
        "ratio_spread": max((abs(r - 1 / len(test)) for h in ratios for row_ in h["ratios"] for r in row_), default=0.0),
    }  # fmt: skip
    write_json(path, result)
    shutil.rmtree(work, ignore_errors=True)
    return result


def mean_ratios(history: list[dict]) -> list[list[float]] | None:
    """The ratios (positions × domains) averaged over the logged windows of training."""
    if not history:
        return None
    rows = [h["ratios"] for h in history]
    return [
        [sum(r[m][d] for r in rows) / len(rows) for d in range(len(rows[0][0]))] for m in range(len(rows[0]))
    ]
