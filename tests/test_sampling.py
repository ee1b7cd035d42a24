"""DomainBatchSampler: every domain in every step, epoch length, cycling, determinism, resume."""

import itertools
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hrkd_trainer.sampling import DomainBatchSampler


def domain_ids(sizes):
    return [d for d, n in enumerate(sizes) for _ in range(n)]


def test_every_step_holds_every_domain_in_domain_order():
    ids = domain_ids([10, 25, 7])
    sampler = DomainBatchSampler(ids, per_domain_batch_size=4, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(25 / 4)
    for batch in batches:
        assert [ids[i] for i in batch] == [0] * 4 + [1] * 4 + [2] * 4


def test_fit_domain_sets_epoch_length_and_small_domains_cycle():
    ids = domain_ids([10, 25, 7])
    sampler = DomainBatchSampler(ids, per_domain_batch_size=4, fit_domain=0, seed=0)
    assert len(sampler) == 3  # ceil(10 / 4)
    counts = Counter(i for batch in sampler for i in batch)
    # the fit domain is covered once (12 slots for 10 examples: 2 repeats from the next pass)
    fit = [i for i in range(10)]
    assert all(counts[i] >= 1 for i in fit)
    # domain 2 (7 examples) cycles: all covered within 12 slots
    assert all(counts[i] >= 1 for i in range(35, 42))


def test_epoch_shuffle_and_determinism():
    ids = domain_ids([16, 16])
    a = DomainBatchSampler(ids, per_domain_batch_size=4, seed=3)
    b = DomainBatchSampler(ids, per_domain_batch_size=4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first  # reshuffled
    b.set_epoch(1)
    assert list(a) == list(b)  # same (seed, epoch) → same stream
    a.set_epoch(0)
    assert list(a) == first
    assert sorted(i for batch in first for i in batch) == list(range(32))  # a full pass over equal domains


def test_resume_continues_the_same_stream():
    ids = domain_ids([20, 30])
    sampler = DomainBatchSampler(ids, per_domain_batch_size=3, seed=7)
    sampler.set_epoch(2)
    full = list(sampler)
    resumed = DomainBatchSampler(ids, per_domain_batch_size=3, seed=7)
    resumed.set_epoch(2)
    assert list(itertools.islice(iter(resumed), 4, None)) == full[4:]


def test_multi_process_batches_give_each_process_every_domain():
    ids = domain_ids([24, 12])
    sampler = DomainBatchSampler(ids, per_domain_batch_size=2, num_processes=3, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 * math.ceil(24 / 6)
    for batch in batches:  # round-robin dealing gives each process one of these per step
        assert [ids[i] for i in batch] == [0, 0, 1, 1]
    # within a step the processes get disjoint examples of the fit domain
    step = batches[:3]
    fit_rows = [i for b in step for i in b if ids[i] == 0]
    assert len(set(fit_rows)) == 6


def test_errors():
    with pytest.raises(ValueError, match="no training examples"):
        DomainBatchSampler([0, 0, 2], per_domain_batch_size=1)
    with pytest.raises(ValueError, match="empty"):
        DomainBatchSampler([], per_domain_batch_size=1)
    with pytest.raises(ValueError, match="fit_domain"):
        DomainBatchSampler([0, 1], per_domain_batch_size=1, fit_domain=5)
    with pytest.raises(ValueError):
        DomainBatchSampler([0, 1], per_domain_batch_size=0)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=5),
    batch=st.integers(1, 8),
    processes=st.integers(1, 3),
    seed=st.integers(0, 100),
)
def test_properties(sizes, batch, processes, seed):
    ids = domain_ids(sizes)
    sampler = DomainBatchSampler(ids, per_domain_batch_size=batch, num_processes=processes, seed=seed)
    batches = list(sampler)
    fit = max(range(len(sizes)), key=lambda d: sizes[d])
    assert len(batches) == processes * math.ceil(sizes[fit] / (batch * processes))
    for b in batches:
        assert [ids[i] for i in b] == [d for d in range(len(sizes)) for _ in range(batch)]
    # the fit domain is fully covered every epoch
    seen = {i for b in batches for i in b if ids[i] == fit}
    assert len(seen) == sizes[fit]
