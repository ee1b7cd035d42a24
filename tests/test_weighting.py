"""The loss-weights interface: each strategy's formula on golden values, the ratios it reports, its
optimizer group, the choice from a config, and a new strategy plugged into HRKDTrainer unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel
from hrkd_trainer.losses import hrkd_loss, multi_domain_kd_loss
from hrkd_trainer.relational import RelationalBalancer, ratio_kl_to_uniform
from hrkd_trainer.weighting import (
    LossWeighting,
    RatioOutput,
    RelationalWeighting,
    UniformWeighting,
    WeightedLoss,
    build_weighting,
)

from .conftest import DOMAINS, LABELS, common

M, D = 2, 3


def components(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "embd": torch.rand(D, generator=g),
        "attn": torch.rand(M, D, generator=g),
        "hidn": torch.rand(M, D, generator=g),
        "pred": torch.rand(D, generator=g),
    }


def test_uniform_is_eq5_on_golden_values():
    parts = {
        "embd": torch.tensor([1.0, 2.0, 3.0]),
        "attn": torch.tensor([[0.5, 0.0, 1.0], [0.0, 0.0, 0.0]]),
        "hidn": torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]),
        "pred": torch.tensor([0.1, 0.2, 0.3]),
    }
    out = UniformWeighting(pred_weight=2.0)(parts)
    # Σ_d embd (6) + Σ attn (1.5) + Σ hidn (5) + 2 · Σ pred (1.2)
    assert out.loss.item() == pytest.approx(13.7)
    assert out.ratios is None
    c = components(1)
    assert torch.allclose(
        UniformWeighting(1.0)(c).loss, multi_domain_kd_loss(c["embd"], c["attn"], c["hidn"], c["pred"])
    )


@pytest.mark.parametrize("scale", ["mean", "sum"])
def test_relational_is_eq17_with_the_balancer_ratios(scale):
    torch.manual_seed(0)
    balancer = RelationalBalancer(num_positions=M + 1, num_domains=D, features=8, heads=2, dropout=0.0)
    weighting = RelationalWeighting(balancer, pred_weight=1.0, ratio_scale=scale, entropy_weight=0.5).eval()
    prototypes = torch.randn(M + 1, D, 8)
    ratios = weighting.ratios(prototypes)
    assert ratios.ratios.shape == (M + 1, D)
    assert torch.allclose(ratios.ratios.sum(-1), torch.ones(M + 1))
    c = components(2)
    out = weighting(c, ratios)
    expected = hrkd_loss(c["embd"], c["attn"], c["hidn"], c["pred"], ratios.ratios, 1.0, scale)
    expected = expected + 0.5 * ratio_kl_to_uniform(ratios.ratios)
    assert torch.allclose(out.loss, expected)
    assert out.ratios is ratios.ratios and len(out.similarity) == M
    with pytest.raises(ValueError, match="needs the ratios"):
        weighting(c, None)


def test_only_a_learned_relational_weighting_has_an_optimizer_group():
    balancer = RelationalBalancer(num_positions=2, num_domains=D, features=4, heads=1)
    frozen = RelationalWeighting(balancer)
    assert frozen.optimizer_group() is None and not any(p.requires_grad for p in balancer.parameters())
    learned = RelationalWeighting(
        RelationalBalancer(num_positions=2, num_domains=D, features=4, heads=1), learned=True, learning_rate=0.01,
        weight_decay=0.1,
    )  # fmt: skip
    group = learned.optimizer_group()
    assert group["lr"] == 0.01 and group["weight_decay"] == 0.1 and group["hrkd_relational"]
    assert {id(p) for p in group["params"]} == {id(p) for p in learned.balancer.parameters()}
    assert UniformWeighting().optimizer_group() is None


def test_build_weighting_follows_the_config(tmp_path):
    uniform = build_weighting(HRKDConfig(**common(tmp_path, "u")), M + 1, D, 8)
    assert isinstance(uniform, UniformWeighting)
    config = HRKDConfig(
        **common(tmp_path, "r", relational_mode="learned", relational_heads=2, ratio_scale="sum")
    )
    relational = build_weighting(config, M + 1, D, 8)
    assert isinstance(relational, RelationalWeighting) and relational.learned
    assert relational.ratio_scale == "sum" and relational.balancer.settings["heads"] == 2
    again = build_weighting(config, M + 1, D, 8)  # seeded from config.seed, global RNG untouched
    assert all(
        torch.equal(a, b) for a, b in zip(relational.state_dict().values(), again.state_dict().values())
    )
    # 'auto' is resolved once, by the config; the builder refuses an unresolved value
    assert config.loss_weighting == "relational"
    with pytest.raises(ValueError, match="resolved by HRKDConfig"):
        build_weighting(SimpleNamespace(loss_weighting="auto"), M + 1, D, 8)


class FixedRatios(LossWeighting):
    """A strategy written against the interface alone: the same ratios every step, eq. 17's form."""

    name = "fixed"

    def __init__(self, ratios: torch.Tensor):
        super().__init__()
        self.register_buffer("fixed", ratios)

    def forward(self, components, ratios: RatioOutput | None = None) -> WeightedLoss:
        r = self.fixed.to(components["embd"].device)
        loss = hrkd_loss(components["embd"], components["attn"], components["hidn"], components["pred"], r)
        return WeightedLoss(loss, r)


def test_a_new_strategy_plugs_into_the_trainer(teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path):
    """HRKDTrainer(weighting=...) trains with any LossWeighting and logs the ratios it reports."""
    train, _ = tokenized
    ratios = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]])
    trainer = HRKDTrainer(
        model=MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0),
        teacher_model=MultiDomainModel.from_pretrained(teacher_dir),
        args=HRKDConfig(**common(tmp_path, "fixed", max_steps=2, learning_rate=1e-3)),
        train_dataset=train,
        processing_class=tokenizer,
        weighting=FixedRatios(ratios),
    )
    assert trainer.loss_weighting.name == "fixed"
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    assert len(logged) == 2
    for m, position in enumerate(("embeddings", "layer1", "layer2")):
        for d, domain in enumerate(DOMAINS):
            assert logged[0][f"ratio/{position}/{domain}"] == pytest.approx(ratios[m, d].item(), abs=1e-6)
