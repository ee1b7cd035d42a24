"""A classifier the user already has as the teacher: any ``*ForSequenceClassification`` checkpoint (a
``save_pretrained`` folder or a Hub id), not only an hrkd-trainer export.

Its classes are its ``id2label``. The data's label names are matched to them by name, after an
optional ``--label_map`` (``"neg=NEGATIVE,pos=POSITIVE"``: data label = teacher label), and the data is
relabelled to the teacher's class order, so the teacher's logits, the gold labels and the student's
exported ``id2label`` all mean the same classes. A data label the teacher does not know is an error
that names both sets; a teacher class the data never shows is allowed (the teacher still teaches it)
and logged. A teacher saved without label names (``LABEL_0``, ``LABEL_1``, …) matches integer data
labels ``0``, ``1``, … by number, and needs ``--label_map`` for any other names.
"""

from __future__ import annotations

import logging
import os
import re

from datasets import ClassLabel, DatasetDict, Value

logger = logging.getLogger(__name__)

_DEFAULT_NAME = re.compile(r"^LABEL_(\d+)$")


class LabelMismatch(ValueError):
    """The data's labels and the teacher's classes do not match."""


def is_plain_classifier(path: str, config) -> bool:
    """Whether ``path`` (with its loaded ``config``) is a plain classifier, not an hrkd-trainer export
    (which lists its domains in ``hrkd_domains``, or is a per-domain or compact export)."""
    from .export import is_compact
    from .modeling import EXPERTS_FILE

    if os.path.isdir(path) and (os.path.isfile(os.path.join(path, EXPERTS_FILE)) or is_compact(path)):
        return False
    domains = getattr(config, "hrkd_domains", None)
    if not domains:
        return True
    # one domain's folder of a full export is a plain classifier (it carries the domain list too): the
    # export's root is the folder that holds a subfolder per domain
    if os.path.isdir(path):
        return not os.path.isfile(os.path.join(path, domains[0], "config.json"))
    try:
        from huggingface_hub import file_exists

        return not file_exists(path, f"{domains[0]}/config.json")
    except Exception:  # offline or no such repo: read it as the export it says it is
        return False


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"neg=NEGATIVE, pos=POSITIVE"`` → ``{"neg": "NEGATIVE", "pos": "POSITIVE"}`` (data → teacher)."""
    if not text:
        return {}
    mapping = {}
    for item in text.split(","):
        if not item.strip():
            continue
        data_label, sep, teacher_label = item.partition("=")
        if not sep or not data_label.strip() or not teacher_label.strip():
            raise LabelMismatch(
                f"--label_map {text!r}: {item.strip()!r} is not DATA_LABEL=TEACHER_LABEL; write e.g. "
                "'neg=NEGATIVE,pos=POSITIVE'"
            )
        if data_label.strip() in mapping:
            raise LabelMismatch(f"--label_map {text!r}: {data_label.strip()!r} is mapped twice")
        mapping[data_label.strip()] = teacher_label.strip()
    return mapping


def teacher_label_names(config) -> list[str]:
    """The teacher's classes in id order."""
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]


def match_labels(
    data_labels: list[str], teacher_labels: list[str], label_map: dict[str, str], teacher: str
) -> dict[str, int]:
    """Each data label → the teacher's class id (see the module docstring for the rules)."""
    unknown_keys = sorted(set(label_map) - set(data_labels))
    if unknown_keys:
        raise LabelMismatch(
            f"--label_map names {unknown_keys}, which are not labels of the data {data_labels}"
        )
    unnamed = all(_DEFAULT_NAME.match(name) for name in teacher_labels)
    mapped = {}
    for label in data_labels:
        name = label_map.get(label, label)
        if unnamed and name not in teacher_labels and name.isdigit():
            name = f"LABEL_{int(name)}"  # a teacher without names: integer labels are its class ids
        mapped[label] = name
    missing = [label for label, name in mapped.items() if name not in teacher_labels]
    if missing:
        hint = (
            "the teacher was saved without label names, so map each data label to a class id"
            if unnamed
            else "rename the data's labels, or map them"
        )
        example = ",".join(
            f"{label}={teacher_labels[min(i, len(teacher_labels) - 1)]}"
            for i, label in enumerate(missing[:2])
        )
        raise LabelMismatch(
            f"the data's labels {data_labels} do not match the classes of --teacher {teacher} {teacher_labels}: "
            f"{missing} are not among them; {hint} with --label_map, e.g. --label_map '{example}'"
        )
    targets = list(mapped.values())
    repeated = sorted({name for name in targets if targets.count(name) > 1})
    if repeated:
        raise LabelMismatch(f"--label_map sends several data labels to the teacher's class(es) {repeated}")
    unused = [name for name in teacher_labels if name not in targets]
    if unused:
        logger.warning(
            "--teacher %s has classes the data never shows: %s; the student keeps them (the teacher's soft labels "
            "teach them), the gold labels never name them", teacher, unused,
        )  # fmt: skip
    return {label: teacher_labels.index(name) for label, name in mapped.items()}


def relabel_to_teacher(data: DatasetDict, teacher: str, label_map: str | None = None) -> DatasetDict:
    """``data`` with its labels renamed and renumbered to the classes of the plain classifier
    ``teacher`` (unchanged for an hrkd-trainer export, which was trained on such data)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(teacher)
    if not is_plain_classifier(teacher, config):
        if label_map:
            raise LabelMismatch(
                f"--label_map is for a plain classifier as --teacher; {teacher} is an hrkd-trainer export"
            )
        return data
    first = next(iter(data.values()))
    data_labels = list(first.features["label"].names)
    teacher_labels = teacher_label_names(config)
    ids = match_labels(data_labels, teacher_labels, parse_label_map(label_map), teacher)
    if [ids[label] for label in data_labels] == list(range(len(data_labels))) and len(data_labels) == len(
        teacher_labels
    ):
        new_ids = None  # same classes, same order: only the names may change
    else:
        new_ids = [ids[label] for label in data_labels]
    feature = ClassLabel(names=teacher_labels)

    def convert(dataset):
        features = dataset.features.copy()
        if new_ids is not None:
            features["label"] = Value("int64")
            dataset = dataset.cast(features).map(
                lambda row: {"label": new_ids[row["label"]]}, desc="teacher's class ids"
            )
        features["label"] = feature
        return dataset.cast(features)

    out = DatasetDict({split: convert(dataset) for split, dataset in data.items()})
    out.skipped = getattr(data, "skipped", {})
    if data_labels != teacher_labels:
        logger.info(
            "labels matched to --teacher %s: %s", teacher, {k: teacher_labels[v] for k, v in ids.items()}
        )
    return out
