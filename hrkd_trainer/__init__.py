"""hrkd-trainer: multi-domain knowledge distillation (HRKD, Dong et al., EMNLP 2021) for 🤗 Trainer."""

from .assets import offline_model_path
from .collate import MultiDomainCollator, check_token_alignment, same_tokenizer, tokenize_multi_domain
from .config import HRKDConfig, MultiDomainArguments
from .data.tokenized import TokenizedData, by_domain, tokenize_splits
from .distill_model import DistillationModel, HiddenProjections
from .hub import PublishError, model_card, publish_run, stage_run
from .layer_map import LayerMap, parse_layer_map, uniform_layer_map
from .lora import LoraSettings, add_lora, merge_lora
from .meta_trainers import MetaDistillConfig, MetaDistillTrainer, MetaTeacherConfig, MetaTeacherTrainer
from .modeling import DomainExperts, MultiDomainModel, MultiDomainOutput, load_multi_domain
from .multi_domain_trainer import MultiDomainTrainer
from .per_domain import distill_per_domain
from .relational import RelationalBalancer
from .sampling import DomainBatchSampler, MixedBatchSampler
from .teacher_training import TEACHER_TYPES, train_teacher
from .trainer import HRKDTrainer
from .vocabulary import Ablation, DistillLoss, DomainSampling, Method, RelationalMode, TeacherType
from .weighting import LossWeighting, RelationalWeighting, UniformWeighting

__version__ = "0.1.0"

__all__ = [
    "TEACHER_TYPES",
    "Ablation",
    "DistillLoss",
    "DistillationModel",
    "DomainBatchSampler",
    "DomainExperts",
    "DomainSampling",
    "HRKDConfig",
    "HRKDTrainer",
    "HiddenProjections",
    "LayerMap",
    "LoraSettings",
    "LossWeighting",
    "MetaDistillConfig",
    "MetaDistillTrainer",
    "MetaTeacherConfig",
    "MetaTeacherTrainer",
    "Method",
    "MixedBatchSampler",
    "MultiDomainArguments",
    "MultiDomainCollator",
    "MultiDomainModel",
    "MultiDomainOutput",
    "MultiDomainTrainer",
    "PublishError",
    "RelationalBalancer",
    "RelationalMode",
    "RelationalWeighting",
    "TeacherType",
    "TokenizedData",
    "UniformWeighting",
    "add_lora",
    "by_domain",
    "check_token_alignment",
    "distill_per_domain",
    "load_multi_domain",
    "merge_lora",
    "model_card",
    "offline_model_path",
    "parse_layer_map",
    "publish_run",
    "same_tokenizer",
    "stage_run",
    "tokenize_multi_domain",
    "tokenize_splits",
    "train_teacher",
    "uniform_layer_map",
]
