"""Weights from the per-domain component losses themselves (no graph): the positions' losses of the
step, exact over the global batch, give every process the same ratios.

All strategies here keep eq. 17's form (``hrkd_loss``: r weighs each position's losses per domain,
the prediction loss stays uniform) at the ``mean`` scale, so uniform ratios give eq. 5 exactly, and
mix their distribution with a floor: ``r_{m,·} = f + (1 − D f)·q_{m,·}``, so every domain keeps at
least ``f`` of each position's weight. ``position_losses`` gives ℓ_{m,d}: position 0 the embedding
loss, position m ≥ 1 the attention plus hidden-state losses of mapped layer m.
"""

from __future__ import annotations

import math

import torch

from ..losses import hrkd_loss
from .base import LossWeighting, RatioOutput, WeightedLoss


def position_losses(components: dict[str, torch.Tensor]) -> torch.Tensor:
    """ℓ ``(M+1, D)``: embeddings, then attention + hidden per mapped layer (detached)."""
    layers = components["attn"] + components["hidn"]
    return torch.cat([components["embd"].unsqueeze(0), layers]).detach().float()


def with_floor(q: torch.Tensor, floor: float) -> torch.Tensor:
    """``f + (1 − D f)·q``: a distribution over the last axis in which every entry is at least f."""
    num_domains = q.shape[-1]
    if not 0.0 <= floor * num_domains <= 1.0:
        raise ValueError(f"the floor {floor} times {num_domains} domains must be in [0, 1]")
    return floor + (1.0 - num_domains * floor) * q


class _FromLosses(LossWeighting):
    """Shared parts: the floor, the prediction weight, eq. 17 at the mean scale."""

    def __init__(self, num_positions: int, num_domains: int, floor: float = 0.05, pred_weight: float = 1.0):
        super().__init__()
        with_floor(torch.full((num_domains,), 1.0 / num_domains), floor)  # checks the floor
        self.num_positions, self.num_domains = num_positions, num_domains
        self.floor, self.pred_weight = floor, pred_weight

    def weighted(self, components: dict[str, torch.Tensor], ratios: torch.Tensor) -> WeightedLoss:
        ratios = ratios.to(components["embd"].device)
        loss = hrkd_loss(
            components["embd"],
            components["attn"],
            components["hidn"],
            components["pred"],
            ratios,
            self.pred_weight,
        )
        return WeightedLoss(loss, ratios)


class UniformNoiseWeighting(_FromLosses):
    """The control: uniform ratios plus random noise of a chosen size, drawn afresh every step.

    ``r_{m,·} = 1/D + σ √(D/(D−1)) (z − z̄)``, ``z ~ N(0, I_D)``: every r_{m,d} − 1/D has standard
    deviation σ and each row sums to 1; then clamped at the floor and renormalised. The draw comes
    from the step's seed, so every process draws the same ratios and a resumed run draws them again.
    In evaluation mode the ratios are uniform. With σ set to the spread of the paper module's
    ratios, it tells "frozen HRKD" apart from noise.
    """

    name = "uniform-noise"
    needs_step_seed = True

    def __init__(
        self, num_positions: int, num_domains: int, noise_std: float = 0.05, floor: float = 0.0, **kw
    ):
        super().__init__(num_positions, num_domains, floor, **kw)
        self.noise_std = noise_std

    def ratios(self, prototypes=None, generator: torch.Generator | None = None) -> RatioOutput:
        shape = (self.num_positions, self.num_domains)
        uniform = torch.full(shape, 1.0 / self.num_domains)
        if not self.training or self.num_domains < 2 or self.noise_std == 0:
            return RatioOutput(uniform)
        device = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(shape, generator=generator, device=device).cpu()
        z = (z - z.mean(-1, keepdim=True)) * math.sqrt(self.num_domains / (self.num_domains - 1))
        ratios = (uniform + self.noise_std * z).clamp_min(self.floor)
        return RatioOutput(ratios / ratios.sum(-1, keepdim=True))

    def forward(self, components, ratios: RatioOutput | None = None) -> WeightedLoss:
        r = (
            ratios.ratios
            if ratios is not None
            else torch.full((self.num_positions, self.num_domains), 1 / self.num_domains)
        )
        return self.weighted(components, r)


class _SmoothedSoftmax(_FromLosses):
    """Shared by loss-progress and gradient-alignment: an EMA ``a`` of a per-step signal ``(P, D)``
    (``a`` = the signal at the first step) in a checkpointed buffer, and the ratios
    ``r = f + (1 − D f) softmax(score(a) / T)`` (uniform before the first signal)."""

    def __init__(self, num_positions, num_domains, temperature=0.1, ema=0.9, floor=0.05, **kw):
        super().__init__(num_positions, num_domains, floor, **kw)
        if temperature <= 0 or not 0.0 <= ema < 1.0:
            raise ValueError(f"need temperature > 0 and ema in [0, 1), got {temperature} and {ema}")
        self.temperature, self.ema = temperature, ema
        self.register_buffer("average", torch.zeros(num_positions, num_domains))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def fold(self, signal: torch.Tensor) -> None:
        """``a ← β a + (1 − β) signal`` (``a = signal`` the first time)."""
        signal = signal.detach().float().to(self.average.device)
        if self.steps.item() == 0:
            self.average.copy_(signal)
        else:
            self.average.mul_(self.ema).add_((1.0 - self.ema) * signal)
        self.steps += 1

    def score(self, average: torch.Tensor) -> torch.Tensor:
        return average

    def current_ratios(self) -> torch.Tensor:
        if self.steps.item() == 0:
            return torch.full_like(self.average, 1.0 / self.num_domains)
        return with_floor(torch.softmax(self.score(self.average) / self.temperature, dim=-1), self.floor)


class LossProgressWeighting(_SmoothedSoftmax):
    """Relative loss progress (in the spirit of DWA, Liu et al. 2019, and GradNorm's inverse training
    rate, Chen et al. 2018): the domains whose losses have come down least get the most weight.

    With ℓ_{m,d}(t) the step's position losses, e = EMA_β(ℓ) and ℓ⁰ the first step's losses:
    ``ρ_{m,d} = e_{m,d} / ℓ⁰_{m,d}``, ``q_{m,·} = softmax(ρ_{m,·} / T)``, ``r = f + (1 − D f) q``.
    The first step is uniform. State (EMA, ℓ⁰) lives in buffers: saved in checkpoints, restored on
    resume; updated in training mode only.
    """

    name = "loss-progress"

    def __init__(self, num_positions, num_domains, temperature=0.1, ema=0.9, floor=0.05, **kw):
        super().__init__(num_positions, num_domains, temperature, ema, floor, **kw)
        self.register_buffer("initial", torch.zeros(num_positions, num_domains))

    def score(self, average: torch.Tensor) -> torch.Tensor:
        return average / self.initial.clamp_min(1e-12)

    def forward(self, components, ratios: RatioOutput | None = None) -> WeightedLoss:
        losses = position_losses(components).to(self.average.device)
        if self.training:
            if self.steps.item() == 0:
                self.initial.copy_(losses)
            self.fold(losses)
        return self.weighted(components, self.current_ratios())


class GroupDROWeighting(_FromLosses):
    """Online group DRO (Sagawa et al., 2020) per position: exponentiated-gradient ascent on the
    domain weights towards the domains with the highest loss.

    ``q_{m,d} ← q_{m,d} · exp(η ℓ_{m,d} / mean_d ℓ_{m,d})``, renormalised over d (the loss is divided
    by its mean over domains so that η does not depend on the loss scale), ``r = f + (1 − D f) q``.
    q starts uniform; it is a buffer (checkpointed) and moves in training mode only.
    """

    name = "group-dro"

    def __init__(
        self, num_positions: int, num_domains: int, step_size: float = 0.01, floor: float = 0.05, **kw
    ):
        super().__init__(num_positions, num_domains, floor, **kw)
        if step_size < 0:
            raise ValueError(f"the step size must be >= 0, got {step_size}")
        self.step_size = step_size
        self.register_buffer("q", torch.full((num_positions, num_domains), 1.0 / num_domains))

    def forward(self, components, ratios: RatioOutput | None = None) -> WeightedLoss:
        losses = position_losses(components).to(self.q.device)
        if self.training:
            scaled = losses / losses.mean(-1, keepdim=True).clamp_min(1e-12)
            q = self.q * torch.exp(self.step_size * scaled)
            self.q.copy_(q / q.sum(-1, keepdim=True))
        return self.weighted(components, with_floor(self.q, self.floor))
