"""Meta-KD (Pan et al., ACL 2021; docs/design-choices.md, "Meta-KD"): its formulas as pure functions, the
domain-corruption module, and the offline prototype scores.

The trainers that use them are in :mod:`hrkd_trainer.meta_trainers`.
"""

from __future__ import annotations

import json
import logging
import os

import safetensors.torch
import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

DOMAIN_CORRUPTION_CONFIG = "hrkd_domain_corruption.json"
DOMAIN_CORRUPTION_WEIGHTS = "hrkd_domain_corruption.safetensors"


def mean_token_embeddings(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None = None, skip_first: bool = True
) -> torch.Tensor:
    """``e_i``: the mean of an encoder's last-layer states ``(N, L, F)`` over token positions → ``(N, F)``.

    ``skip_first`` drops position 0 (``[CLS]``) as Meta-KD does. With ``attention_mask`` only real
    tokens count; without it every position does, padding included (the released code).
    """
    start = 1 if skip_first else 0
    states = hidden[:, start:]
    if attention_mask is None:
        return states.mean(dim=1)
    weights = attention_mask[:, start:].to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def prototype_scores(embeddings: torch.Tensor, domain_ids: torch.Tensor, num_domains: int) -> torch.Tensor:
    """Meta-KD's prototype-based instance scores → ``t`` ``(N,)`` in [-1, 1]:

    ``t_i = ½ cos(e_i, c_{k(i)}) + ½ cos(e_i, mean_{k' ≠ k(i)} c_{k'})``, where ``c_k`` is the mean
    embedding of domain k (labels ignored) and the second term uses the mean of the *other*
    centroids (not the mean of cosines), as the released code.
    """
    if num_domains < 2:
        raise ValueError("prototype scores compare a domain with the others: they need >= 2 domains")
    features = embeddings.shape[-1]
    sums = embeddings.new_zeros(num_domains, features).index_add(0, domain_ids, embeddings)
    counts = embeddings.new_zeros(num_domains).index_add(
        0, domain_ids, torch.ones_like(domain_ids, dtype=embeddings.dtype)
    )
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"domain id(s) {empty} have no examples: every domain needs a centroid")
    centroids = sums / counts.unsqueeze(-1)
    others = (centroids.sum(0, keepdim=True) - centroids) / (num_domains - 1)  # mean of the other centroids
    own = F.cosine_similarity(embeddings, centroids[domain_ids], dim=-1)
    rest = F.cosine_similarity(embeddings, others[domain_ids], dim=-1)
    return 0.5 * own + 0.5 * rest


def domain_expertise_weights(teacher_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Meta-distillation's domain-expertise weight ``w_i = 1 / (1 + exp((1 − p_T(y_i | x_i))²))``,
    in [1/(1+e), 1/2]: highest where the teacher is sure of the gold label."""
    gold = teacher_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return 1.0 / (1.0 + torch.exp((1.0 - gold) ** 2))


def meta_instance_weights(scores: torch.Tensor, expertise: torch.Tensor) -> torch.Tensor:
    """Meta-distillation's per-instance weight ``λ_i = (1 + t_i) · w_i``."""
    return (1.0 + scores) * expertise


def corrupted_domain_ids(domain_ids: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The meta-teacher's corrupted domain labels: the batch's domain ids randomly permuted."""
    order = torch.randperm(domain_ids.shape[0], generator=generator, device=domain_ids.device)
    return domain_ids[order]


class DomainCorruption(nn.Module):
    """Meta-KD's domain branch (docs/design-choices.md, "Meta-KD").

    * ``representation``: ``D(x) = W_cd (E_dom[k] + c(x))`` with ``c(x)`` the mean of the last-layer
      states over the real tokens after ``[CLS]`` (:func:`mean_token_embeddings`) and ``E_dom`` a
      learned ``(K, F)`` domain embedding (the released ``corrupt_dense``; no tanh). Meta-distillation
      matches the student's representation to the teacher's (the "transferable knowledge" term).
    * ``forward``: the meta-teacher's domain logits ``Linear(dropout(tanh(D(x))))`` ``(N, K)``, trained
      against corrupted (shuffled) domain ids.
    """

    def __init__(self, num_domains: int, hidden_size: int, dropout: float = 0.1, mask_padding: bool = True):
        super().__init__()
        self.num_domains = num_domains
        self.hidden_size = hidden_size
        self.dropout_p = dropout
        self.mask_padding = mask_padding
        self.domain_embeddings = nn.Embedding(num_domains, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_domains)
        for module in (self.dense, self.classifier):  # BERT-style initialisation
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        nn.init.normal_(self.domain_embeddings.weight, std=0.02)

    @property
    def settings(self) -> dict:
        return {
            "num_domains": self.num_domains,
            "hidden_size": self.hidden_size,
            "dropout": self.dropout_p,
            "mask_padding": self.mask_padding,
        }

    def representation(
        self, last_hidden: torch.Tensor, attention_mask: torch.Tensor | None, domain_ids: torch.Tensor
    ) -> torch.Tensor:
        """``D(x) = W_cd (E_dom[k] + c(x))`` → ``(N, F)``."""
        mask = attention_mask if self.mask_padding else None
        pooled = mean_token_embeddings(last_hidden.float(), mask)
        return self.dense(self.domain_embeddings(domain_ids) + pooled.to(self.dense.weight.dtype))

    def forward(
        self, last_hidden: torch.Tensor, attention_mask: torch.Tensor | None, domain_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.classifier(
            self.dropout(torch.tanh(self.representation(last_hidden, attention_mask, domain_ids)))
        )

    def save(self, directory: str) -> None:
        """Write next to a teacher export: meta-distillation reads it back from the teacher folder."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, DOMAIN_CORRUPTION_CONFIG), "w") as handle:
            json.dump(self.settings, handle, indent=2)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        safetensors.torch.save_file(state, os.path.join(directory, DOMAIN_CORRUPTION_WEIGHTS))

    @classmethod
    def load(cls, directory: str) -> DomainCorruption | None:
        """The module saved in ``directory``, or None when it holds none (not a meta-teacher)."""
        config_path = os.path.join(directory, DOMAIN_CORRUPTION_CONFIG)
        if not os.path.isfile(config_path):
            return None
        with open(config_path) as handle:
            module = cls(**json.load(handle))
        module.load_state_dict(
            safetensors.torch.load_file(os.path.join(directory, DOMAIN_CORRUPTION_WEIGHTS))
        )
        return module


@torch.no_grad()
def encoder_prototype_scores(
    encoder_source: str,
    dataset,
    max_length: int = 128,
    batch_size: int = 64,
    mask_padding: bool = True,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Meta-KD's offline instance scores ``t`` (docs/design-choices.md, "Meta-KD") for the rows of a raw split.

    ``dataset`` has the builders' columns (``text``, optional ``text_pair``, ``domain``). Each row is
    embedded by the *pretrained* (not fine-tuned) encoder ``encoder_source`` as the mean of its last-layer
    states after ``[CLS]`` (real tokens only with ``mask_padding``; the release averages padding too),
    then scored with :func:`prototype_scores`. Returns ``(N,)`` in row order.
    """
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder_source)
    encoder = AutoModel.from_pretrained(encoder_source)
    device = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    encoder.to(device).eval()
    pair = "text_pair" in dataset.column_names
    embeddings = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset[start : start + batch_size]
        texts = (rows["text"], rows["text_pair"]) if pair else (rows["text"],)
        batch = tokenizer(
            *texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        ).to(device)
        hidden = encoder(**batch).last_hidden_state
        embeddings.append(
            mean_token_embeddings(hidden.float(), batch["attention_mask"] if mask_padding else None).cpu()
        )
    domain_ids = torch.as_tensor(dataset["domain"], dtype=torch.long)
    num_domains = len(dataset.features["domain"].names)  # the builders' ClassLabel
    scores = prototype_scores(torch.cat(embeddings), domain_ids, num_domains)
    logger.info(
        "prototype scores from %s: mean %.3f, min %.3f, max %.3f",
        encoder_source,
        scores.mean(),
        scores.min(),
        scores.max(),
    )
    return scores
