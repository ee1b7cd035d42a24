"""Capture of pre-softmax attention scores for the mapped layers only.

TinyBERT and HRKD distil attention on the *scaled, masked, pre-softmax scores*
``S = QKᵀ/√d_head + mask`` (docs/design-choices.md, "Losses"), not on the probabilities that
``output_attentions=True`` returns. Two capture routes exist:

* **attention interface** (BERT, RoBERTa, ELECTRA, ... every model whose attention dispatches through
  ``transformers.AttentionInterface``): we register an attention function ``"hrkd_capture"``. In
  the mapped layers it computes ``S`` explicitly, hands it to the capture and finishes the attention
  from it (no extra work); every other layer is passed straight to PyTorch SDPA.
* **projection hooks** (MPNet, whose attention is hard-coded eager): forward hooks keep the outputs
  of the ``q`` and ``k`` projections and the mask / relative position bias of the mapped layers, and
  ``S`` is rebuilt from them (one extra ``QKᵀ`` product per mapped layer, no extra projections).

Architectures that fit neither route raise a ``ValueError`` that says how to continue without the
attention loss.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

HRKD_ATTENTION = "hrkd_capture"
_SINK_ATTR = "_hrkd_score_sink"

#: model types whose attention does not use the attention interface but can be captured with hooks
HOOK_CAPTURE_MODEL_TYPES = ("mpnet",)


def hrkd_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
):
    """Attention function registered as ``"hrkd_capture"``.

    Modules without a capture sink run PyTorch SDPA. Modules with one compute
    ``S = Q Kᵀ · scaling + mask`` (mask: 0 for kept keys, dtype-min for padded keys), pass ``S`` to
    the sink, and return ``softmax(S)·V`` with attention dropout, exactly as eager attention does.
    """
    sink = getattr(module, _SINK_ATTR, None)
    if sink is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat key/value heads
        repeat = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(repeat, dim=1)
        value = value.repeat_interleave(repeat, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask[..., : key.shape[-2]]
    sink(scores)
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return output, probs


def _register() -> None:
    if HRKD_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(HRKD_ATTENTION, hrkd_attention_forward)
    if HRKD_ATTENTION not in AttentionMaskInterface._global_mapping:
        AttentionMaskInterface.register(HRKD_ATTENTION, sdpa_mask)


_register()


def find_layer_list(encoder: nn.Module) -> nn.ModuleList:
    """Return the ``nn.ModuleList`` of transformer blocks of an encoder (``encoder.layer`` & co.)."""
    num_layers = getattr(encoder.config, "num_hidden_layers", None)
    for name in ("encoder.layer", "transformer.layer", "layers", "encoder.layers", "layer"):
        module: nn.Module | None = encoder
        for part in name.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList) and (num_layers is None or len(module) == num_layers):
            return module
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    raise ValueError(
        f"cannot find the list of {num_layers} transformer blocks in {type(encoder).__name__}; "
        "attention/hidden distillation needs an encoder with a ModuleList of layers"
    )


def capture_mode(encoder: PreTrainedModel) -> str:
    """``"interface"`` or ``"hooks"``: how scores of this encoder can be captured."""
    if encoder.config._attn_implementation == HRKD_ATTENTION:
        return "interface"
    if encoder.config.model_type in HOOK_CAPTURE_MODEL_TYPES:
        return "hooks"
    raise ValueError(
        f"attention-score capture is not prepared for {type(encoder).__name__}: call "
        "hrkd_trainer.capture.prepare_for_capture(model) first"
    )


def prepare_for_capture(encoder: PreTrainedModel) -> str:
    """Switch an encoder to the ``"hrkd_capture"`` attention function where possible.

    Returns the capture mode. Raises ``ValueError`` for architectures that cannot expose their scores.
    """
    if getattr(type(encoder), "_supports_attention_backend", False):
        if encoder.config._attn_implementation != HRKD_ATTENTION:
            encoder.set_attn_implementation(HRKD_ATTENTION)
        return "interface"
    if encoder.config.model_type in HOOK_CAPTURE_MODEL_TYPES:
        return "hooks"
    raise ValueError(
        f"{type(encoder).__name__} (model_type={encoder.config.model_type!r}) does not dispatch its attention "
        "through transformers' AttentionInterface, so its pre-softmax attention scores cannot be captured. "
        "Turn the attention loss off (--distill_losses embedding hidden prediction) or use an encoder "
        f"that supports it (BERT, RoBERTa, ELECTRA, ... or one of {HOOK_CAPTURE_MODEL_TYPES})."
    )


def restore_attention(encoder: PreTrainedModel, implementation: str = "sdpa") -> None:
    """Put a model back on a standard attention implementation (before export)."""
    if encoder.config._attn_implementation == HRKD_ATTENTION:
        encoder.set_attn_implementation(implementation)


class AttentionScoreCapture:
    """Context manager recording ``S = QKᵀ/√d + mask`` of the given 1-based layers during one forward.

    ``scores[m]`` is a ``(batch, heads, query, key)`` tensor that keeps its autograd graph (so the
    student's attention loss back-propagates through it).
    """

    def __init__(self, encoder: PreTrainedModel, layers: Iterable[int]):
        self.encoder = encoder
        self.layers = tuple(sorted(set(layers)))
        self.scores: dict[int, torch.Tensor] = {}
        self._handles: list = []
        self._tagged: list[nn.Module] = []

    def __enter__(self) -> AttentionScoreCapture:
        if not self.layers:
            return self
        blocks = find_layer_list(self.encoder)
        mode = capture_mode(self.encoder)
        for layer in self.layers:
            if not 1 <= layer <= len(blocks):
                raise ValueError(f"cannot capture layer {layer}: the encoder has {len(blocks)} layers")
            block = blocks[layer - 1]
            if mode == "interface":
                for module in block.modules():
                    setattr(module, _SINK_ATTR, self._sink(layer))
                    self._tagged.append(module)
            else:
                self._hook_projections(block, layer)
        return self

    def __exit__(self, *exc) -> None:
        for module in self._tagged:
            if hasattr(module, _SINK_ATTR):
                delattr(module, _SINK_ATTR)
        for handle in self._handles:
            handle.remove()
        self._tagged.clear()
        self._handles.clear()

    def _sink(self, layer: int):
        def store(scores: torch.Tensor) -> None:
            self.scores[layer] = scores

        return store

    def _hook_projections(self, block: nn.Module, layer: int) -> None:
        attention = next(
            (
                m
                for m in block.modules()
                if isinstance(getattr(m, "q", None), nn.Linear)
                and isinstance(getattr(m, "k", None), nn.Linear)
                and hasattr(m, "attention_head_size")
            ),
            None,
        )
        if attention is None:
            raise ValueError(f"cannot find q/k projections in layer {layer} of {type(self.encoder).__name__}")
        state: dict[str, torch.Tensor | None] = {}
        signature = inspect.signature(attention.forward)

        def keep(name):
            def hook(_module, _args, output):
                state[name] = output

            return hook

        def before(_module, args, kwargs):
            bound = signature.bind_partial(*args, **kwargs)
            state["mask"] = bound.arguments.get("attention_mask")
            state["bias"] = bound.arguments.get("position_bias")

        def after(module, _args, _kwargs, _output):
            q, k = state["q"], state["k"]
            heads, size = module.num_attention_heads, module.attention_head_size
            q = q.view(*q.shape[:-1], heads, size).transpose(1, 2)
            k = k.view(*k.shape[:-1], heads, size).transpose(1, 2)
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(size)
            if state.get("bias") is not None:
                scores = scores + state["bias"]
            if state.get("mask") is not None:
                scores = scores + state["mask"]
            self.scores[layer] = scores
            state.clear()

        self._handles.append(attention.q.register_forward_hook(keep("q")))
        self._handles.append(attention.k.register_forward_hook(keep("k")))
        self._handles.append(attention.register_forward_pre_hook(before, with_kwargs=True))
        self._handles.append(attention.register_forward_hook(after, with_kwargs=True))
