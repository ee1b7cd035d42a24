"""Meta-KD weighting formulas against hand-computed values."""

import math

import pytest
import torch

from hrkd_trainer.metakd import (
    corrupted_domain_ids,
    domain_expertise_weights,
    mean_token_embeddings,
    meta_instance_weights,
    prototype_scores,
)


def test_mean_token_embeddings_skip_cls_and_padding():
    hidden = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0], [7.0, 7.0]]])  # CLS, 2 tokens, pad
    mask = torch.tensor([[1, 1, 1, 0]])
    assert mean_token_embeddings(hidden, mask).tolist() == [[2.0, 3.0]]
    # the release: every position after CLS, padding included
    assert mean_token_embeddings(hidden).tolist()[0] == pytest.approx([11 / 3, 13 / 3])


def test_prototype_scores_golden():
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    domains = torch.tensor([0, 0, 1, 1])
    # centroids: c0 = (1, 0), c1 = (0.5, 1); for domain 0 the other mean is c1, for domain 1 it is c0
    t = prototype_scores(e, domains, 2)
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(torch.tensor(a), torch.tensor(b), dim=0))  # noqa: E731
    expected = [
        0.5 * 1.0 + 0.5 * cos([1.0, 0.0], [0.5, 1.0]),
        0.5 * 1.0 + 0.5 * cos([1.0, 0.0], [0.5, 1.0]),
        0.5 * cos([0.0, 1.0], [0.5, 1.0]) + 0.5 * 0.0,
        0.5 * cos([1.0, 1.0], [0.5, 1.0]) + 0.5 * math.sqrt(0.5),
    ]
    assert t.tolist() == pytest.approx(expected, abs=1e-6)
    # three domains: "others" is the mean of the two other centroids, not a mean of cosines
    e3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    t3 = prototype_scores(e3, torch.tensor([0, 1, 2]), 3)
    assert t3[0].item() == pytest.approx(0.5 * 1.0 + 0.5 * cos([1.0, 0.0], [-0.5, 0.5]), abs=1e-6)
    with pytest.raises(ValueError, match="no examples"):
        prototype_scores(e, torch.tensor([0, 0, 0, 0]), 2)
    with pytest.raises(ValueError, match=">= 2 domains"):
        prototype_scores(e, torch.zeros(4, dtype=torch.long), 1)


def test_domain_expertise_and_instance_weights_golden():
    probs = torch.tensor([[0.1, 0.9], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([1, 0, 1, 1])
    w = domain_expertise_weights(probs, labels)
    expected = [1 / (1 + math.exp(0.01)), 1 / (1 + math.exp(0.25)), 1 / (1 + math.e), 0.5]
    assert w.tolist() == pytest.approx(expected, abs=1e-6)
    assert (w >= 1 / (1 + math.e) - 1e-7).all() and (w <= 0.5).all()
    t = torch.tensor([0.5, -0.5, 0.0, 1.0])
    assert meta_instance_weights(t, w).tolist() == pytest.approx(
        [1.5 * expected[0], 0.5 * expected[1], expected[2], 1.0]
    )


def test_corrupted_domain_ids_are_a_permutation_of_the_batch():
    ids = torch.tensor([0, 0, 1, 2, 2, 2, 3, 1])
    shuffled = corrupted_domain_ids(ids, torch.Generator().manual_seed(0))
    assert sorted(shuffled.tolist()) == sorted(ids.tolist())
    assert not torch.equal(shuffled, ids)
    assert torch.equal(shuffled, corrupted_domain_ids(ids, torch.Generator().manual_seed(0)))
