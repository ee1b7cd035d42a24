"""Transfer text and augmentation in a recipe run: the flags, and the rows the teacher labels for the
student, added to the distillation's training data (never to the teacher's, nor to the no-KD
baseline's unless ``--baseline_pseudo_labels`` gives them the teacher's hard labels: the control that
tells "more data" from "soft labels").

The transfer rows come from ``--transfer_file`` / ``--transfer_dataset_name`` / ``--transfer_rest_of_train``
(capped by ``--max_transfer_samples_per_domain``); ``--augment N`` adds N augmented copies of every
labelled training row (:mod:`hrkd_trainer.data.augment`). Both carry no gold label; the multi-domain
sampler still takes one sub-batch of every domain per step, now from the larger pool, and the
teacher-output cache covers them like any training row.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from datasets import Dataset, concatenate_datasets

from ..collate import tokenize_multi_domain
from ..config import check_range, option
from ..data.augment import augmented_copies, mask_tokens
from ..data.common import per_domain_head
from ..data.tokenized import TokenizedData
from ..data.transfer import load_transfer_dataset, load_transfer_file, require_rows, rest_of_train
from ..evaluation import predict_per_domain

logger = logging.getLogger(__name__)

GROUP_TRANSFER = "transfer text and augmentation (rows the teacher labels for the student)"


@dataclass
class TransferArguments:
    """Flags of the rows without gold labels that the distillation adds."""

    help_group = GROUP_TRANSFER

    transfer_file: str | None = option(
        None,
        help="Unlabelled text for the teacher to label: a CSV, TSV, JSON(L) file or save_to_disk folder with text "
        "(and text_pair) and domain columns (the --text_column/--domain_column names); added to distillation's "
        "training rows.",
    )
    transfer_dataset_name: str | None = option(
        None, help="The same from a data set (a Hub id or a local save_to_disk folder; its train split)."
    )
    transfer_rest_of_train: bool = option(
        False,
        help="Use the train split's rows that --max_train_samples_per_domain / --few_shot_fraction left out as "
        "transfer text (their labels are not read).",
    )
    max_transfer_samples_per_domain: int | None = option(
        None, help="At most this many transfer rows per domain (the first ones)."
    )
    augment: int = option(
        0,
        help="Add this many augmented copies of every labelled training row for the teacher to label (Tang et "
        "al. 2019: word deletion, n-gram sampling, token masking). 0: none.",
    )
    augment_mask_probability: float = option(0.1, help="Each token → the mask token with this probability.")
    augment_delete_probability: float = option(0.1, help="Each word is dropped with this probability.")
    augment_ngram_probability: float = option(
        0.25, help="With this probability a copy keeps only a random n-gram (n in 1..5) of its words."
    )
    augment_seed: int = option(0, help="Seed of the augmentation (the same set for every training seed).")
    baseline_pseudo_labels: bool = option(
        False,
        help="The no-KD baseline also trains on the transfer rows, labelled with the teacher's predicted class "
        "(hard labels): the control that separates more data from soft labels.",
    )

    @property
    def transfer_requested(self) -> bool:
        return bool(
            self.transfer_file or self.transfer_dataset_name or self.transfer_rest_of_train or self.augment
        )

    def check_transfer_flags(self) -> None:
        if self.transfer_file and self.transfer_dataset_name:
            raise SystemExit("give either --transfer_file or --transfer_dataset_name, not both")
        check_range("--max_transfer_samples_per_domain", self.max_transfer_samples_per_domain, low=1)
        check_range("--augment", self.augment, low=0)
        for name in ("mask", "delete", "ngram"):
            check_range(
                f"--augment_{name}_probability", getattr(self, f"augment_{name}_probability"), 0.0, 1.0
            )
        if self.baseline_pseudo_labels and not (
            self.transfer_file or self.transfer_dataset_name or self.transfer_rest_of_train
        ):
            raise SystemExit("--baseline_pseudo_labels labels transfer rows: give --transfer_file, "
                             "--transfer_dataset_name or --transfer_rest_of_train")  # fmt: skip


def transfer_text(recipe, data, full_train: Dataset) -> Dataset | None:
    """The transfer rows (text, domain, no label) of the run: from the flags' sources, capped."""
    domains = data["train"].features["domain"].names
    columns = {"text_column": recipe.text_column, "text_pair_column": recipe.text_pair_column,
               "domain_column": recipe.domain_column}  # fmt: skip
    if recipe.transfer_file:
        text, source = load_transfer_file(recipe.transfer_file, domains, **columns), recipe.transfer_file
    elif recipe.transfer_dataset_name:
        name = recipe.transfer_dataset_name
        text, source = load_transfer_dataset(name, domains, **columns), name
    elif recipe.transfer_rest_of_train:
        text, source = rest_of_train(full_train, data["train"]), "--transfer_rest_of_train"
    else:
        return None
    return require_rows(per_domain_head(text, recipe.max_transfer_samples_per_domain), source)


def add_transfer_set(state) -> None:
    """Stage 1's last step: ``state.transfer``, the tokenised transfer and augmented rows (label −100)."""
    try:
        state.transfer = transfer_rows(state)
    except (FileNotFoundError, UnicodeDecodeError, ValueError, KeyError) as err:
        raise SystemExit(f"cannot load the transfer text: {err}") from None
    counts = Counter(state.transfer["domain_ids"])
    sizes = {d: counts[i] for i, d in enumerate(state.domains)}
    logger.info(
        "transfer: %d rows without gold labels for the teacher to label (%s)", len(state.transfer), sizes
    )


def transfer_rows(state) -> Dataset:
    """The tokenised transfer and augmented rows of ``state.recipe``'s flags."""
    recipe, config = state.recipe, state.config
    max_length, teacher_tok = config.max_length, state.teacher_tokenizer
    parts = []
    text = transfer_text(recipe, state.data, state.data.full_train)
    if text is not None:
        parts.append(tokenize_multi_domain(text, state.tokenizer, max_length, teacher_tok))
    if recipe.augment:
        copies = augmented_copies(state.data["train"], recipe.augment, recipe.augment_delete_probability,
                                  recipe.augment_ngram_probability, recipe.augment_seed)  # fmt: skip
        tokenized = tokenize_multi_domain(copies, state.tokenizer, max_length, teacher_tok)
        if recipe.augment_mask_probability:
            for tok in (state.tokenizer, teacher_tok):
                if tok.mask_token_id is None:
                    raise SystemExit(f"--augment_mask_probability: the tokenizer {tok.name_or_path} has no mask token; "
                                     "pass --augment_mask_probability 0")  # fmt: skip
            tokenized = mask_tokens(
                tokenized, recipe.augment_mask_probability, recipe.augment_seed, state.tokenizer.mask_token_id,
                state.tokenizer.all_special_ids, teacher_tok.mask_token_id, teacher_tok.all_special_ids,
            )  # fmt: skip
        parts.append(tokenized)
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


#: the flags that decide the transfer rows (a study prepares them once per distinct setting)
TRANSFER_FLAGS = tuple(f for f in TransferArguments.__dataclass_fields__ if f != "baseline_pseudo_labels")


def with_transfer(data: TokenizedData, transfer: Dataset | None) -> TokenizedData:
    """``data`` whose training rows include the transfer rows (for the distillation)."""
    if transfer is None:
        return data
    train = data.train
    transfer = (
        transfer.cast(train.features) if set(transfer.column_names) == set(train.column_names) else transfer
    )
    return TokenizedData(
        concatenate_datasets([train, transfer]), data.dev, data.test, data.domains, data.labels
    )


def teacher_view(dataset: Dataset) -> Dataset:
    """The rows as the teacher reads them (its own ids when its tokenizer differs)."""
    if "teacher_input_ids" not in dataset.column_names:
        return dataset
    own = [c for c in ("input_ids", "token_type_ids") if c in dataset.column_names]
    view = dataset.remove_columns(own)
    return view.rename_columns({f"teacher_{c}": c for c in own if f"teacher_{c}" in view.column_names})


def pseudo_labelled(teacher, transfer: Dataset, pad_token_id: int) -> Dataset:
    """The transfer rows with the teacher's predicted class as their label (the baseline's control)."""
    predicted = predict_per_domain(teacher, {"transfer": teacher_view(transfer)}, pad_token_id)["transfer"]
    return transfer.remove_columns("labels").add_column("labels", predicted)
