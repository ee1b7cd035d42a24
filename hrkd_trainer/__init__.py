"""hrkd-trainer: multi-domain knowledge distillation (HRKD, Dong et al., EMNLP 2021) for 🤗 Trainer."""

from .baselines import TEACHER_TYPES, distill_per_domain, train_teacher
from .collate import MultiDomainCollator, check_token_alignment, same_tokenizer, tokenize_multi_domain
from .config import HRKDConfig, MultiDomainArguments
from .distill_model import DistillationModel, HiddenProjections
from .hub import PublishError, model_card, publish_run, stage_run
from .layer_map import LayerMap, parse_layer_map, uniform_layer_map
from .lora import LoraSettings, add_lora, merge_lora
from .meta_trainers import MetaDistillConfig, MetaDistillTrainer, MetaTeacherConfig, MetaTeacherTrainer
from .modeling import DomainExperts, MultiDomainModel, MultiDomainOutput, load_multi_domain
from .relational import RelationalBalancer
from .sampling import DomainBatchSampler, MixedBatchSampler
from .trainer import HRKDTrainer, MultiDomainTrainer

__version__ = "0.1.0"

__all__ = [
    "TEACHER_TYPES",
    "DistillationModel",
    "DomainBatchSampler",
    "DomainExperts",
    "HRKDConfig",
    "HRKDTrainer",
    "HiddenProjections",
    "LayerMap",
    "LoraSettings",
    "MetaDistillConfig",
    "MetaDistillTrainer",
    "MetaTeacherConfig",
    "MetaTeacherTrainer",
    "MixedBatchSampler",
    "MultiDomainArguments",
    "MultiDomainCollator",
    "MultiDomainModel",
    "MultiDomainOutput",
    "MultiDomainTrainer",
    "PublishError",
    "RelationalBalancer",
    "add_lora",
    "check_token_alignment",
    "distill_per_domain",
    "load_multi_domain",
    "merge_lora",
    "model_card",
    "parse_layer_map",
    "publish_run",
    "same_tokenizer",
    "stage_run",
    "tokenize_multi_domain",
    "train_teacher",
    "uniform_layer_map",
]
