"""Gradient alignment (first-order learning to reweight): the cosine scores on hand-checked
gradients, the ratios' golden values, sums, floor and domain permutation equivariance, the state in
a checkpoint, and the strategy inside HRKDTrainer (with a clear error when labels are missing)."""

from __future__ import annotations

import os

import pytest
import safetensors.torch
import torch

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel
from hrkd_trainer.losses import hrkd_loss
from hrkd_trainer.training_state import AUX_WEIGHTS_NAME
from hrkd_trainer.weighting import (
    GradientAlignmentWeighting,
    alignment_scores,
    build_weighting,
    position_parameters,
)

from .conftest import DOMAINS, LABELS, common


def linear_losses():
    """Two positions, two domains: ℓ_{m,d} = θ_m·a_{m,d}, L_y = θ_0·c_0 + θ_1·c_1, so every gradient is
    the constant vector it multiplies."""
    theta = [torch.nn.Parameter(torch.tensor([1.0, -2.0])), torch.nn.Parameter(torch.tensor([0.5, 0.5, 3.0]))]
    a = [[torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])],
         [torch.tensor([0.0, 2.0, 0.0]), torch.tensor([-1.0, 0.0, 0.0])]]  # fmt: skip
    c = [torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])]
    losses = torch.stack([torch.stack([theta[m] @ a[m][d] for d in range(2)]) for m in range(2)])
    meta = theta[0] @ c[0] + theta[1] @ c[1]
    return losses, meta, [[theta[0]], [theta[1]]]


def test_scores_are_the_cosines_of_hand_checked_gradients():
    losses, meta, groups = linear_losses()
    scores = alignment_scores(losses, meta, groups)
    # position 0: cos((1,0),(2,0)) = 1; cos((1,1),(2,0)) = 1/√2
    # position 1: cos((0,2,0),(1,1,0)) = 1/√2; cos((-1,0,0),(1,1,0)) = −1/√2
    r = 2**-0.5
    assert torch.allclose(scores, torch.tensor([[1.0, r], [r, -r]]), atol=1e-6)
    # a reduction over processes sees the stacked gradients (meta first) and may rescale them
    seen = []
    scaled = alignment_scores(losses, meta, groups, reduce=lambda t: seen.append(t.shape) or 2 * t)
    assert torch.allclose(scaled, scores, atol=1e-6) and seen == [(3, 2), (3, 3)]
    # a loss that never reaches θ_m scores 0
    detached = torch.stack([losses[0], losses[0].detach() * 0 + groups[0][0].sum() * 0])
    assert torch.equal(alignment_scores(detached, meta, groups)[1], torch.zeros(2))


def test_scores_follow_a_permutation_of_the_domains():
    g = torch.Generator().manual_seed(3)
    theta = torch.nn.Parameter(torch.randn(5, generator=g))
    a = torch.randn(4, 5, generator=g)
    losses = (torch.tanh(a * theta) ** 2).sum(-1).unsqueeze(0)  # (1, 4)
    meta = (theta * torch.randn(5, generator=g)).sum()
    perm = torch.tensor([2, 0, 3, 1])
    plain = alignment_scores(losses, meta, [[theta]])
    permuted = alignment_scores(losses[:, perm], meta, [[theta]])
    assert torch.allclose(plain[:, perm], permuted, atol=1e-6)


def test_ratios_golden_values_floor_and_sums():
    weighting = GradientAlignmentWeighting(2, 2, temperature=0.5, ema=0.5, floor=0.1).train()
    c = {"embd": torch.tensor([1.0, 2.0]), "attn": torch.tensor([[0.5, 1.5]]),
         "hidn": torch.tensor([[1.0, 0.0]]), "pred": torch.tensor([0.2, 0.4])}  # fmt: skip
    assert torch.allclose(weighting(c).ratios, torch.full((2, 2), 0.5))  # no score yet: uniform
    weighting.observe(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    weighting.observe(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    average = torch.tensor([[0.5, 0.0], [0.5, 0.0]])  # EMA with β = 0.5
    expected = 0.1 + 0.8 * torch.softmax(average / 0.5, dim=-1)
    out = weighting(c)
    assert torch.allclose(out.ratios, expected)
    assert torch.allclose(out.loss, hrkd_loss(c["embd"], c["attn"], c["hidn"], c["pred"], expected))
    extreme = GradientAlignmentWeighting(3, 4, temperature=0.01, floor=0.05)
    extreme.observe(torch.tensor([[1.0, -1.0, -1.0, -1.0]] * 3))
    ratios = extreme.current_ratios()
    assert torch.allclose(ratios.sum(-1), torch.ones(3)) and (ratios >= 0.05 - 1e-7).all()
    restored = GradientAlignmentWeighting(2, 2, temperature=0.5, ema=0.5, floor=0.1)
    restored.load_state_dict(weighting.state_dict())
    assert torch.equal(restored.current_ratios(), weighting.current_ratios())
    assert weighting.wants_scores(0) and not weighting.eval().wants_scores(0)
    assert [GradientAlignmentWeighting(1, 2, every=3).train().wants_scores(s) for s in range(4)] == [
        True, False, False, True,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="every"):
        GradientAlignmentWeighting(1, 2, every=0)


def test_the_config_picks_it(tmp_path):
    config = HRKDConfig(
        **common(
            tmp_path, "ga", loss_weighting="gradient-alignment", weighting_every=2, weighting_temperature=0.2
        )
    )
    weighting = build_weighting(config, 3, 4, 8)
    assert isinstance(weighting, GradientAlignmentWeighting) and config.adaptive_weighting
    assert (weighting.every, weighting.temperature) == (2, 0.2)
    with pytest.raises(ValueError, match="--weighting_every"):
        HRKDConfig(**common(tmp_path, "x", loss_weighting="gradient-alignment", weighting_every=0))


def make_trainer(tmp_path, name, teacher_dir, student_dir, train, tokenizer, **kw):
    config = HRKDConfig(**common(tmp_path, name, loss_weighting="gradient-alignment", **kw))
    return HRKDTrainer(
        model=MultiDomainModel.from_encoder(student_dir, DOMAINS, LABELS, seed=0),
        teacher_model=MultiDomainModel.from_pretrained(teacher_dir),
        args=config,
        train_dataset=train,
        processing_class=tokenizer,
    )


def test_it_scores_every_step_inside_the_trainer_and_checkpoints_its_state(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    train, _ = tokenized
    trainer = make_trainer(tmp_path, "ga", teacher_dir, bert_student_dir, train, tokenizer,
                           max_steps=4, weighting_temperature=0.05, weighting_every=1, save_strategy="steps", save_steps=4)  # fmt: skip
    weighting = trainer.loss_weighting
    groups = position_parameters(trainer.student, trainer.layer_map.student_layers)
    assert len(groups) == 1 + len(trainer.layer_map.student_layers)
    words = trainer.student.encoder.get_input_embeddings().weight
    assert all(p is not words for p in groups[0]) and groups[0]
    trainer.train()
    assert weighting.steps.item() == 4
    assert weighting.average.abs().max() > 0  # real, non-zero agreement scores
    ratios = weighting.current_ratios()
    assert (ratios - 1 / len(DOMAINS)).abs().max() > 1e-3
    saved = safetensors.torch.load_file(
        os.path.join(trainer.args.output_dir, "checkpoint-4", AUX_WEIGHTS_NAME)
    )
    assert torch.equal(saved["weighting.average"], weighting.average.cpu())

    no_labels = train.remove_columns("labels")
    trainer = make_trainer(
        tmp_path, "nolabels", teacher_dir, bert_student_dir, no_labels, tokenizer, max_steps=1
    )
    with pytest.raises(ValueError, match="labels"):
        trainer.train()
