"""Offline augmentation for distillation (Tang et al., 2019, "Distilling task-specific knowledge from
BERT into simple neural networks"): copies of the training examples, changed so that the teacher's
output on them differs from the gold label, which the student then learns from the teacher. No
external resource is needed:

* word deletion: each word is dropped with probability ``p_delete`` (at least one word stays);
* n-gram sampling: with probability ``p_ngram`` only a random n-gram of the words is kept,
  n uniform in 1..5 (Tang et al.'s p_ng = 0.25);
* token masking: each token (special tokens aside) becomes the mask token with probability
  ``p_mask`` (their p_mask = 0.1). It runs on the token ids, after tokenisation, at the same positions
  in the student's and the teacher's ids, each model's own mask id (both tokenizers split the text into
  the same pieces), so the two models see the same masked example.

Every random choice is seeded by the example's index and the augmentation seed: the same flags give
the same augmented set (hence one teacher-output cache for every student seed).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from datasets import Dataset, Value

from .transfer import NO_LABEL

MAX_NGRAM = 5


def augment_words(text: str, rng: random.Random, p_delete: float, p_ngram: float) -> str:
    """One augmented copy of ``text`` (word deletion, then n-gram sampling)."""
    words = text.split()
    if not words:
        return text
    kept = [w for w in words if rng.random() >= p_delete] or [rng.choice(words)]
    if rng.random() < p_ngram and len(kept) > 1:
        n = rng.randint(1, min(MAX_NGRAM, len(kept)))
        start = rng.randint(0, len(kept) - n)
        kept = kept[start : start + n]
    return " ".join(kept)


def augmented_copies(train: Dataset, copies: int, p_delete: float, p_ngram: float, seed: int) -> Dataset:
    """``copies`` augmented copies of every row of ``train`` (text, text_pair, domain kept; no label)."""
    rows: dict[str, list] = {name: [] for name in train.column_names}
    pair = "text_pair" in train.column_names
    for index, row in enumerate(train):
        for copy in range(copies):
            rng = random.Random(f"{seed}-{index}-{copy}")
            for name in train.column_names:
                rows[name].append(row[name])
            rows["text"][-1] = augment_words(row["text"], rng, p_delete, p_ngram)
            if pair and row["text_pair"]:
                rows["text_pair"][-1] = augment_words(row["text_pair"], rng, p_delete, p_ngram)
            rows["label"][-1] = NO_LABEL
    features = train.features.copy()
    features["label"] = Value("int64")
    return Dataset.from_dict(rows, features=features)


def mask_tokens(
    tokenized: Dataset, p_mask: float, seed: int, mask_id: int, special_ids: Sequence[int],
    teacher_mask_id: int | None = None, teacher_special_ids: Sequence[int] = (),
) -> Dataset:  # fmt: skip
    """Each non-special token → the mask token with probability ``p_mask``, at the same positions in
    the teacher's ids (``teacher_input_ids``, when present) with the teacher's mask id."""
    special, teacher_special = set(special_ids), set(teacher_special_ids)
    has_teacher = "teacher_input_ids" in tokenized.column_names

    def mask(row, index):
        rng = random.Random(f"{seed}-mask-{index}")
        ids = list(row["input_ids"])
        teacher = list(row["teacher_input_ids"]) if has_teacher else None
        if teacher is not None and len(teacher) != len(ids):
            raise ValueError(
                f"token masking: row {index} has {len(ids)} student tokens and {len(teacher)} teacher tokens; "
                "masking the same positions needs tokenizers that split text into the same pieces (a pair, "
                "or different vocabularies, can differ): pass --augment_mask_probability 0"
            )
        for position, token in enumerate(ids):
            if token in special or (teacher is not None and teacher[position] in teacher_special):
                continue
            if rng.random() < p_mask:
                ids[position] = mask_id
                if teacher is not None:
                    teacher[position] = teacher_mask_id
        return {"input_ids": ids, **({"teacher_input_ids": teacher} if has_teacher else {})}

    return tokenized.map(mask, with_indices=True)
