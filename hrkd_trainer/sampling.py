"""One sub-batch from every domain in every step (HRKD §2.1; docs/design-choices.md, "Data and batches")."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler

from .vocabulary import DomainSampling


def _domain_id_tensor(domain_ids: Sequence[int], owner: str) -> torch.Tensor:
    ids = torch.as_tensor(list(domain_ids), dtype=torch.long)
    if ids.numel() == 0:
        raise ValueError(f"{owner} got an empty dataset")
    return ids


class _EpochIndexSampler(Sampler[int]):
    """The ``.sampler`` Accelerate expects on a batch sampler; forwards ``set_epoch`` to its owner."""

    def __init__(self, owner: DomainBatchSampler):
        self._owner = owner

    def __iter__(self) -> Iterator[int]:
        for batch in self._owner:
            yield from batch

    def __len__(self) -> int:
        return len(self._owner) * self._owner.batch_size

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class DomainBatchSampler(BatchSampler):
    """Yield super-batches that hold ``per_domain_batch_size`` examples of *every* domain.

    One optimisation step consumes ``num_processes`` consecutive super-batches (Accelerate deals
    whole batches round-robin to processes when ``split_batches=False``), so each process sees a
    sub-batch of every domain in every step and the global per-domain batch is
    ``per_domain_batch_size × num_processes``. Within a super-batch, rows are grouped by domain in
    domain-id order.

    Epoch length is set by the *fit domain* (default: the largest): ``ceil(N_fit / B_global)`` steps.
    Every domain is reshuffled each epoch; a domain smaller than the epoch needs is cycled (each pass
    a new permutation), a larger one contributes only the first ``steps × B_global`` examples of its
    permutation. The stream is a pure function of ``(seed, epoch)``, so a resumed run that skips the
    first k batches continues exactly where the interrupted one stopped.

    Args:
        domain_ids: the domain id of every example of the dataset (0..D-1).
        per_domain_batch_size: examples of each domain per process per step.
        fit_domain: domain id that sets the epoch length (default: the largest domain).
        num_processes: number of data-parallel processes.
        seed: base seed; the permutation of epoch e uses ``seed + e``.
        shuffle: set False for a fixed order (consecutive chunks), e.g. for debugging.
    """

    def __init__(
        self,
        domain_ids: Sequence[int],
        per_domain_batch_size: int,
        fit_domain: int | None = None,
        num_processes: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        num_domains: int | None = None,
    ):
        if per_domain_batch_size < 1:
            raise ValueError(f"per_domain_batch_size must be >= 1, got {per_domain_batch_size}")
        if num_processes < 1:
            raise ValueError(f"num_processes must be >= 1, got {num_processes}")
        ids = _domain_id_tensor(domain_ids, "DomainBatchSampler")
        num_domains = int(ids.max()) + 1 if num_domains is None else num_domains
        self.domain_indices = [torch.nonzero(ids == d).flatten() for d in range(num_domains)]
        empty = [d for d, idx in enumerate(self.domain_indices) if idx.numel() == 0]
        if empty:
            raise ValueError(
                f"domain id(s) {empty} have no training examples; every domain needs at least one "
                "(remove the domain from --domains or add data)"
            )
        sizes = [idx.numel() for idx in self.domain_indices]
        self.fit_domain = (
            int(max(range(num_domains), key=lambda d: sizes[d])) if fit_domain is None else fit_domain
        )
        if not 0 <= self.fit_domain < num_domains:
            raise ValueError(f"fit_domain {fit_domain} is not a domain id (0..{num_domains - 1})")
        self.per_domain_batch_size = per_domain_batch_size
        self.num_processes = num_processes
        self.num_domains = num_domains
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.global_domain_batch = per_domain_batch_size * num_processes
        self.steps_per_epoch = math.ceil(sizes[self.fit_domain] / self.global_domain_batch)
        # BatchSampler attributes that Accelerate / Trainer read
        self.batch_size = per_domain_batch_size * num_domains
        self.drop_last = False
        self.sampler = _EpochIndexSampler(self)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.num_processes

    def _stream(self, domain: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``length`` indices of one domain: concatenated permutations (a fresh one for each pass)."""
        indices = self.domain_indices[domain]
        passes = []
        total = 0
        while total < length:
            order = (
                torch.randperm(indices.numel(), generator=generator)
                if self.shuffle
                else torch.arange(indices.numel())
            )
            passes.append(indices[order])
            total += indices.numel()
        return torch.cat(passes)[:length]

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        length = self.steps_per_epoch * self.global_domain_batch
        streams = [self._stream(d, length, generator) for d in range(self.num_domains)]
        b = self.per_domain_batch_size
        for step in range(self.steps_per_epoch):
            for process in range(self.num_processes):
                start = step * self.global_domain_batch + process * b
                yield [int(i) for stream in streams for i in stream[start : start + b]]


class MixedBatchSampler(BatchSampler):
    """Batches of ``batch_size`` examples for the baselines that do not batch by domain.

    * ``mode="pooled"`` (BERT_B-mix, meta-teacher): all domains pooled and shuffled together; a batch
      holds whatever domains its rows come from.
    * ``mode="one-domain"`` (BERT_B-mtl, MT-DNN's schedule, Liu et al. 2019): every domain is cut into
      batches of its own rows, then the batches of all domains are shuffled together, so each step
      trains one domain and domains are visited in proportion to their size.

    One epoch is one pass over the data (the last batch of a domain, or of the pool, may be short).
    The order is a pure function of ``(seed, epoch)``; with N processes Accelerate deals the batches
    round-robin, so the N batches of one step are N consecutive batches of this stream.
    """

    MODES = ("pooled", "one-domain")

    def __init__(
        self,
        domain_ids: Sequence[int],
        batch_size: int,
        mode: str = "pooled",
        seed: int = 0,
        shuffle: bool = True,
    ):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        ids = _domain_id_tensor(domain_ids, "MixedBatchSampler")
        self.domain_ids = ids
        self.mode = mode
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.batch_size = batch_size
        self.drop_last = False
        self.sampler = _EpochIndexSampler(self)
        if mode == DomainSampling.POOLED:
            self._length = math.ceil(ids.numel() / batch_size)
        else:
            sizes = torch.bincount(ids)
            self._length = int(sum(math.ceil(int(n) / batch_size) for n in sizes if n > 0))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._length

    def _order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        b = self.batch_size
        if self.mode == DomainSampling.POOLED:
            order = self._order(self.domain_ids.numel(), generator)
            batches = [order[i : i + b] for i in range(0, order.numel(), b)]
        else:
            batches = []
            for domain in torch.unique(self.domain_ids).tolist():
                rows = torch.nonzero(self.domain_ids == domain).flatten()
                rows = rows[self._order(rows.numel(), generator)]
                batches.extend(rows[i : i + b] for i in range(0, rows.numel(), b))
            batches = [batches[i] for i in self._order(len(batches), generator).tolist()]
        for batch in batches:
            yield [int(i) for i in batch]
