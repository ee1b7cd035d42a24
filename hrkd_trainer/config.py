"""Configuration dataclasses. Both extend ``transformers.TrainingArguments``, so every Trainer flag
works too, and both parse with ``HfArgumentParser`` from CLI flags or a YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

DISTILL_LOSSES = ("embedding", "attention", "hidden", "prediction")


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
        super().__post_init__()
        if self.per_domain_train_batch_size < 1:
            raise ValueError(
                f"--per_domain_train_batch_size must be >= 1, got {self.per_domain_train_batch_size}"
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

    def __post_init__(self):
        super().__post_init__()
        unknown = [name for name in self.distill_losses if name not in DISTILL_LOSSES]
        if unknown:
            raise ValueError(
                f"--distill_losses: unknown loss(es) {unknown}; choose from {list(DISTILL_LOSSES)}"
            )
        if not self.distill_losses:
            raise ValueError("--distill_losses is empty: at least one distillation loss must be on")
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
