"""hrkd-trainer: multi-domain knowledge distillation (HRKD, Dong et al., EMNLP 2021) for 🤗 Trainer."""

from .collate import MultiDomainCollator, check_token_alignment, same_tokenizer, tokenize_multi_domain
from .config import HRKDConfig, MultiDomainArguments
from .distill_model import DistillationModel, HiddenProjections
from .layer_map import LayerMap, parse_layer_map, uniform_layer_map
from .modeling import MultiDomainModel, MultiDomainOutput
from .relational import RelationalBalancer
from .sampling import DomainBatchSampler
from .trainer import HRKDTrainer, MultiDomainTrainer

__version__ = "0.1.0"

__all__ = [
    "DistillationModel",
    "DomainBatchSampler",
    "HRKDConfig",
    "HRKDTrainer",
    "HiddenProjections",
    "LayerMap",
    "MultiDomainArguments",
    "MultiDomainCollator",
    "MultiDomainModel",
    "MultiDomainOutput",
    "MultiDomainTrainer",
    "RelationalBalancer",
    "check_token_alignment",
    "parse_layer_map",
    "same_tokenizer",
    "tokenize_multi_domain",
    "uniform_layer_map",
]
