"""Compress the classifier a user already has: a plain ``*ForSequenceClassification`` checkpoint as
``--teacher`` (labels matched by name or ``--label_map``, its class order kept in the student), data
without a domain column (one domain; weightings across domains fall back, Meta-KD refuses), and
real-world files (Excel's UTF-8 byte-order mark, a repeated header name, labels that look like typos)."""

from __future__ import annotations

import csv
import json
import logging
import types

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from transformers import AutoConfig, AutoModelForSequenceClassification, BertForSequenceClassification

from hrkd_trainer.cli import main
from hrkd_trainer.data import load_vader
from hrkd_trainer.data.common import DataFormatError
from hrkd_trainer.data.files import ONE_DOMAIN, load_files, warn_about_labels
from hrkd_trainer.data.transfer import load_transfer_file
from hrkd_trainer.run.compatibility import fit_methods_to_domains
from hrkd_trainer.teacher_labels import LabelMismatch, match_labels, parse_label_map, relabel_to_teacher
from hrkd_trainer.vocabulary import LossWeightingKind, Method, RelationalMode, TeacherType

from .conftest import tiny_bert_config
from .test_cli import TINY


def save_classifier(path, tokenizer, id2label) -> str:
    """A classifier saved by plain transformers, as a user's fine-tuned model would be."""
    torch.manual_seed(3)
    config = tiny_bert_config(len(tokenizer), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tweets():
    """60 real VADER tweets with their labels ('negative'/'positive'), no domain."""
    train = load_vader()["train"]
    domains, labels = train.features["domain"].names, train.features["label"].names
    rows = [
        {"text": r["text"], "label": labels[r["label"]]} for r in train if domains[r["domain"]] == "tweets"
    ]
    return rows[:60]


def write_csv(path, rows, fieldnames, bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_a_users_classifier_is_compressed_from_an_excel_csv_without_domains(
    tmp_path, tokenizer, tweets, caplog
):
    """The teacher's classes are ['POSITIVE', 'NEGATIVE'] (the reverse of the data's sorted order): the data
    is relabelled to them, the teacher is used as is (no teacher stage), the student keeps the teacher's
    id2label, and --method hrkd on one domain falls back to uniform weights with a warning."""
    teacher = save_classifier(tmp_path / "clf", tokenizer, {0: "POSITIVE", 1: "NEGATIVE"})
    data = write_csv(tmp_path / "reviews.csv", tweets, ["text", "label"], bom=True)
    out = tmp_path / "run"
    package = logging.getLogger("hrkd_trainer")  # its own handler may write to another test's stderr
    package.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO):
            results = main([
                "--train_file", data, "--teacher", teacher, "--label_map", "negative=NEGATIVE,positive=POSITIVE",
                "--method", "hrkd", "--output_dir", str(out), *TINY,
            ])  # fmt: skip
    finally:
        package.removeHandler(caplog.handler)
    assert results["domains"] == [ONE_DOMAIN]
    said = caplog.text
    assert "one domain (all)" in said and "uniform weights" in said and "stage 2/4: teacher (given)" in said
    stages = json.loads((out / "stages.json").read_text())
    assert "teacher" not in stages and not (out / "teacher").exists()  # used as is, never trained
    student = AutoModelForSequenceClassification.from_pretrained(out / "student", subfolder=ONE_DOMAIN)
    assert student.config.id2label == {0: "POSITIVE", 1: "NEGATIVE"}
    assert student.config.num_hidden_layers == 2


def test_the_data_is_relabelled_to_the_teachers_class_order(tmp_path, tokenizer):
    teacher = save_classifier(tmp_path / "clf", tokenizer, {0: "pos", 1: "neu", 2: "neg"})
    features = Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=["neg", "pos"]),
            "domain": ClassLabel(names=["a"]),
        }
    )
    split = Dataset.from_dict(
        {"text": ["x", "y", "z"], "label": [0, 1, 0], "domain": [0, 0, 0]}, features=features
    )
    data = relabel_to_teacher(DatasetDict({"train": split, "dev": split, "test": split}), teacher)
    assert data["train"].features["label"].names == ["pos", "neu", "neg"]
    assert data["train"]["label"] == [
        2,
        0,
        2,
    ]  # neg → 2, pos → 0; 'neu' is kept though the data never shows it
    assert AutoConfig.from_pretrained(teacher).num_labels == 3


def test_labels_that_do_not_match_the_teachers_classes_are_named(tmp_path, tokenizer):
    with pytest.raises(
        LabelMismatch, match=r"the data's labels \['bad', 'good'\] .* \['NEGATIVE', 'POSITIVE'\].*--label_map"
    ):
        match_labels(["bad", "good"], ["NEGATIVE", "POSITIVE"], {}, "clf")
    assert match_labels(["bad", "good"], ["NEGATIVE", "POSITIVE"], {"bad": "NEGATIVE", "good": "POSITIVE"}, "c") == {
        "bad": 0, "good": 1,
    }  # fmt: skip
    assert match_labels(["0", "1"], ["LABEL_0", "LABEL_1"], {}, "c") == {"0": 0, "1": 1}  # unnamed: by number
    with pytest.raises(LabelMismatch, match="saved without label names"):
        match_labels(["neg", "pos"], ["LABEL_0", "LABEL_1"], {}, "c")
    with pytest.raises(LabelMismatch, match="several data labels"):
        match_labels(["a", "b"], ["X", "Y"], {"a": "X", "b": "X"}, "c")
    with pytest.raises(LabelMismatch, match=r"names \['typo'\]"):
        match_labels(["a", "b"], ["a", "b"], {"typo": "a"}, "c")
    with pytest.raises(LabelMismatch, match="is not DATA_LABEL=TEACHER_LABEL"):
        parse_label_map("neg:NEGATIVE")


def test_files_with_a_bom_repeated_headers_no_domain_and_suspicious_labels(tmp_path, caplog):
    rows = [{"text": f"t {i}", "label": "pos" if i % 2 else "neg"} for i in range(40)]
    data = load_files(write_csv(tmp_path / "bom.csv", rows, ["text", "label"], bom=True))
    assert data["train"].features["domain"].names == [ONE_DOMAIN]  # no '\ufefftext' column, one domain
    assert sum(len(data[s]) for s in data) == 40
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("text,label,label\nhello,pos,neg\n")
    with pytest.raises(
        DataFormatError,
        match=r"repeated.csv, line 1: the header repeats a column name \('label' names columns \[2, 3\]\)",
    ):
        load_files(str(repeated))
    with pytest.raises(DataFormatError, match="missing domain column 'site'"):  # a named column must exist
        load_files(str(tmp_path / "bom.csv"), domain_column="site")
    labelled = [{"label": v} for v in ["Positive"] * 3 + ["positive"] * 9 + ["neg"] * 10]
    with caplog.at_level(logging.WARNING):
        found = warn_about_labels(labelled, "f.csv", "label")
    assert found == {"case": [["Positive", "positive"]], "rare": {"Positive": 3}}
    assert "'Positive' (3), 'positive' (9)" in caplog.text and "fewer than 5" in caplog.text
    assert warn_about_labels([{"label": v} for v in ["a"] * 5 + ["b"] * 5], "f.csv", "label") == {}


def test_a_dev_file_without_the_domains_of_train_is_named(tmp_path):
    train = [{"text": f"t {i}", "label": str(i % 2), "domain": "ab"[i % 2]} for i in range(40)]
    dev = [{"text": "d", "label": "0"}]
    with pytest.raises(
        DataFormatError, match=r"dev.csv: no 'domain' column, but .* has the domains \['a', 'b'\]"
    ):
        load_files(
            write_csv(tmp_path / "train.csv", train, ["text", "label", "domain"]),
            dev_file=write_csv(tmp_path / "dev.csv", dev, ["text", "label"]),
            test_file=write_csv(tmp_path / "test.csv", dev, ["text", "label"]),
        )  # fmt: skip


def test_transfer_text_without_domains(tmp_path):
    path = write_csv(tmp_path / "u.csv", [{"text": "some text"}, {"text": "more"}], ["text"])
    assert load_transfer_file(path, ["books"])["domain"] == [0, 0]  # one domain: the text is its
    with pytest.raises(
        DataFormatError, match=r"no domain column, but the training data has the domains \['a', 'b'\]"
    ):
        load_transfer_file(path, ["a", "b"])


def test_methods_that_need_several_domains_refuse_or_fall_back_on_one():
    def flags(method, teacher_type=TeacherType.HRKD, relational=False, adaptive=False):
        recipe = types.SimpleNamespace(method=method, teacher_type=teacher_type, teacher=None)
        config = types.SimpleNamespace(
            relational=relational, adaptive_weighting=adaptive,
            relational_mode=RelationalMode.FROZEN if relational else RelationalMode.OFF,
            loss_weighting=LossWeightingKind.GROUP_DRO if adaptive else LossWeightingKind.UNIFORM,
        )  # fmt: skip
        return recipe, config

    with pytest.raises(SystemExit, match="--method meta-distill needs at least 2 domains"):
        fit_methods_to_domains(["all"], *flags(Method.META_DISTILL))
    with pytest.raises(SystemExit, match="--teacher_type meta needs at least 2 domains"):
        fit_methods_to_domains(["all"], *flags(Method.MULTI_DOMAIN, TeacherType.META))
    recipe, config = flags(Method.MULTI_DOMAIN, adaptive=True)
    fit_methods_to_domains(["all"], recipe, config)
    assert config.loss_weighting == LossWeightingKind.UNIFORM
    recipe, config = flags(Method.HRKD, relational=True)
    fit_methods_to_domains(["a", "b"], recipe, config)  # two domains: nothing changes
    assert recipe.method == Method.HRKD and config.relational_mode == RelationalMode.FROZEN


def test_one_domains_folder_of_a_full_export_is_a_plain_classifier(tmp_path, bert_teacher_dir):
    """A full export's root is an hrkd export; its domain subfolders (AutoModel-loadable, and carrying the
    domain list in their config) are plain classifiers a user may pass as --teacher; so is a compact one
    never."""
    from hrkd_trainer.modeling import MultiDomainModel
    from hrkd_trainer.teacher_labels import is_plain_classifier

    model = MultiDomainModel.from_encoder(bert_teacher_dir, ["a", "b"], ["neg", "pos"], seed=0)
    model.save_pretrained(str(tmp_path / "full"))
    model.save_pretrained(str(tmp_path / "compact"), domain_copies=False)
    for path, plain in (
        (tmp_path / "full", False),
        (tmp_path / "full" / "b", True),
        (tmp_path / "compact", False),
    ):
        config = AutoConfig.from_pretrained(path) if plain or path.name == "full" else None
        assert is_plain_classifier(str(path), config) is plain, path
