"""Tokenisation of multi-domain data and dynamic padding of super-batches."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from datasets import Dataset

from .vocabulary import Padding


def same_tokenizer(a, b) -> bool:
    """True when two tokenizers map every text to the same ids (same class and vocabulary)."""
    if a is b:
        return True
    return (
        type(a).__name__ == type(b).__name__
        and a.get_vocab() == b.get_vocab()
        and a.pad_token_id == b.pad_token_id
    )


def tokenize_multi_domain(
    dataset: Dataset,
    tokenizer,
    max_length: int = 128,
    teacher_tokenizer=None,
    num_proc: int | None = None,
) -> Dataset:
    """Tokenise ``text`` (and ``text_pair``) → ``input_ids`` (+ ``token_type_ids``), ``labels``, ``domain_ids``.

    With a ``teacher_tokenizer`` that differs from the student's, the teacher's ids are stored as
    ``teacher_input_ids`` (+ ``teacher_token_type_ids``). No padding here: the collator pads each batch.
    """
    pair = "text_pair" in dataset.column_names
    teacher = (
        None
        if teacher_tokenizer is None or same_tokenizer(tokenizer, teacher_tokenizer)
        else teacher_tokenizer
    )

    def encode(batch):
        texts = (batch["text"], batch["text_pair"]) if pair else (batch["text"],)
        out = {}
        student = tokenizer(*texts, truncation=True, max_length=max_length)
        out["input_ids"] = student["input_ids"]
        if "token_type_ids" in student:
            out["token_type_ids"] = student["token_type_ids"]
        if teacher is not None:
            encoded = teacher(*texts, truncation=True, max_length=max_length)
            out["teacher_input_ids"] = encoded["input_ids"]
            if "token_type_ids" in encoded:
                out["teacher_token_type_ids"] = encoded["token_type_ids"]
        out["labels"] = batch["label"]
        out["domain_ids"] = batch["domain"]
        return out

    return dataset.map(
        encode, batched=True, remove_columns=dataset.column_names, num_proc=num_proc, desc="tokenize"
    )


def check_token_alignment(dataset: Dataset) -> None:
    """Hidden-state and attention losses compare token i of the student with token i of the teacher:
    with two tokenizers, both must produce sequences of the same length for every example."""
    if "teacher_input_ids" not in dataset.column_names:
        return
    mismatched = [
        i
        for i, (s, t) in enumerate(zip(dataset["input_ids"], dataset["teacher_input_ids"]))
        if len(s) != len(t)
    ]
    if mismatched:
        raise ValueError(
            f"the teacher and student tokenizers split {len(mismatched)} of {len(dataset)} examples into "
            f"different numbers of tokens (first: example {mismatched[0]}), so token-level losses cannot be "
            "matched. Use a student that shares the teacher's tokenization, or turn the embedding, "
            "attention and hidden losses off (--distill_losses prediction)."
        )


class MultiDomainCollator:
    """Pads a list of tokenised examples into tensors.

    Output keys: ``input_ids``, ``attention_mask``, (``token_type_ids``), ``labels``, ``domain_ids``,
    (``instance_weights``, Meta-KD's prototype scores), (``example_index``, for the teacher cache), and ``teacher_*`` counterparts when the teacher has its own tokenizer. With ``padding="longest"``
    the batch is padded to its longest row (rounded up to ``pad_to_multiple_of``); with
    ``"max_length"`` to ``max_length``.
    """

    def __init__(
        self,
        pad_token_id: int,
        teacher_pad_token_id: int | None = None,
        padding: str = "longest",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
    ):
        if padding == Padding.MAX_LENGTH and not max_length:
            raise ValueError("padding='max_length' needs max_length")
        self.pad_token_id = pad_token_id
        self.teacher_pad_token_id = pad_token_id if teacher_pad_token_id is None else teacher_pad_token_id
        self.padding = padding
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of

    def _length(self, sequences: Sequence[Sequence[int]]) -> int:
        if self.padding == Padding.MAX_LENGTH:
            return self.max_length
        length = max(len(s) for s in sequences)
        if self.pad_to_multiple_of:
            length = int(math.ceil(length / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        return length

    @staticmethod
    def _pad(sequences, length: int, value: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(sequences), length), value, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return ids, mask

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        for prefix, pad in (("", self.pad_token_id), ("teacher_", self.teacher_pad_token_id)):
            key = f"{prefix}input_ids"
            if key not in features[0]:
                continue
            sequences = [f[key] for f in features]
            length = self._length(sequences)
            batch[key], batch[f"{prefix}attention_mask"] = self._pad(sequences, length, pad)
            if f"{prefix}token_type_ids" in features[0]:
                batch[f"{prefix}token_type_ids"], _ = self._pad(
                    [f[f"{prefix}token_type_ids"] for f in features], length, 0
                )
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        batch["domain_ids"] = torch.tensor([f["domain_ids"] for f in features], dtype=torch.long)
        if "example_index" in features[0]:  # rows of the training set, for the teacher cache
            batch["example_index"] = torch.tensor([f["example_index"] for f in features], dtype=torch.long)
        if "instance_weights" in features[0]:  # Meta-KD's prototype scores t_i
            batch["instance_weights"] = torch.tensor(
                [f["instance_weights"] for f in features], dtype=torch.float
            )
        return batch


#: batch columns the student model reads (labels aside); everything else is for the losses
STUDENT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "domain_ids")


def student_inputs(batch: dict) -> dict:
    """The student's model inputs of a collated batch (drops labels, teacher ids, instance weights,
    cache indices and any other column the losses read)."""
    return {key: batch[key] for key in STUDENT_INPUTS if key in batch}


def teacher_inputs(batch: dict) -> dict:
    """The teacher's model inputs: ``teacher_*`` columns when its tokenizer differs, else the student's."""
    prefix = "teacher_" if "teacher_input_ids" in batch else ""
    return {
        "input_ids": batch[f"{prefix}input_ids"],
        "attention_mask": batch[f"{prefix}attention_mask"],
        "token_type_ids": batch.get(f"{prefix}token_type_ids"),
        "domain_ids": batch["domain_ids"],
    }
