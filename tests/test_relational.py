"""Eq. 6-16: golden values, shapes, sums, permutation equivariance over domains, ablations, and the
cross-process prototypes."""

import math

import pytest
import torch
from torch.nn import functional as F

from hrkd_trainer.relational import (
    DomainRelationalGraph,
    RelationalBalancer,
    compare_aggregate,
    domain_prototypes,
    global_domain_prototypes,
    normalised_entropy,
    ratio_kl_to_uniform,
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
    """A literal node-by-node reading of eq. 7-12 (no dropout), plus the optional residual term."""
    d = nodes.shape[0]
    heads = []
    for k in range(graph.heads):
        w, a = graph.weight[k], graph.attention[k]
        wh = [nodes[i] @ w for i in range(d)]
        out = []
        for i in range(d):
            s = torch.stack([a @ torch.cat([wh[i], wh[j]]) for j in range(d)])
            alpha = torch.softmax(F.leaky_relu(s, 0.2), dim=0)
            out.append(F.elu(sum(alpha[j] * wh[j] for j in range(d)) + (wh[i] if graph.residual else 0)))
        heads.append(torch.stack(out))
    hidden = torch.cat(heads, dim=-1)
    wh = [hidden[i] @ graph.out_weight for i in range(d)]  # (1,)
    logits = []
    for i in range(d):
        s = torch.stack([graph.out_attention @ torch.cat([wh[i], wh[j]]) for j in range(d)])
        alpha = torch.softmax(F.leaky_relu(s, 0.2), dim=0)
        own = wh[i] if graph.residual else 0
        logits.append(F.elu(sum(alpha[j] * wh[j] for j in range(d)) + own).squeeze())
    return torch.softmax(torch.stack(logits), dim=0)


@pytest.mark.parametrize("residual", [False, True])
def test_gat_matches_a_literal_reading_of_the_equations(residual):
    torch.manual_seed(0)
    graph = DomainRelationalGraph(in_features=5, hidden_features=3, heads=2, residual=residual).eval()
    nodes = torch.randn(4, 5)
    assert torch.allclose(graph(nodes), _manual_gat(graph, nodes), atol=1e-6)


def test_gat_on_a_complete_graph_gives_uniform_ratios_unless_scores_straddle_zero():
    """Eq. 7-12: when every score a₁ᵀWh_i + a₂ᵀWh_j has the same sign, LeakyReLU is linear, the softmax
    over j drops the i term, every node aggregates alike, and r = 1/D exactly. The residual option
    (not in the paper) makes the ratios depend on each node's own features."""
    torch.manual_seed(4)
    nodes = torch.rand(4, 5) + 0.1  # positive features
    for residual in (False, True):
        graph = DomainRelationalGraph(in_features=5, hidden_features=3, heads=2, residual=residual).eval()
        with torch.no_grad():  # positive weights and attention vectors: every score is positive
            for p in graph.parameters():
                p.abs_()
        ratios = graph(nodes)
        if residual:
            assert (ratios - 0.25).abs().max() > 1e-3
        else:
            assert torch.allclose(ratios, torch.full((4,), 0.25), atol=1e-7)


@pytest.mark.parametrize("residual", [False, True])
def test_gat_ratios_sum_to_one_and_are_permutation_equivariant(residual):
    torch.manual_seed(1)
    graph = DomainRelationalGraph(in_features=6, hidden_features=4, heads=3, residual=residual).eval()
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


# ---------------------------------------------------------------------------- the balancer


def balancer(ablations=(), positions=4, domains=4, features=6, seed=3):
    torch.manual_seed(seed)
    return RelationalBalancer(
        positions, domains, features, heads=2, hidden_features=5, ablations=ablations
    ).eval()


def test_balancer_shapes_sums_and_similarity():
    module = balancer()
    prototypes = torch.randn(4, 4, 6)
    out = module(prototypes)
    assert out.ratios.shape == (4, 4)
    assert torch.allclose(out.ratios.sum(-1), torch.ones(4))
    assert [tuple(a.shape) for a in out.similarity] == [(4, 2), (4, 3), (4, 4)]
    assert all(torch.allclose(a.sum(-1), torch.ones(4)) for a in out.similarity)
    assert out.graph_inputs.shape == (4, 4, 6)
    assert torch.equal(out.graph_inputs[0], prototypes[0])  # position 0 feeds its own prototypes
    # parameters: W^D_m (m = 1..3), W^H_{m,d}, one GAT per position
    assert module.reference_bilinear.shape == (3, 6, 6)
    assert module.compare_bilinear.shape == (3, 4, 6, 6)
    assert len(module.graphs) == 4
    with pytest.raises(ValueError, match="prototypes must be"):
        module(torch.randn(3, 4, 6))
    with pytest.raises(ValueError, match="unknown relational ablation"):
        RelationalBalancer(2, 2, 2, ablations=["graphs"])


def test_balancer_composes_the_equations():
    """Graph input m = AP_m of eq. 15-16 with RP_m of eq. 13-14; ratio row m = GAT_m(AP_m)."""
    module = balancer()
    prototypes = torch.randn(4, 4, 6)
    out = module(prototypes)
    for m in (1, 2, 3):
        reference = reference_prototypes(prototypes[m], module.reference_bilinear[m - 1])
        aggregated, alpha = compare_aggregate(prototypes[: m + 1], reference, module.compare_bilinear[m - 1])
        assert torch.allclose(out.graph_inputs[m], aggregated, atol=1e-6)
        assert torch.allclose(out.similarity[m - 1], alpha, atol=1e-6)
        assert torch.allclose(out.ratios[m], module.graphs[m](aggregated), atol=1e-6)


def test_balancer_is_permutation_equivariant_over_domains():
    module = balancer()
    prototypes = torch.randn(4, 4, 6)
    out = module(prototypes)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = balancer()
    permuted.compare_bilinear.data = module.compare_bilinear.data[:, perm]  # W^H is per domain
    out_p = permuted(prototypes[:, perm])
    assert torch.allclose(out_p.ratios, out.ratios[:, perm], atol=1e-5)
    for a, b in zip(out_p.similarity, out.similarity):
        assert torch.allclose(a, b[perm], atol=1e-5)


def test_each_ablation_changes_exactly_its_part():
    full = balancer()
    prototypes = torch.randn(4, 4, 6)
    reference = full(prototypes)

    def same_graphs(ablations):
        module = balancer(ablations)
        if module.uses_graphs:
            module.graphs.load_state_dict(full.graphs.state_dict())
        return module

    # - self-attention: RP_m = h_m, compare-aggregate and graphs unchanged
    module = same_graphs(["self_attention"])
    module.compare_bilinear.data = full.compare_bilinear.data.clone()
    assert not hasattr(module, "reference_bilinear")
    out = module(prototypes)
    for m in (1, 2, 3):
        aggregated, _ = compare_aggregate(prototypes[: m + 1], prototypes[m], full.compare_bilinear[m - 1])
        assert torch.allclose(out.graph_inputs[m], aggregated, atol=1e-6)
    assert torch.allclose(out.ratios[0], reference.ratios[0])  # position 0 is untouched
    # - compare-aggregate: plain average of positions 0..m, uniform similarity
    out = same_graphs(["compare_aggregate"])(prototypes)
    for m in (1, 2, 3):
        assert torch.allclose(out.graph_inputs[m], prototypes[: m + 1].mean(0), atol=1e-6)
        assert torch.allclose(out.similarity[m - 1], torch.full((4, m + 1), 1 / (m + 1)))
    # - hierarchy: each graph sees its own position's prototypes
    module = same_graphs(["hierarchy"])
    assert not hasattr(module, "compare_bilinear") and not hasattr(module, "reference_bilinear")
    out = module(prototypes)
    assert torch.equal(out.graph_inputs, prototypes) and out.similarity == ()
    assert torch.allclose(
        out.ratios, torch.stack([full.graphs[m](prototypes[m]) for m in range(4)]), atol=1e-6
    )
    # - domain relation: uniform ratios, no parameters at all
    module = balancer(["domain_relation"])
    assert sum(p.numel() for p in module.parameters()) == 0
    assert torch.equal(module(prototypes).ratios, torch.full((4, 4), 0.25))
    assert torch.equal(module(None).ratios, torch.full((4, 4), 0.25))


def test_seeded_dropout_is_reproducible_and_kl_penalty():
    module = balancer().train()
    prototypes = torch.randn(4, 4, 6)

    def ratios(seed):
        generator = torch.Generator().manual_seed(seed)
        return module(prototypes, generator).ratios

    assert torch.equal(ratios(7), ratios(7))
    assert not torch.equal(ratios(7), ratios(8))
    assert torch.allclose(ratios(7).sum(-1), torch.ones(4))
    uniform = torch.full((2, 4), 0.25)
    assert ratio_kl_to_uniform(uniform).item() == pytest.approx(0.0, abs=1e-7)
    assert normalised_entropy(uniform).item() == pytest.approx(1.0)
    collapsed = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert ratio_kl_to_uniform(collapsed).item() == pytest.approx(math.log(4))
    assert normalised_entropy(collapsed).item() == pytest.approx(0.0, abs=1e-6)


def _global_prototype_worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        states = torch.randn(2 * world, 3, 4)  # the global batch, identical on every rank
        mask = torch.ones(2 * world, 3)
        mask[::3, -1] = 0
        domains = torch.tensor([0, 1] * world)
        weight = torch.randn(2, 2, 4)
        mine = states[rank::world].clone().requires_grad_(True)
        protos = global_domain_prototypes([mine, 2 * mine], domains[rank::world], 2, mask[rank::world])
        (protos * weight).sum().backward()
        queue.put((rank, protos.detach(), mine.grad))
    finally:
        dist.destroy_process_group()


def test_global_prototypes_are_the_same_on_every_process_and_gradients_are_exact():
    """Two gloo processes, each with half the batch: every process gets the prototypes of the whole
    batch, and the all-reduced gradients (what DDP then averages) equal the single-process gradients."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_global_prototype_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict((r, (p, g)) for r, p, g in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    torch.manual_seed(0)
    states = torch.randn(4, 3, 4).requires_grad_(True)
    mask = torch.ones(4, 3)
    mask[::3, -1] = 0
    domains = torch.tensor([0, 1, 0, 1])
    weight = torch.randn(2, 2, 4)
    expected = global_domain_prototypes([states, 2 * states], domains, 2, mask)
    (expected * weight).sum().backward()
    for rank in (0, 1):
        protos, grad = results[rank]
        assert torch.allclose(protos, expected.detach(), atol=1e-6)
        # each rank's loss is the same function of the global prototypes; the all-reduce backward sums the
        # ranks' gradients, and DDP divides by the world size: the rows of this rank get the exact gradient
        assert torch.allclose(grad / 2, states.grad[rank::2], atol=1e-6)
