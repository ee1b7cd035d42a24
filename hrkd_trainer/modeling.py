"""Multi-domain models: one shared encoder, one classification head per domain (HRKD §2.1).

Heads are the architecture's own ``*ForSequenceClassification`` heads, so that the export is plain
HuggingFace: for each domain we keep a ``*ForSequenceClassification`` *shell* whose encoder slot is
filled, at forward time, with the shared encoder's output for that domain's rows. The encoder runs
once over the whole super-batch; each head runs on its own rows.

Export layouts (``MultiDomainModel.save_pretrained(out)``): see :mod:`hrkd_trainer.export` (the full
one, ``AutoModelForSequenceClassification.from_pretrained(out, subfolder=domain)`` per domain; the
compact one for checkpoints and internal teachers).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .assets import resolve_model_source
from .capture import AttentionScoreCapture, prepare_for_capture, restore_attention
from .export import is_compact, load_compact, save_export
from .heads import check_domain_names, drop_encoder, fresh_head_like, take_encoder
from .loading import load_quietly


@dataclass
class MultiDomainOutput(ModelOutput):
    """Output of :class:`MultiDomainModel`.

    ``hidden_states``: embedding output then each layer, as HuggingFace returns them;
    ``attention_scores``: pre-softmax scores of the captured layers, keyed by 1-based layer.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attention_scores: dict[int, torch.Tensor] | None = None


class MultiDomainModel(nn.Module):
    """Shared encoder + per-domain classification heads.

    Args:
        encoder: the shared base model (e.g. ``BertModel``), exactly as the architecture's
            ``*ForSequenceClassification`` builds it (BERT keeps its pooler, MPNet/RoBERTa do not).
        heads: ``{domain: *ForSequenceClassification}`` shells whose base model is an
            :class:`EncoderOutputSlot`.
        domains: domain names in domain-id order.
    """

    def __init__(self, encoder: PreTrainedModel, heads: dict[str, PreTrainedModel], domains: Sequence[str]):
        super().__init__()
        self.domains = check_domain_names(domains)
        missing = [d for d in self.domains if d not in heads]
        if missing:
            raise ValueError(f"no classification head for domain(s) {missing}")
        self.encoder = encoder
        self.heads = nn.ModuleDict({d: heads[d] for d in self.domains})
        first = self.heads[self.domains[0]]
        #: one head module serves every domain (BERT_B-mix and the meta-teacher: a single classifier)
        self.shared_head = self.num_domains > 1 and all(self.heads[d] is first for d in self.domains)
        self.num_labels = first.config.num_labels
        self.id2label = dict(first.config.id2label)
        self.config = encoder.config

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_encoder(
        cls,
        name_or_path: str,
        domains: Sequence[str],
        label_names: Sequence[str],
        num_hidden_layers: int | None = None,
        seed: int | None = None,
        shared_head: bool = False,
        **from_pretrained_kwargs,
    ) -> MultiDomainModel:
        """New heads on a pretrained encoder (Hub id, local folder, or an offline model's short name:
        ``"mpnet-base"``, ``"minilm-l6"``, see :mod:`hrkd_trainer.assets`).

        ``num_hidden_layers=k`` keeps only the first ``k`` layers (a student initialised from a
        deeper model's lower layers). ``shared_head=True`` gives every domain the same head module
        (one classifier for all domains: BERT_B-mix, the meta-teacher).
        """
        name_or_path = resolve_model_source(name_or_path)
        domains = check_domain_names(domains)
        label_names = [str(label) for label in label_names]
        kwargs = dict(
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={label: i for i, label in enumerate(label_names)},
            **from_pretrained_kwargs,
        )
        if num_hidden_layers is not None:
            config = AutoConfig.from_pretrained(name_or_path)
            if num_hidden_layers > config.num_hidden_layers:
                raise ValueError(
                    f"cannot keep {num_hidden_layers} layers of {name_or_path}: it has only "
                    f"{config.num_hidden_layers}"
                )
            kwargs["num_hidden_layers"] = num_hidden_layers
        if seed is not None:
            torch.manual_seed(seed)
        full = load_quietly(name_or_path, num_hidden_layers, **kwargs)
        encoder = take_encoder(full)
        heads = {domains[0]: full}
        for domain in domains[1:]:
            heads[domain] = full if shared_head else fresh_head_like(full)
        return cls(encoder, heads, domains)

    @classmethod
    def from_pretrained(cls, path: str, **from_pretrained_kwargs) -> MultiDomainModel:
        """Load an export written by :meth:`save_pretrained`, in either layout (a local folder or a Hub
        repo in the full one)."""
        if is_compact(str(path)):
            return cls(*load_compact(str(path), **from_pretrained_kwargs))
        config = AutoConfig.from_pretrained(path, **from_pretrained_kwargs)
        domains = getattr(config, "hrkd_domains", None)
        if not domains:
            raise ValueError(
                f"{path} has no 'hrkd_domains' in its config.json: it is not a multi-domain export of "
                "hrkd-trainer. To start from a plain pretrained encoder use MultiDomainModel.from_encoder."
            )
        heads = {}
        encoder = None
        if getattr(config, "hrkd_shared_head", False):  # one classifier: load it once, tie it again
            full = AutoModelForSequenceClassification.from_pretrained(
                path, subfolder=domains[0], **from_pretrained_kwargs
            )
            return cls(take_encoder(full), dict.fromkeys(domains, full), domains)
        for domain in domains:
            try:
                full = AutoModelForSequenceClassification.from_pretrained(
                    path, subfolder=domain, **from_pretrained_kwargs
                )
            except OSError as err:
                raise OSError(
                    f"{path} lists domain {domain!r} but its classifier could not be loaded from the "
                    f"subfolder '{domain}': {err}"
                ) from err
            if encoder is None:
                encoder = take_encoder(full)
            else:
                drop_encoder(full)
            heads[domain] = full
        return cls(encoder, heads, domains)

    @classmethod
    def from_classifier(cls, path: str, domains: Sequence[str], **from_pretrained_kwargs) -> MultiDomainModel:
        """A plain ``*ForSequenceClassification`` checkpoint (a ``save_pretrained`` folder or a Hub id, e.g.
        the classifier a user already has) as a multi-domain model: its one head serves every domain."""
        full = AutoModelForSequenceClassification.from_pretrained(path, **from_pretrained_kwargs)
        return cls(take_encoder(full), dict.fromkeys(domains, full), domains)

    # ------------------------------------------------------------------ properties
    @property
    def num_domains(self) -> int:
        return len(self.domains)

    @property
    def num_hidden_layers(self) -> int:
        return self.encoder.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    @property
    def num_attention_heads(self) -> int:
        return self.encoder.config.num_attention_heads

    @property
    def label_names(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_labels)]

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameters of the encoder and one domain head: what one deployed per-domain classifier holds
        (``PreTrainedModel.num_parameters`` signature, so Trainer's FLOP count uses it)."""
        head = self.heads[self.domains[0]]
        count = self.encoder.num_parameters(
            only_trainable=only_trainable, exclude_embeddings=exclude_embeddings
        )
        return count + sum(p.numel() for p in head.parameters() if p.requires_grad or not only_trainable)

    def prepare_for_capture(self) -> str:
        return prepare_for_capture(self.encoder)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        domain_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        capture_layers: Sequence[int] = (),
    ) -> MultiDomainOutput:
        """Encode the whole batch once, then classify each row with its domain's head.

        ``loss`` (with ``labels``) is ``Σ_d mean_{i∈d} CE(z_i, y_i)``, the multi-domain fine-tuning
        objective of the HRKD teacher (a sum over the domains present in the batch). With a shared head
        (one classifier for the pooled data) it is the plain batch mean ``mean_i CE(z_i, y_i)``.
        """
        if domain_ids is None:
            if self.num_domains != 1:
                raise ValueError("domain_ids are required: the model has several domain heads")
            domain_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        encoder_kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        with AttentionScoreCapture(self.encoder, capture_layers) as capture:
            encoded = self.encoder(
                **encoder_kwargs, output_hidden_states=output_hidden_states, return_dict=True
            )
        logits = self._classify(encoded, input_ids, attention_mask, domain_ids)
        loss = None if labels is None else self.classification_loss(logits, labels, domain_ids)
        return MultiDomainOutput(
            loss=loss,
            logits=logits,
            hidden_states=encoded.hidden_states if output_hidden_states else None,
            attention_scores=dict(capture.scores) if capture_layers else None,
        )

    def classification_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        domain_ids: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``Σ_d mean_{i∈d} w_i·CE(z_i, y_i)`` over the domains present (per-domain heads), or
        ``mean_i w_i·CE(z_i, y_i)`` with a shared head; ``w_i = 1`` without ``weights``. Rows without a
        gold label (−100: transfer text) are left out of the means."""
        labelled = (labels != -100).to(torch.float32)
        rows = F.cross_entropy(logits.float(), labels, reduction="none")
        if weights is not None:
            rows = rows * weights.to(rows.dtype)
        if self.shared_head:
            return rows.sum() / labelled.sum().clamp_min(1.0)
        total = torch.zeros(self.num_domains, device=rows.device).index_add(0, domain_ids, rows)
        count = torch.zeros(self.num_domains, device=rows.device).index_add(0, domain_ids, labelled)
        return (total[count > 0] / count[count > 0]).sum()

    def _classify(self, encoded, input_ids, attention_mask, domain_ids) -> torch.Tensor:
        last = encoded.last_hidden_state
        pooled = getattr(encoded, "pooler_output", None)
        present = torch.unique(domain_ids).tolist()
        if len(present) == 1:
            return self._head_logits(present[0], last, pooled, input_ids, attention_mask)
        if self.shared_head:  # one classifier: all rows at once
            return self._head_logits(0, last, pooled, input_ids, attention_mask)
        logits = last.new_zeros(last.shape[0], self.num_labels)
        for domain in present:
            rows = torch.nonzero(domain_ids == domain).flatten()
            part = self._head_logits(
                domain,
                last[rows],
                None if pooled is None else pooled[rows],
                None if input_ids is None else input_ids[rows],
                None if attention_mask is None else attention_mask[rows],
            )
            logits = logits.index_copy(0, rows, part.to(logits.dtype))
        return logits

    def _head_logits(self, domain: int, last, pooled, input_ids, attention_mask) -> torch.Tensor:
        if not 0 <= domain < self.num_domains:
            raise ValueError(f"domain id {domain} out of range: the model has domains {self.domains}")
        head = self.heads[self.domains[domain]]
        slot = getattr(head, head.base_model_prefix)
        slot.output = BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooled)
        try:
            return head(input_ids=input_ids, attention_mask=attention_mask, return_dict=True).logits
        finally:
            slot.output = None

    def restrict(self, domains: Sequence[str]) -> MultiDomainModel:
        """A view on ``domains`` only (in the given order), sharing this model's encoder and heads.

        Used to distil one domain at a time (TinyBERT-KD, meta-distillation) from a multi-domain teacher.
        """
        unknown = [d for d in domains if d not in self.domains]
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; the model has {self.domains}")
        return MultiDomainModel(self.encoder, {d: self.heads[d] for d in domains}, domains)

    # ------------------------------------------------------------------ export
    def domain_model(self, domain: str) -> PreTrainedModel:
        """A standalone ``*ForSequenceClassification`` for one domain (weights copied)."""
        head = self.heads[domain]
        model = copy.deepcopy(head)
        encoder = copy.deepcopy(self.encoder)
        restore_attention(encoder)
        setattr(model, model.base_model_prefix, encoder)
        return model

    def save_pretrained(
        self, output_dir: str, tokenizer=None, safe_serialization=True, state_dict=None, domain_copies=True
    ):
        """The student alone, in the full layout (one AutoModel-loadable copy per domain) or, with
        ``domain_copies=False``, the compact one (:mod:`hrkd_trainer.export`); ``state_dict``: the full
        state gathered from shards."""
        save_export(self, output_dir, tokenizer, safe_serialization, state_dict, domain_copies)

    def load_weights_from(self, path: str) -> None:
        """Copy the weights of an export (e.g. a checkpoint) into this model, in place."""
        other = MultiDomainModel.from_pretrained(path)
        if other.domains != self.domains:
            raise ValueError(f"{path} holds domains {other.domains}, this model has {self.domains}")
        self.encoder.load_state_dict(other.encoder.state_dict())
        for domain in self.domains:
            self.heads[domain].load_state_dict(other.heads[domain].state_dict())


EXPERTS_FILE = "hrkd_experts.json"


class DomainExperts(nn.Module):
    """One separate single-domain model per domain, behind the :class:`MultiDomainModel` interface.

    What BERT_B-single (one teacher per domain) and the per-domain distillers (TinyBERT-KD,
    meta-distillation: one student per domain) produce. ``forward`` sends each row to its domain's
    expert, so evaluation code treats both kinds alike; training happens expert by expert.

    Export layout: ``out/hrkd_experts.json`` (the domain list) and ``out/<domain>/``, a one-domain
    :class:`MultiDomainModel` export (so ``AutoModelForSequenceClassification.from_pretrained(out,
    subfolder=f"{domain}/{domain}")`` loads one expert).
    """

    def __init__(self, experts: dict[str, MultiDomainModel], domains: Sequence[str]):
        super().__init__()
        self.domains = check_domain_names(domains)
        for domain in self.domains:
            expert = experts.get(domain)
            if expert is None:
                raise ValueError(f"no expert for domain {domain!r}")
            if expert.domains != [domain]:
                raise ValueError(
                    f"the expert for {domain!r} must be a one-domain model, it has {expert.domains}"
                )
        self.experts = nn.ModuleDict({d: experts[d] for d in self.domains})
        first = self.experts[self.domains[0]]
        labels = [e.label_names for e in self.experts.values()]
        if any(names != labels[0] for names in labels):
            raise ValueError(f"the experts disagree on the label names: {labels}")
        self.num_labels = first.num_labels
        self.id2label = dict(first.id2label)
        self.config = first.config

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    @property
    def num_hidden_layers(self) -> int:
        return self.experts[self.domains[0]].num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.experts[self.domains[0]].hidden_size

    @property
    def label_names(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_labels)]

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameters of one expert: what one deployed per-domain classifier holds."""
        return self.experts[self.domains[0]].num_parameters(only_trainable, exclude_embeddings)

    def restrict(self, domains: Sequence[str]) -> MultiDomainModel:
        """The expert of one domain (the per-domain distillers ask for one domain at a time)."""
        if len(domains) != 1 or domains[0] not in self.experts:
            raise ValueError(
                f"one-domain teachers (one model per domain) can only be used one domain at a time; asked for "
                f"{list(domains)}, have {self.domains}. Distil them with --method tinybert or meta-distill."
            )
        return self.experts[domains[0]]

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, domain_ids=None, labels=None):
        logits = None
        for index in torch.unique(domain_ids).tolist():
            rows = torch.nonzero(domain_ids == index).flatten()
            expert = self.experts[self.domains[index]]
            part = expert(
                input_ids[rows],
                None if attention_mask is None else attention_mask[rows],
                None if token_type_ids is None else token_type_ids[rows],
                torch.zeros_like(rows),
            ).logits
            if logits is None:
                logits = part.new_zeros(input_ids.shape[0], part.shape[-1])
            logits = logits.index_copy(0, rows, part)
        return MultiDomainOutput(logits=logits)

    def save_pretrained(
        self, output_dir: str, tokenizer=None, safe_serialization: bool = True, domain_copies: bool = True
    ) -> None:
        for domain in self.domains:
            self.experts[domain].save_pretrained(
                os.path.join(output_dir, domain), tokenizer, safe_serialization, domain_copies=domain_copies
            )
        self.save_index(output_dir)

    def save_index(self, output_dir: str) -> None:
        """Write ``hrkd_experts.json`` only (for experts already exported to ``output_dir/<domain>``)."""
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, EXPERTS_FILE), "w") as handle:
            json.dump({"domains": self.domains}, handle)

    @classmethod
    def from_pretrained(cls, path: str, **kwargs) -> DomainExperts:
        with open(os.path.join(path, EXPERTS_FILE)) as handle:
            domains = json.load(handle)["domains"]
        experts = {d: MultiDomainModel.from_pretrained(os.path.join(path, d), **kwargs) for d in domains}
        return cls(experts, domains)


def load_multi_domain(path: str, **kwargs) -> MultiDomainModel | DomainExperts:
    """Load either export kind: one multi-domain model, or per-domain experts (``hrkd_experts.json``)."""
    if os.path.isfile(os.path.join(path, EXPERTS_FILE)):
        return DomainExperts.from_pretrained(path, **kwargs)
    return MultiDomainModel.from_pretrained(path, **kwargs)
