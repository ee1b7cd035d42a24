"""Weighting strategies from the losses themselves: golden values, floors, sums, permutation
equivariance over domains, the noise control's spread, state that survives a checkpoint, and the
choice from a config."""

from __future__ import annotations

import math

import pytest
import torch

from hrkd_trainer import HRKDConfig
from hrkd_trainer.losses import hrkd_loss
from hrkd_trainer.weighting import (
    GroupDROWeighting,
    LossProgressWeighting,
    UniformNoiseWeighting,
    build_weighting,
)
from hrkd_trainer.weighting.adaptive import position_losses, with_floor

from .conftest import common

P, D = 3, 4


def components(embd, layers, pred=None) -> dict[str, torch.Tensor]:
    """Position losses as components: ``attn`` carries the layer losses, ``hidn`` zeros."""
    embd = torch.as_tensor(embd, dtype=torch.float)
    layers = torch.as_tensor(layers, dtype=torch.float).reshape(-1, len(embd))
    return {
        "embd": embd,
        "attn": layers,
        "hidn": torch.zeros_like(layers),
        "pred": torch.as_tensor(pred if pred is not None else [0.0] * len(embd), dtype=torch.float),
    }


def test_floor_mixing_and_position_losses():
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(with_floor(q, 0.05), torch.tensor([[0.85, 0.05, 0.05, 0.05]]))
    with pytest.raises(ValueError, match="floor"):
        with_floor(q, 0.3)
    c = components([1, 2], [[3, 4]])
    c["hidn"] = torch.tensor([[10.0, 20.0]])
    assert torch.equal(position_losses(c), torch.tensor([[1.0, 2.0], [13.0, 24.0]]))


def test_loss_progress_golden_values():
    weighting = LossProgressWeighting(2, 2, temperature=0.5, ema=0.5, floor=0.1).train()
    first = weighting(components([1.0, 1.0], [[2.0, 4.0]]))
    assert torch.allclose(first.ratios, torch.full((2, 2), 0.5))  # the first step is uniform
    c = components([0.5, 1.0], [[2.0, 2.0]], pred=[0.3, 0.7])
    second = weighting(c)
    # EMA: embd (0.75, 1.0) / (1, 1); layer (2, 3) / (2, 4) = (1, 0.75)
    progress = torch.tensor([[0.75, 1.0], [1.0, 0.75]])
    expected = 0.1 + 0.8 * torch.softmax(progress / 0.5, dim=-1)
    assert torch.allclose(second.ratios, expected)
    assert torch.allclose(second.loss, hrkd_loss(c["embd"], c["attn"], c["hidn"], c["pred"], expected))
    weighting.eval()  # evaluation reads the weights, never moves them
    state = {k: v.clone() for k, v in weighting.state_dict().items()}
    weighting(components([9.0, 9.0], [[9.0, 9.0]]))
    assert all(torch.equal(state[k], v) for k, v in weighting.state_dict().items())


def test_group_dro_golden_values():
    weighting = GroupDROWeighting(1, 2, step_size=1.0, floor=0.0).train()
    out = weighting(components([1.0, 3.0], []))
    # losses / their mean = (0.5, 1.5); q ∝ 0.5·(e^0.5, e^1.5)
    expected = torch.softmax(torch.tensor([0.5, 1.5]), dim=0)
    assert torch.allclose(out.ratios[0], expected)
    out = weighting(components([1.0, 3.0], []))  # a second step moves further the same way
    assert torch.allclose(out.ratios[0], torch.softmax(torch.tensor([1.0, 3.0]), dim=0))


@pytest.mark.parametrize("kind", ["progress", "dro"])
def test_ratios_sum_to_one_stay_above_the_floor_and_follow_a_domain_permutation(kind):
    def make():
        if kind == "progress":
            return LossProgressWeighting(P, D, temperature=0.05, ema=0.5, floor=0.05).train()
        return GroupDROWeighting(P, D, step_size=0.5, floor=0.05).train()

    g = torch.Generator().manual_seed(0)
    steps = [
        components(torch.rand(D, generator=g) + 0.1, torch.rand(P - 1, D, generator=g) + 0.1)
        for _ in range(6)
    ]
    perm = torch.tensor([2, 0, 3, 1])
    plain, permuted = make(), make()
    for step in steps:
        a = plain(step)
        b = permuted({k: v[..., perm] for k, v in step.items()})
        assert torch.allclose(a.ratios.sum(-1), torch.ones(P), atol=1e-6)
        assert (a.ratios >= 0.05 - 1e-7).all()
        assert torch.allclose(a.ratios[:, perm], b.ratios, atol=1e-6)  # equivariant over domains
        assert torch.allclose(a.loss, b.loss, rtol=1e-5)
    assert (a.ratios.max() - a.ratios.min()) > 0.05  # the weights did move off uniform


def test_the_noise_control_has_the_requested_spread():
    weighting = UniformNoiseWeighting(P, D, noise_std=0.05).train()
    draws = []
    for step in range(400):
        generator = torch.Generator().manual_seed(step)
        draws.append(weighting.ratios(None, generator).ratios)
    ratios = torch.stack(draws)
    assert torch.allclose(ratios.sum(-1), torch.ones(400, P), atol=1e-6)
    deviation = ratios - 1 / D
    assert deviation.mean().abs() < 0.005
    assert deviation.std().item() == pytest.approx(0.05, rel=0.1)
    same = weighting.ratios(None, torch.Generator().manual_seed(7)).ratios
    assert torch.equal(same, draws[7])  # a pure function of the step's seed
    assert torch.equal(weighting.eval().ratios(None, None).ratios, torch.full((P, D), 1 / D))


def test_state_round_trips_through_a_state_dict():
    a = LossProgressWeighting(P, D).train()
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        a(components(torch.rand(D, generator=g), torch.rand(P - 1, D, generator=g)))
    b = LossProgressWeighting(P, D)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.current_ratios(), b.current_ratios()) and b.steps.item() == 3


def test_the_config_picks_the_strategy(tmp_path):
    for name, cls in [("loss-progress", LossProgressWeighting), ("group-dro", GroupDROWeighting),
                      ("uniform-noise", UniformNoiseWeighting)]:  # fmt: skip
        config = HRKDConfig(**common(tmp_path, name, loss_weighting=name, weighting_floor=0.02))
        weighting = build_weighting(config, P, D, 8)
        assert isinstance(weighting, cls) and config.adaptive_weighting
        assert math.isclose(weighting.floor, 0.0 if cls is UniformNoiseWeighting else 0.02)
    with pytest.raises(ValueError, match="disagree"):
        HRKDConfig(**common(tmp_path, "x", loss_weighting="group-dro", relational_mode="frozen"))
    with pytest.raises(ValueError, match="--weighting_temperature"):
        HRKDConfig(**common(tmp_path, "x", loss_weighting="loss-progress", weighting_temperature=0))
    assert HRKDConfig(**common(tmp_path, "auto", relational_mode="frozen")).loss_weighting == "relational"
