"""Captured scores equal a manual QKᵀ/√d + mask; unmapped layers run SDPA; outputs are unchanged."""

import math

import pytest
import torch
from transformers import AutoModel, BertModel

from hrkd_trainer.capture import HRKD_ATTENTION, AttentionScoreCapture, prepare_for_capture


def _manual_bert_scores(model: BertModel, input_ids, attention_mask, layer: int):
    """QKᵀ/√d + additive mask of a BERT layer, from the layer's input hidden state."""
    hidden = model(
        input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
    ).hidden_states
    attn = model.encoder.layer[layer - 1].attention.self
    x = hidden[layer - 1]
    n, length, _ = x.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size
    q = attn.query(x).view(n, length, heads, size).transpose(1, 2)
    k = attn.key(x).view(n, length, heads, size).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(size)
    return scores, attention_mask.bool()


def test_bert_capture_equals_manual_scores(bert_teacher_dir):
    model = AutoModel.from_pretrained(bert_teacher_dir).eval()
    torch.manual_seed(0)
    ids = torch.randint(5, 20, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert prepare_for_capture(model) == "interface"
        assert model.config._attn_implementation == HRKD_ATTENTION
        with AttentionScoreCapture(model, [2, 4]) as capture:
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        assert sorted(capture.scores) == [2, 4]
        for layer in (2, 4):
            manual, keys = _manual_bert_scores(model, ids, mask, layer)
            captured = capture.scores[layer]
            valid = keys[:, None, None, :].expand_as(captured)
            assert torch.allclose(captured[valid], manual[valid], atol=1e-5)
            assert (captured[~valid] < -1e30).all()  # padded keys carry the additive mask
    # SDPA in the unmapped layers and explicit attention in the mapped ones give the same output
    assert torch.allclose(out, reference, atol=1e-5)


def test_capture_only_touches_requested_layers(bert_teacher_dir):
    model = AutoModel.from_pretrained(bert_teacher_dir).eval()
    prepare_for_capture(model)
    calls = []
    import hrkd_trainer.capture as capture_module

    original = capture_module.sdpa_attention_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    capture_module.sdpa_attention_forward = counting
    try:
        with torch.no_grad(), AttentionScoreCapture(model, [3]) as capture:
            model(input_ids=torch.randint(5, 20, (2, 5)))
    finally:
        capture_module.sdpa_attention_forward = original
    assert list(capture.scores) == [3]
    assert len(calls) == 3  # the three unmapped layers ran SDPA
    # sinks are removed after the context: no capture without it
    with torch.no_grad(), AttentionScoreCapture(model, []) as empty:
        model(input_ids=torch.randint(5, 20, (2, 5)))
    assert empty.scores == {}


def test_mpnet_capture_with_hooks_matches_eager_probabilities(mpnet_dir):
    model = AutoModel.from_pretrained(mpnet_dir).eval()
    ids = torch.randint(5, 20, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[0, 4:] = 0
    assert prepare_for_capture(model) == "hooks"
    with torch.no_grad(), AttentionScoreCapture(model, [1, 2]) as capture:
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    for layer in (1, 2):
        probs = torch.softmax(capture.scores[layer], dim=-1)
        # rebuilt scores (incl. relative position bias) reproduce the model's own attention probabilities
        assert torch.allclose(probs, out.attentions[layer - 1], atol=1e-5)


def test_unsupported_architecture_is_a_clear_error():
    from transformers import ConvBertConfig, ConvBertModel

    model = ConvBertModel(
        ConvBertConfig(
            vocab_size=30,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            embedding_size=16,
        )
    )
    with pytest.raises(ValueError, match="--distill_losses embedding hidden prediction"):
        prepare_for_capture(model)
