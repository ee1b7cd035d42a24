"""Configuration dataclasses. Both extend ``transformers.TrainingArguments``, so every Trainer flag
works too, and both parse with ``HfArgumentParser`` from CLI flags or a YAML file."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

logger = logging.getLogger(__name__)

DISTILL_LOSSES = ("embedding", "attention", "hidden", "prediction")
RELATIONAL_MODES = ("off", "frozen", "learned")
DOMAIN_SAMPLING = ("every-domain", "one-domain", "pooled")
RELATIONAL_ABLATIONS = ("self_attention", "compare_aggregate", "hierarchy", "domain_relation")


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

    per_domain_train_batch_size: int = field(
        default=8,
        metadata={
            "help": "Examples of each domain per device per step (the paper: 32 per domain in total, "
            "e.g. 8 per GPU on 4 GPUs). A step holds this many examples of every domain."
        },
    )
    domains: list[str] | None = field(
        default=None,
        metadata={"help": "Domains to train on, in domain-id order (default: all domains of the data)."},
    )
    fit_domain: str | None = field(
        default=None,
        metadata={
            "help": "Domain whose size sets the epoch length (default: the largest). Smaller domains are "
            "cycled; larger ones are subsampled each epoch."
        },
    )
    domain_sampling: str = field(
        default="every-domain",
        metadata={
            "help": "How training batches are drawn. 'every-domain' (HRKD §2.1): each step holds "
            "--per_domain_train_batch_size examples of every domain. 'one-domain' (BERT_B-mtl, MT-DNN): each "
            "step is a batch of --per_domain_train_batch_size examples of one domain, domains in proportion "
            "to their size. 'pooled' (BERT_B-mix, meta-teacher): batches of that size from all domains "
            "shuffled together.",
            "choices": list(DOMAIN_SAMPLING),
        },
    )
    max_length: int = field(
        default=128, metadata={"help": "Maximum tokens per example (longer inputs are truncated)."}
    )
    padding: str = field(
        default="longest",
        metadata={
            "help": "'longest': pad each batch to its longest example (dynamic padding, fast); "
            "'max_length': pad everything to --max_length, as the released HRKD code does.",
            "choices": ["longest", "max_length"],
        },
    )
    pad_to_multiple_of: int | None = field(
        default=None, metadata={"help": "Round padded lengths up to a multiple of this (e.g. 8 on GPUs)."}
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Kept False: the multi-domain collator needs the domain ids the model does not name."
        },
    )

    def __post_init__(self):
        if not self.use_cpu and launched_without_accelerator():
            # transformers only sets up CPU data parallelism (gloo) with use_cpu=True; without it, each of
            # the N launched processes would silently train alone on the whole data
            logger.info("no GPU found under a multi-process launch: use_cpu=True (gloo data parallelism)")
            self.use_cpu = True
        super().__post_init__()
        if self.per_domain_train_batch_size < 1:
            raise ValueError(
                f"--per_domain_train_batch_size must be >= 1, got {self.per_domain_train_batch_size}"
            )
        if self.domain_sampling not in DOMAIN_SAMPLING:
            raise ValueError(
                f"--domain_sampling must be one of {list(DOMAIN_SAMPLING)}, got {self.domain_sampling!r}"
            )
        if self.padding not in ("longest", "max_length"):
            raise ValueError(f"--padding must be 'longest' or 'max_length', got {self.padding!r}")
        if self.max_length < 2:
            raise ValueError(f"--max_length must be >= 2, got {self.max_length}")
        if self.fit_domain and self.domains and self.fit_domain not in self.domains:
            raise ValueError(f"--fit_domain {self.fit_domain!r} is not one of --domains {self.domains}")


@dataclass
class HRKDConfig(MultiDomainArguments):
    """Distillation settings (HRKD §2.1, eq. 1-5). Defaults follow the paper (§3.3) and the release."""

    temperature: float = field(
        default=1.0, metadata={"help": "Softmax temperature t of the prediction loss (eq. 2). Paper: 1."}
    )
    pred_loss_weight: float = field(
        default=1.0,
        metadata={
            "help": "γ, the weight of the prediction loss (eq. 5). Paper: 1. The released code averages the "
            "soft cross-entropy over classes too; γ = 1/C reproduces that scale."
        },
    )
    distill_losses: list[str] = field(
        default_factory=lambda: list(DISTILL_LOSSES),
        metadata={
            "help": "Which losses are on: any of embedding (eq. 1), attention (eq. 3), hidden (eq. 4), "
            "prediction (eq. 2)."
        },
    )
    layer_map: str = field(
        default="uniform",
        metadata={
            "help": "Student→teacher layer map: 'uniform' (student layer m ← teacher layer m·N/M, as "
            "TinyBERT/HRKD) or explicit 1-based pairs such as '1:3,2:6,3:9,4:12'."
        },
    )
    mask_padding: bool = field(
        default=True,
        metadata={
            "help": "Average token-level losses over real tokens only. False averages over every padded "
            "position as the released code does (then use --padding max_length to match it exactly)."
        },
    )
    attention_head_reduction: str = field(
        default="none",
        metadata={
            "help": "'none': match attention head by head (head counts must be equal); 'mean': compare "
            "head-averaged scores, which allows different head counts.",
            "choices": ["none", "mean"],
        },
    )
    hidden_projection: str = field(
        default="auto",
        metadata={
            "help": "Projections W^embd, W^hidn_m from student to teacher width: 'linear' (learned, one per "
            "position, as the paper), 'identity' (widths must match), or 'auto' (identity when the widths "
            "match, else linear).",
            "choices": ["auto", "linear", "identity"],
        },
    )

    # ---- HRKD's relational module (§2.2-2.3, eq. 6-17)
    relational_mode: str = field(
        default="off",
        metadata={
            "help": "'off': uniform domain weights (eq. 5, multi-domain KD). 'frozen': HRKD ratios (eq. 17) from "
            "a relational module that stays at its random initialisation, as the released code (its "
            "gradient still reaches the student through the ratios). 'learned': the module is trained too, "
            "in its own optimizer group (--relational_learning_rate, --relational_weight_decay).",
            "choices": list(RELATIONAL_MODES),
        },
    )
    relational_ablations: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Table 4's ablations, any of: self_attention (RP_m = own prototype), compare_aggregate "
            "(graph input = mean of positions 0..m), hierarchy (graph input = position m only), "
            "domain_relation (uniform ratios at the same loss scale)."
        },
    )
    relational_learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "Learning rate of the relational module in 'learned' mode (chosen on VADER dev: at 1e-4 the module barely moves from its initialisation)."
        },
    )
    relational_weight_decay: float = field(
        default=0.0, metadata={"help": "Weight decay of the relational module in 'learned' mode."}
    )
    relational_heads: int = field(
        default=8, metadata={"help": "K, heads of the first graph layer (eq. 9). Release: 8."}
    )
    relational_hidden_size: int | None = field(
        default=None,
        metadata={"help": "F', features per graph head (default: the prototype width, as the release)."},
    )
    relational_dropout: float = field(
        default=0.1, metadata={"help": "Dropout on graph nodes and attention coefficients (release: 0.1)."}
    )
    relational_graph_residual: bool = field(
        default=False,
        metadata={
            "help": "Not in the paper: add each domain's own features to its GAT aggregate (both layers). Without "
            "it, GATs on the complete domain graph give every domain the same output, so r = 1/D up to dropout."
        },
    )
    prototype_mask_padding: bool = field(
        default=True,
        metadata={
            "help": "Prototypes (eq. 6) average real tokens only. False averages every position, padding "
            "included, as the released code (then they depend on how much each batch is padded)."
        },
    )
    teacher_cache: bool = field(
        default=False,
        metadata={
            "help": "Cache the frozen teacher's outputs on disk before training (only the mapped layers, only real "
            "tokens, --teacher_cache_dtype precision, memory-mapped) and read them instead of running the "
            "teacher in every step. Rebuilt whenever the teacher, tokenizer, data or layer map change. "
            "Needs --mask_padding (padded positions are not stored)."
        },
    )
    teacher_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where teacher caches live, one folder per key (default: $HRKD_CACHE/teacher_outputs, "
            "i.e. ~/.cache/hrkd_trainer/teacher_outputs). Delete a folder to free its space."
        },
    )
    teacher_cache_dtype: str = field(
        default="float16",
        metadata={
            "help": "Storage precision of cached hidden states and attention scores (logits stay float32).",
            "choices": ["float16", "bfloat16", "float32"],
        },
    )
    ratio_scale: str = field(
        default="mean",
        metadata={
            "help": "'mean': eq. 17 multiplied by D, so that uniform ratios give eq. 5 exactly (the same loss "
            "scale as multi-domain KD); 'sum': eq. 17 as written (ratios sum to 1, γ/D on the prediction loss).",
            "choices": ["mean", "sum"],
        },
    )
    ratio_entropy_weight: float = field(
        default=0.0,
        metadata={
            "help": "λ ≥ 0: add λ·Σ_m KL(r_m ‖ uniform) to the loss, which keeps learned ratios from collapsing "
            "onto the lowest-loss domain."
        },
    )
    ratio_gradient: bool = field(
        default=True,
        metadata={
            "help": "Let eq. 17's gradient reach the student through the ratios (prototypes → graphs), as the "
            "released code does. False detaches the prototypes: the student only sees the ratios as weights."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.relational_mode not in RELATIONAL_MODES:
            raise ValueError(
                f"--relational_mode must be one of {list(RELATIONAL_MODES)}, got {self.relational_mode!r}"
            )
        bad = [a for a in self.relational_ablations if a not in RELATIONAL_ABLATIONS]
        if bad:
            raise ValueError(
                f"--relational_ablations: unknown ablation(s) {bad}; choose from {list(RELATIONAL_ABLATIONS)}"
            )
        if self.relational_ablations and self.relational_mode == "off":
            raise ValueError(
                "--relational_ablations needs the relational module: set --relational_mode frozen or learned"
            )
        if self.ratio_scale not in ("mean", "sum"):
            raise ValueError(f"--ratio_scale must be 'mean' or 'sum', got {self.ratio_scale!r}")
        if self.ratio_entropy_weight < 0:
            raise ValueError(f"--ratio_entropy_weight must be >= 0, got {self.ratio_entropy_weight}")
        if not 0.0 <= self.relational_dropout < 1.0:
            raise ValueError(f"--relational_dropout must be in [0, 1), got {self.relational_dropout}")
        if self.relational_heads < 1:
            raise ValueError(f"--relational_heads must be >= 1, got {self.relational_heads}")
        unknown = [name for name in self.distill_losses if name not in DISTILL_LOSSES]
        if unknown:
            raise ValueError(
                f"--distill_losses: unknown loss(es) {unknown}; choose from {list(DISTILL_LOSSES)}"
            )
        if not self.distill_losses:
            raise ValueError("--distill_losses is empty: at least one distillation loss must be on")
        if self.teacher_cache and not self.mask_padding:
            raise ValueError(
                "--teacher_cache stores the teacher's outputs at real tokens only, but --mask_padding false "
                "makes the losses read padded positions too: turn one of them off"
            )
        if self.teacher_cache_dtype not in ("float16", "bfloat16", "float32"):
            raise ValueError(
                f"--teacher_cache_dtype must be float16, bfloat16 or float32, got {self.teacher_cache_dtype!r}"
            )
        if self.temperature <= 0:
            raise ValueError(f"--temperature must be > 0, got {self.temperature}")
        if self.attention_head_reduction not in ("none", "mean"):
            raise ValueError(
                f"--attention_head_reduction must be 'none' or 'mean', got {self.attention_head_reduction!r}"
            )
        if self.hidden_projection not in ("auto", "linear", "identity"):
            raise ValueError(
                f"--hidden_projection must be auto, linear or identity, got {self.hidden_projection!r}"
            )

    def uses(self, loss: str) -> bool:
        return loss in self.distill_losses

    @property
    def relational(self) -> bool:
        """Whether eq. 17 (HRKD ratios) replaces eq. 5."""
        return self.relational_mode != "off"


def derive_arguments(base: TrainingArguments, cls=None, **overrides):
    """A copy of ``base`` as ``cls`` (fields of ``cls`` only) with ``overrides`` applied."""
    cls = type(base) if cls is None else cls
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init and f.name in names}
    values.update(overrides)
    if isinstance(values.get("report_to"), list) and not values["report_to"]:
        values["report_to"] = "none"
    return cls(**values)
