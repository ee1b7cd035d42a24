"""The teacher signal of a distillation step, from one of two sources behind one call:

* :class:`LiveTeacher`: the frozen teacher (prepared once with Accelerate in evaluation mode) run under
  ``no_grad`` on the step's teacher inputs, returning hidden states, the mapped layers' pre-softmax
  scores (only those, only when the attention loss is on) and logits;
* :class:`CachedTeacher`: the same outputs read from the on-disk :class:`TeacherOutputCache` built
  once before training (``--teacher_cache``); batches without cache indices fall back to the live
  teacher.

Both return a :class:`~hrkd_trainer.modeling.MultiDomainOutput`-like object with ``hidden_states``,
``attention_scores`` and ``logits``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from .collate import teacher_inputs
from .teacher_cache import CacheSpec, TeacherOutputCache, cache_key, default_cache_root, teacher_columns
from .vocabulary import DistillLoss


class LiveTeacher:
    """Runs ``model`` (already prepared for inference) with hidden states and the ``capture_layers``'
    scores on the teacher inputs of a batch."""

    def __init__(self, model, capture_layers: Sequence[int] = ()):
        self.model = model
        self.capture_layers = tuple(capture_layers)

    @torch.no_grad()
    def __call__(self, batch: dict):
        return self.model(
            **teacher_inputs(batch), output_hidden_states=True, capture_layers=self.capture_layers
        )


class CachedTeacher:
    """Looks the batch's rows up in ``cache`` by their ``example_index`` (else asks ``fallback``)."""

    def __init__(self, cache: TeacherOutputCache, fallback: Callable):
        self.cache = cache
        self.fallback = fallback

    def __call__(self, batch: dict):
        if "example_index" not in batch:
            return self.fallback(batch)
        mask = batch["attention_mask"]
        return self.cache.lookup(batch["example_index"], mask.shape[1], mask.device)


def teacher_cache_spec(args, teacher_layers: Sequence[int]) -> CacheSpec:
    """What the enabled losses read from the teacher: hidden states at position 0 (embedding loss)
    and at the mapped teacher layers (hidden loss), scores of the mapped layers, logits."""
    teacher_layers = tuple(teacher_layers)
    hidden = ((0,) if args.uses(DistillLoss.EMBEDDING) else ()) + (
        teacher_layers if args.uses(DistillLoss.HIDDEN) else ()
    )
    return CacheSpec(
        hidden_layers=tuple(sorted(set(hidden))),
        attention_layers=teacher_layers if args.uses(DistillLoss.ATTENTION) else (),
        logits=args.uses(DistillLoss.PREDICTION),
        dtype=str(args.teacher_cache_dtype),
    )


def build_teacher_cache(
    teacher,
    dataset,
    spec: CacheSpec,
    tokenizers: Sequence,
    run_batch: Callable[[list[int]], object],
    batch_size: int,
    accelerator,
    root: str | None = None,
) -> TeacherOutputCache:
    """Open the cache of this teacher, data and spec, building it if needed: one teacher pass over
    ``dataset`` in batches of ``batch_size`` rows of similar lengths (split over the local processes).
    ``run_batch(row indices)`` gives the teacher's outputs for those rows."""
    key = cache_key(teacher, dataset, spec, [t for t in tokenizers if t is not None])
    lengths = [len(x) for x in dataset[teacher_columns(dataset)[0]]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    cache = TeacherOutputCache.build_or_open(
        root or default_cache_root(), key, spec, lengths, run_batch, batches,
        hidden_size=teacher.hidden_size, heads=teacher.num_attention_heads, num_labels=teacher.num_labels,
        process_index=accelerator.local_process_index,
        num_processes=int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes)),
        is_main_process=accelerator.is_local_main_process,
        wait_for_everyone=accelerator.wait_for_everyone,
        description={"teacher": type(teacher.encoder).__name__, "examples": len(dataset)},
    )  # fmt: skip
    if len(cache) != len(dataset):
        raise ValueError(f"{cache.directory} holds {len(cache)} examples, the training set {len(dataset)}")
    return cache
