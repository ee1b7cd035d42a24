"""Configuration dataclasses. Both extend ``transformers.TrainingArguments``, so every Trainer flag
works too, and both parse with ``HfArgumentParser`` from CLI flags or a YAML file."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

import torch
from transformers import TrainingArguments

from .options import GROUP_META, MetaKDFields, check_range, option  # noqa: F401  (re-exported)
from .vocabulary import (
    Ablation,
    CacheDtype,
    DistillLoss,
    DomainSampling,
    HeadReduction,
    HiddenProjection,
    LossWeightingKind,
    Method,
    Padding,
    PredictionLoss,
    ProjectionInit,
    RatioScale,
    RelationalMode,
)

logger = logging.getLogger(__name__)

#: names kept for code written against 0.1 (the enums are the source)
DISTILL_LOSSES = tuple(DistillLoss.values())
RELATIONAL_MODES = tuple(RelationalMode.values())
DOMAIN_SAMPLING = tuple(DomainSampling.values())
RELATIONAL_ABLATIONS = tuple(Ablation.values())

#: ``--help`` groups: a field's entry in ``HELP_GROUPS``, else the ``help_group`` of the class that
#: declares it (``TrainingArguments``' own flags: "Trainer")
GROUP_MULTI_DOMAIN = "multi-domain training"
GROUP_DISTILLATION = "distillation (HRKD §2.1, eq. 1-5)"
GROUP_HRKD = "HRKD relational weighting (§2.2-2.3, eq. 6-17)"
GROUP_CACHE = "teacher-output cache"
HELP_GROUPS = {
    **dict.fromkeys(
        (
            "loss_weighting",
            "weighting_floor",
            "weighting_temperature",
            "weighting_ema",
            "weighting_step_size",
            "weighting_noise_std",
            "weighting_every",
        ),
        GROUP_HRKD,
    ),
    **dict.fromkeys(
        (
            "relational_mode",
            "relational_ablations",
            "relational_learning_rate",
            "relational_weight_decay",
            "relational_heads",
            "relational_hidden_size",
            "relational_dropout",
            "relational_graph_residual",
            "prototype_mask_padding",
            "ratio_scale",
            "ratio_entropy_weight",
            "ratio_gradient",
        ),
        GROUP_HRKD,
    ),
    **dict.fromkeys(("teacher_cache", "teacher_cache_dir", "teacher_cache_dtype"), GROUP_CACHE),
}


def launched_without_accelerator() -> bool:
    """True in one of several processes started by ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE``
    > 1) on a machine without a GPU or other accelerator."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:
        return not accelerator.is_available()
    return not torch.cuda.is_available()


@dataclass
class MultiDomainArguments(TrainingArguments):
    """Training arguments for multi-domain models: one sub-batch of every domain in every step.

    ``per_device_train_batch_size`` is not used for training: the batch of one step on one device
    is ``per_domain_train_batch_size × number of domains``.
    """

    help_group = GROUP_MULTI_DOMAIN

    per_domain_train_batch_size: int = option(
        8,
        help="Examples of each domain per device per step (the paper: 32 per domain in total, e.g. 8 per GPU "
        "on 4 GPUs). A step holds this many examples of every domain.",
    )
    domains: list[str] | None = option(
        None, help="Domains to train on, in domain-id order (default: all domains of the data)."
    )
    fit_domain: str | None = option(
        None,
        help="Domain whose size sets the epoch length (default: the largest). Smaller domains are cycled; "
        "larger ones are subsampled each epoch.",
    )
    domain_sampling: str = option(
        DomainSampling.EVERY_DOMAIN,
        help="How training batches are drawn. 'every-domain' (HRKD §2.1): each step holds "
        "--per_domain_train_batch_size examples of every domain. 'one-domain' (BERT_B-mtl, MT-DNN): each step "
        "is a batch of --per_domain_train_batch_size examples of one domain, domains in proportion to their "
        "size. 'pooled' (BERT_B-mix, meta-teacher): batches of that size from all domains shuffled together.",
        choices=DomainSampling,
    )
    max_length: int = option(128, help="Maximum tokens per example (longer inputs are truncated).")
    padding: str = option(
        Padding.LONGEST,
        help="'longest': pad each batch to its longest example (dynamic padding, fast); 'max_length': pad "
        "everything to --max_length, as the released HRKD code does.",
        choices=Padding,
    )
    pad_to_multiple_of: int | None = option(
        None, help="Round padded lengths up to a multiple of this (e.g. 8 on GPUs)."
    )
    export_domain_copies: bool = option(
        True,
        help="Exports (student, fine-tuned teacher) hold one AutoModelForSequenceClassification copy per domain "
        "besides the shared encoder: what you publish. False: the encoder once and the heads in one file, loaded by "
        "hrkd-trainer only (--teacher, MultiDomainModel.from_pretrained), as checkpoints always are.",
    )
    remove_unused_columns: bool = option(
        False, help="Kept False: the multi-domain collator needs the domain ids the model does not name."
    )

    def __post_init__(self):
        if not self.use_cpu and launched_without_accelerator():
            # transformers only sets up CPU data parallelism (gloo) with use_cpu=True; without it, each of
            # the N launched processes would silently train alone on the whole data
            logger.info("no GPU found under a multi-process launch: use_cpu=True (gloo data parallelism)")
            self.use_cpu = True
        super().__post_init__()
        check_range("--per_domain_train_batch_size", self.per_domain_train_batch_size, low=1)
        check_range("--learning_rate", self.learning_rate, low=0.0)
        check_range("--num_train_epochs", self.num_train_epochs, low=0.0)
        check_range("--weight_decay", self.weight_decay, low=0.0)
        self.domain_sampling = DomainSampling.parse(self.domain_sampling, "--domain_sampling")
        self.padding = Padding.parse(self.padding, "--padding")
        check_range("--max_length", self.max_length, low=2)
        if self.fit_domain and self.domains and self.fit_domain not in self.domains:
            raise ValueError(f"--fit_domain {self.fit_domain!r} is not one of --domains {self.domains}")


@dataclass
class HRKDConfig(MultiDomainArguments):
    """Distillation settings (HRKD §2.1, eq. 1-5, and the relational weighting of §2.2-2.3).
    Defaults follow the paper (§3.3) and the release."""

    help_group = GROUP_DISTILLATION

    temperature: float = option(1.0, help="Softmax temperature t of the prediction loss (eq. 2). Paper: 1.")
    prediction_loss: str = option(
        PredictionLoss.SOFT_CE,
        help="'soft-ce': eq. 2, the soft cross-entropy at temperature t (the paper). 'hinton': "
        "α·CE(gold labels) + (1−α)·t²·KL(teacher ‖ student) (Hinton et al. 2015; t² keeps the soft part's "
        "gradient scale independent of t), CE over the rows with a gold label only (not transfer text). With transfer text or --augment and neither "
        "this flag nor --hard_label_weight given, the default is 'hinton' with α = 0.5 (it beat fine-tuning the "
        "student in the distillation study; docs/compression.md).",
        choices=PredictionLoss,
    )
    hard_label_weight: float = option(
        0.0, help="α of --prediction_loss hinton: the weight of the gold labels' cross-entropy, in [0, 1]."
    )
    pred_loss_weight: float = option(
        1.0,
        help="γ, the weight of the prediction loss (eq. 5). Paper: 1. The released code averages the soft "
        "cross-entropy over classes too; γ = 1/C reproduces that scale.",
    )
    projection_init: str = option(
        ProjectionInit.RANDOM,
        help="How the learned projections W^embd, W^hidn_m start when the widths differ: 'random' (BERT's "
        "initialisation, as the paper) or 'lstsq' (the least-squares map from the student's to the teacher's "
        "states on the first --projection_init_examples training rows, so the hidden losses start from an aligned "
        "student instead of a random rotation).",
        choices=ProjectionInit,
    )
    projection_init_examples: int = option(256, help="Training rows whose tokens fit the lstsq projections.")
    distill_losses: list[str] = option(
        help="Which losses are on: any of embedding (eq. 1), attention (eq. 3), hidden (eq. 4), prediction "
        "(eq. 2).",
        choices=DistillLoss,
        default_factory=lambda: DistillLoss.values(),
    )
    layer_map: str = option(
        "uniform",
        help="Student→teacher layer map: 'uniform' (student layer m ← teacher layer m·N/M, as TinyBERT/HRKD) "
        "or explicit 1-based pairs such as '1:3,2:6,3:9,4:12'.",
    )
    mask_padding: bool = option(
        True,
        help="Average token-level losses over real tokens only. False averages over every padded position as "
        "the released code does (then use --padding max_length to match it exactly).",
    )
    attention_head_reduction: str = option(
        HeadReduction.NONE,
        help="'none': match attention head by head (head counts must be equal); 'mean': compare head-averaged "
        "scores, which allows different head counts.",
        choices=HeadReduction,
    )
    hidden_projection: str = option(
        HiddenProjection.AUTO,
        help="Projections W^embd, W^hidn_m from student to teacher width: 'linear' (learned, one per position, "
        "as the paper), 'identity' (widths must match), or 'auto' (identity when the widths match, else "
        "linear).",
        choices=HiddenProjection,
    )

    # ---- HRKD's relational module (§2.2-2.3, eq. 6-17)
    relational_mode: str = option(
        RelationalMode.OFF,
        help="'off': uniform domain weights (eq. 5, multi-domain KD). 'frozen': HRKD ratios (eq. 17) from a "
        "relational module that stays at its random initialisation, as the released code (its gradient still "
        "reaches the student through the ratios). 'learned': the module is trained too, in its own optimizer "
        "group (--relational_learning_rate, --relational_weight_decay). The recipes' default: frozen with "
        "--method hrkd, off otherwise.",
        choices=RelationalMode,
    )
    relational_ablations: list[str] = option(
        help="Table 4's ablations, any of: self_attention (RP_m = own prototype), compare_aggregate (graph "
        "input = mean of positions 0..m), hierarchy (graph input = position m only), domain_relation (uniform "
        "ratios at the same loss scale).",
        choices=Ablation,
        default_factory=list,
    )
    relational_learning_rate: float = option(
        1e-3,
        help="Learning rate of the relational module in 'learned' mode (chosen on VADER dev: at 1e-4 the "
        "module barely moves from its initialisation).",
    )
    relational_weight_decay: float = option(
        0.0, help="Weight decay of the relational module in 'learned' mode."
    )
    relational_heads: int = option(8, help="K, heads of the first graph layer (eq. 9). Release: 8.")
    relational_hidden_size: int | None = option(
        None,
        help="F', features per graph head (default: the prototype width, as the release).",
    )
    relational_dropout: float = option(
        0.1, help="Dropout on graph nodes and attention coefficients (release: 0.1)."
    )
    relational_graph_residual: bool = option(
        False,
        help="Not in the paper: add each domain's own features to its GAT aggregate (both layers). Without it, "
        "GATs on the complete domain graph give every domain the same output, so r = 1/D up to dropout.",
    )
    prototype_mask_padding: bool = option(
        True,
        help="Prototypes (eq. 6) average real tokens only. False averages every position, padding included, "
        "as the released code (then they depend on how much each batch is padded).",
    )
    ratio_scale: str = option(
        RatioScale.MEAN,
        help="'mean': eq. 17 multiplied by D, so that uniform ratios give eq. 5 exactly (the same loss scale as "
        "multi-domain KD); 'sum': eq. 17 as written (ratios sum to 1, γ/D on the prediction loss).",
        choices=RatioScale,
    )
    ratio_entropy_weight: float = option(
        0.0,
        help="λ ≥ 0: add λ·Σ_m KL(r_m ‖ uniform) to the loss, which keeps learned ratios from collapsing onto "
        "the lowest-loss domain.",
    )
    ratio_gradient: bool = option(
        True,
        help="Let eq. 17's gradient reach the student through the ratios (prototypes → graphs), as the released "
        "code does. False detaches the prototypes: the student only sees the ratios as weights.",
    )

    # ---- loss weighting strategies other than the paper's graph (weighting/adaptive.py)
    loss_weighting: str = option(
        LossWeightingKind.AUTO,
        help="How the per-domain, per-layer losses are weighted: 'auto' (uniform with --relational_mode off, "
        "else the paper's relational graph), 'uniform' (eq. 5), 'relational' (eq. 6-17), 'uniform-noise' "
        "(uniform plus per-step noise of --weighting_noise_std: a control), 'loss-progress' (more weight to "
        "domains whose losses fall slowest), 'group-dro' (online group DRO), 'gradient-alignment' (more weight to "
        "domains whose distillation gradient agrees with the labelled loss's). All but uniform use eq. 17's form.",
        choices=LossWeightingKind,
    )
    weighting_floor: float = option(
        0.05,
        help="Every domain keeps at least this ratio per position (loss-progress, group-dro, uniform-noise).",
    )
    weighting_temperature: float = option(
        0.1, help="Softmax temperature T of loss-progress and gradient-alignment."
    )
    weighting_ema: float = option(
        0.9, help="EMA factor β of the per-domain losses (loss-progress) or scores (gradient-alignment)."
    )
    weighting_every: int = option(
        4,
        help="gradient-alignment scores the gradients every this many steps (the others reuse the average); "
        "a scored step costs one more backward pass and a short one per layer and domain.",
    )
    weighting_step_size: float = option(
        0.01, help="Step size η of group-dro's exponentiated-gradient update."
    )
    weighting_noise_std: float = option(
        0.05,
        help="Standard deviation of each ratio's noise in uniform-noise (about the paper module's spread).",
    )

    shard_teacher: bool = option(
        False,
        help="Under FSDP2, shard the frozen teacher too (per transformer block, for inference) instead of a "
        "full copy per device: for teachers that do not fit one device. Ignored otherwise.",
    )

    # ---- the teacher-output cache
    teacher_cache: bool = option(
        False,
        help="Cache the frozen teacher's outputs on disk before training (only the mapped layers, only real "
        "tokens, --teacher_cache_dtype precision, memory-mapped) and read them instead of running the teacher "
        "in every step. Rebuilt whenever the teacher, tokenizer, data or layer map change. Needs "
        "--mask_padding (padded positions are not stored).",
    )
    teacher_cache_dir: str | None = option(
        None,
        help="Where teacher caches live, one folder per key (default: $HRKD_CACHE/teacher_outputs, i.e. "
        "~/.cache/hrkd_trainer/teacher_outputs). Delete a folder to free its space.",
    )
    teacher_cache_dtype: str = option(
        CacheDtype.FLOAT16,
        help="Storage precision of cached hidden states and attention scores (logits stay float32).",
        choices=CacheDtype,
    )

    def __post_init__(self):
        super().__post_init__()
        self.distill_losses = DistillLoss.parse_list(self.distill_losses, "--distill_losses", "loss(es)")
        if not self.distill_losses:
            raise ValueError("--distill_losses is empty: at least one distillation loss must be on")
        self.relational_mode = RelationalMode.parse(self.relational_mode, "--relational_mode")
        self.relational_ablations = Ablation.parse_list(
            self.relational_ablations, "--relational_ablations", "ablation(s)"
        )
        if self.relational_ablations and not self.relational:
            raise ValueError(
                "--relational_ablations needs the relational module: set --relational_mode frozen or learned"
            )
        self.ratio_scale = RatioScale.parse(self.ratio_scale, "--ratio_scale")
        self.attention_head_reduction = HeadReduction.parse(
            self.attention_head_reduction, "--attention_head_reduction"
        )
        self.hidden_projection = HiddenProjection.parse(self.hidden_projection, "--hidden_projection")
        self.teacher_cache_dtype = CacheDtype.parse(self.teacher_cache_dtype, "--teacher_cache_dtype")
        self.loss_weighting = LossWeightingKind.parse(self.loss_weighting, "--loss_weighting")
        if self.loss_weighting == LossWeightingKind.AUTO:
            self.loss_weighting = (
                LossWeightingKind.RELATIONAL if self.relational else LossWeightingKind.UNIFORM
            )
        elif (self.loss_weighting == LossWeightingKind.RELATIONAL) != self.relational:
            raise ValueError(
                f"--loss_weighting {self.loss_weighting} and --relational_mode {self.relational_mode} disagree: the "
                "relational graph needs --relational_mode frozen or learned, every other weighting --relational_mode off"
            )
        check_range("--weighting_floor", self.weighting_floor, low=0.0, high=1.0)
        check_range("--weighting_temperature", self.weighting_temperature, low=0, low_open=True)
        check_range("--weighting_ema", self.weighting_ema, low=0.0, high=1.0, high_open=True)
        check_range("--weighting_step_size", self.weighting_step_size, low=0.0)
        check_range("--weighting_every", self.weighting_every, low=1)
        check_range("--weighting_noise_std", self.weighting_noise_std, low=0.0)
        check_range("--ratio_entropy_weight", self.ratio_entropy_weight, low=0)
        check_range("--relational_dropout", self.relational_dropout, low=0.0, high=1.0, high_open=True)
        check_range("--relational_heads", self.relational_heads, low=1)
        check_range("--temperature", self.temperature, low=0, low_open=True)
        self.prediction_loss = PredictionLoss.parse(self.prediction_loss, "--prediction_loss")
        self.projection_init = ProjectionInit.parse(self.projection_init, "--projection_init")
        check_range("--projection_init_examples", self.projection_init_examples, low=1)
        check_range("--hard_label_weight", self.hard_label_weight, low=0.0, high=1.0)
        if self.hard_label_weight and self.prediction_loss != PredictionLoss.HINTON:
            raise ValueError(
                f"--hard_label_weight {self.hard_label_weight:g} needs --prediction_loss hinton (eq. 2 has no "
                f"gold-label term); with --prediction_loss {self.prediction_loss} give --hard_label_weight 0"
            )
        if self.teacher_cache and not self.mask_padding:
            raise ValueError(
                "--teacher_cache stores the teacher's outputs at real tokens only, but --mask_padding false "
                "makes the losses read padded positions too: turn one of them off"
            )

    def uses(self, loss: str) -> bool:
        return loss in self.distill_losses

    @property
    def relational(self) -> bool:
        """Whether eq. 17 (HRKD ratios) replaces eq. 5."""
        return self.relational_mode != RelationalMode.OFF

    @property
    def method_name(self) -> Method:
        """The multi-domain method these settings make: ``hrkd`` with ratios, else ``multi-domain``."""
        return Method.HRKD if self.relational else Method.MULTI_DOMAIN

    @property
    def adaptive_weighting(self) -> bool:
        """A weighting strategy other than uniform and the relational graph."""
        return self.loss_weighting not in (LossWeightingKind.UNIFORM, LossWeightingKind.RELATIONAL)


def derive_arguments(base: TrainingArguments, cls=None, **overrides):
    """A copy of ``base`` as ``cls`` (fields of ``cls`` only) with ``overrides`` applied."""
    cls = type(base) if cls is None else cls
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init and f.name in names}
    values.update(overrides)
    if isinstance(values.get("report_to"), list) and not values["report_to"]:
        values["report_to"] = "none"
    return cls(**values)
