"""Eq. 6-16 building blocks: golden values, shapes, sums, permutation equivariance over domains."""

import math

import torch
from torch.nn import functional as F

from hrkd_trainer.relational import (
    DomainRelationalGraph,
    compare_aggregate,
    domain_prototypes,
    reference_prototypes,
)


def test_prototypes_eq6_golden():
    states = torch.tensor([
        [[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]],  # domain 0, last token is padding
        [[5.0, 4.0], [5.0, 4.0], [5.0, 4.0]],  # domain 1
        [[0.0, 0.0], [0.0, 0.0], [0.0, 6.0]],  # domain 0
    ])  # fmt: skip
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 1]])
    domains = torch.tensor([0, 1, 0])
    real = domain_prototypes(states, domains, 3, mask)
    # domain 0: real tokens (1,0), (3,2), (0,0), (0,0), (0,6) → mean (0.8, 1.6); domain 2 absent → 0
    assert torch.allclose(real, torch.tensor([[0.8, 1.6], [5.0, 4.0], [0.0, 0.0]]))
    padded = domain_prototypes(states, domains, 3, None)
    # the release: every position, padding included → (104/6, 108/6)
    assert torch.allclose(padded[0], torch.tensor([104 / 6, 108 / 6]))


def test_reference_prototypes_eq13_14_golden():
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    # scores h W hᵀ = [[log 3, 0], [0, 0]] → row softmax [[0.75, 0.25], [0.5, 0.5]]
    expected = torch.tensor([[0.75, 0.25], [0.5, 0.5]]) @ h
    assert torch.allclose(reference_prototypes(h, w), expected)
    assert torch.allclose(reference_prototypes(h, torch.zeros(2, 2)), torch.full((2, 2), 0.5))


def test_compare_aggregate_eq15_16_golden():
    lower = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # (m+1=2, D=1, F=2)
    reference = torch.tensor([[1.0, 0.0]])
    bilinear = torch.eye(2).unsqueeze(0) * math.log(3.0)  # W^H = log3 · I
    aggregated, ratios = compare_aggregate(lower, reference, bilinear)
    # scores h_j · W · RP = [log 3, 0] → ratios (0.75, 0.25); AP = 0.75 h_0 + 0.25 h_1
    assert torch.allclose(ratios, torch.tensor([[0.75, 0.25]]))
    assert torch.allclose(aggregated, torch.tensor([[0.75, 0.25]]))


def _manual_gat(graph: DomainRelationalGraph, nodes: torch.Tensor) -> torch.Tensor:
    """A literal node-by-node reading of eq. 7-12 (no dropout)."""
    d = nodes.shape[0]
    heads = []
    for k in range(graph.heads):
        w, a = graph.weight[k], graph.attention[k]
        wh = [nodes[i] @ w for i in range(d)]
        out = []
        for i in range(d):
            s = torch.stack([a @ torch.cat([wh[i], wh[j]]) for j in range(d)])
            alpha = torch.softmax(F.leaky_relu(s, 0.2), dim=0)
            out.append(F.elu(sum(alpha[j] * wh[j] for j in range(d))))
        heads.append(torch.stack(out))
    hidden = torch.cat(heads, dim=-1)
    wh = [hidden[i] @ graph.out_weight for i in range(d)]  # (1,)
    logits = []
    for i in range(d):
        s = torch.stack([graph.out_attention @ torch.cat([wh[i], wh[j]]) for j in range(d)])
        alpha = torch.softmax(F.leaky_relu(s, 0.2), dim=0)
        logits.append(F.elu(sum(alpha[j] * wh[j] for j in range(d))).squeeze())
    return torch.softmax(torch.stack(logits), dim=0)


def test_gat_matches_a_literal_reading_of_the_equations():
    torch.manual_seed(0)
    graph = DomainRelationalGraph(in_features=5, hidden_features=3, heads=2).eval()
    nodes = torch.randn(4, 5)
    assert torch.allclose(graph(nodes), _manual_gat(graph, nodes), atol=1e-6)


def test_gat_ratios_sum_to_one_and_are_permutation_equivariant():
    torch.manual_seed(1)
    graph = DomainRelationalGraph(in_features=6, hidden_features=4, heads=3).eval()
    nodes = torch.randn(5, 6)
    ratios = graph(nodes)
    assert ratios.shape == (5,) and torch.allclose(ratios.sum(), torch.tensor(1.0))
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.allclose(graph(nodes[perm]), ratios[perm], atol=1e-6)
    graph.train()
    assert torch.allclose(graph(nodes).sum(), torch.tensor(1.0))  # dropout keeps it a distribution


def test_reference_prototypes_and_compare_aggregate_are_equivariant():
    torch.manual_seed(2)
    h = torch.randn(3, 4, 6)  # positions 0..2, 4 domains
    w_d = torch.randn(6, 6) * 0.1
    w_h = torch.randn(4, 6, 6) * 0.1
    perm = torch.tensor([2, 0, 3, 1])
    rp = reference_prototypes(h[2], w_d)
    assert torch.allclose(reference_prototypes(h[2][perm], w_d), rp[perm], atol=1e-6)
    ap, ratios = compare_aggregate(h, rp, w_h)
    ap_p, ratios_p = compare_aggregate(h[:, perm], rp[perm], w_h[perm])  # per-domain W^H permute too
    assert torch.allclose(ap_p, ap[perm], atol=1e-6) and torch.allclose(ratios_p, ratios[perm], atol=1e-6)
    assert torch.allclose(ratios.sum(-1), torch.ones(4))
