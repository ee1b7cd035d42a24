"""Transfer text and augmentation (issue: distillation that beats fine-tuning): the transfer sources and
their bad inputs, the augmentations' properties, and a recipe run that distils with transfer rows,
augmented copies and the hard+soft loss, with the pseudo-labelled baseline as its control."""

from __future__ import annotations

import json
import random

import pytest
from datasets import ClassLabel, Dataset

from hrkd_trainer.data.augment import augment_words, augmented_copies, mask_tokens
from hrkd_trainer.data.common import DataFormatError
from hrkd_trainer.data.transfer import NO_LABEL, load_transfer_file, rest_of_train

DOMAINS = ["books", "films"]


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_transfer_file_gives_unlabelled_rows_of_the_known_domains(tmp_path, caplog):
    path = write(tmp_path / "t.csv", "text,domain,label\ngood read,books,pos\n,films,x\nawful plot,films,\n")
    rows = load_transfer_file(path, DOMAINS)
    assert rows["text"] == ["good read", "awful plot"] and rows["label"] == [NO_LABEL, NO_LABEL]
    assert rows["domain"] == [0, 1] and rows.features["domain"].names == DOMAINS
    assert "skipped 1 row(s)" in caplog.text and "empty text" in caplog.text  # counted, not dropped silently
    jsonl = write(tmp_path / "t.jsonl", json.dumps({"sentence": "fine", "site": "books"}) + "\n")
    assert load_transfer_file(jsonl, DOMAINS, text_column="sentence", domain_column="site")["text"] == [
        "fine"
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        ("words,domain\nx,books\n", r"missing text column 'text'.*columns \['domain', 'words'\]"),
        (
            "text,site\nx,books\n",
            r"no domain column, but the training data has the domains \['books', 'films'\]",
        ),
        ("text,domain\nx,books\ny,music\n", r"line 3: domain\(s\) \{'music': 1\} are not domains"),
        ("text,domain\n,books\n", "no usable rows"),
        ("", "file is empty"),
    ],
)
def test_bad_transfer_files_are_named_with_the_fix(tmp_path, content, message):
    with pytest.raises(DataFormatError, match=message):
        load_transfer_file(write(tmp_path / "t.csv", content), DOMAINS)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_transfer_file(tmp_path / "missing.csv", DOMAINS)


def test_the_rest_of_the_train_split_is_what_the_caps_left_out():
    full = Dataset.from_dict(
        {"text": [f"t{i}" for i in range(7)], "label": [0, 1, 0, 1, 0, 1, 0], "domain": [0, 1, 0, 0, 1, 1, 0]}
    ).cast_column("domain", ClassLabel(names=DOMAINS))
    kept = full.select([0, 1, 2])  # the first two of domain 0, the first of domain 1
    rest = rest_of_train(full, kept)
    assert rest["text"] == ["t3", "t4", "t5", "t6"] and set(rest["label"]) == {NO_LABEL}


def test_word_augmentation_deletes_and_samples_ngrams_reproducibly():
    text = "one two three four five six seven eight"
    assert augment_words(text, random.Random(0), 0.0, 0.0) == text
    for seed in range(50):
        out = augment_words(text, random.Random(seed), 0.3, 0.5).split()
        assert (len(out) >= 1 and " ".join(out) in text) or all(w in text.split() for w in out)
        assert out == sorted(out, key=text.split().index)  # words keep their order
        assert augment_words(text, random.Random(seed), 0.3, 0.5) == " ".join(out)  # seeded
    ngrams = [augment_words(text, random.Random(s), 0.0, 1.0).split() for s in range(200)]
    assert all(1 <= len(g) <= 5 and " ".join(g) in text for g in ngrams)  # a contiguous n-gram, n ≤ 5
    assert augment_words("word", random.Random(1), 1.0, 0.0) == "word"  # at least one word stays


def test_augmented_copies_and_token_masking_at_the_same_positions():
    train = Dataset.from_dict({"text": ["a b c d", "e f g"], "label": [0, 1], "domain": [0, 1]})
    copies = augmented_copies(train, 3, 0.2, 0.2, seed=7)
    assert len(copies) == 6 and set(copies["label"]) == {NO_LABEL} and copies["domain"] == [0, 0, 0, 1, 1, 1]
    assert copies["text"] == augmented_copies(train, 3, 0.2, 0.2, seed=7)["text"]
    ids = [[101, *range(1000, 1200), 102]]
    tokenized = Dataset.from_dict({"input_ids": ids, "teacher_input_ids": [[0, *range(5000, 5200), 2]]})
    masked = mask_tokens(tokenized, 0.3, 1, 103, [101, 102], teacher_mask_id=4, teacher_special_ids=[0, 2])[0]
    student, teacher = masked["input_ids"], masked["teacher_input_ids"]
    positions = [i for i, t in enumerate(student) if t == 103]
    assert positions == [i for i, t in enumerate(teacher) if t == 4]  # the same tokens masked in both
    assert 0 not in positions and len(student) - 1 not in positions  # never a special token
    assert 0.2 < len(positions) / 200 < 0.4
    uneven = Dataset.from_dict({"input_ids": [[101, 7, 8, 102]], "teacher_input_ids": [[0, 7, 2]]})
    with pytest.raises(
        ValueError, match=r"row 0 has 4 student tokens and 3 teacher tokens.*--augment_mask_probability 0"
    ):
        mask_tokens(uneven, 0.3, 1, 103, [101, 102], teacher_mask_id=4, teacher_special_ids=[0, 2])


def test_a_recipe_distils_with_transfer_rows_augmentation_and_hard_labels(tmp_path, bert_teacher_dir):
    """On VADER: transfer text from the train rows the cap left out, one augmented copy per labelled row,
    α-mix of gold CE and t²·KL, the teacher-output cache over all of them; the no-KD baseline trains on
    the gold rows plus the transfer rows with the teacher's labels."""
    from hrkd_trainer.run import RECIPES, run_recipe

    from .test_docs_commands import TINY

    argv = [
        "--teacher_init", bert_teacher_dir, *TINY, "--output_dir", str(tmp_path / "run"), "--transfer_rest_of_train",
        "true", "--max_transfer_samples_per_domain", "6", "--augment", "1", "--prediction_loss", "hinton",
        "--hard_label_weight", "0.5", "--baseline_pseudo_labels", "true", "--teacher_cache", "true",
        "--teacher_cache_dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    from hrkd_trainer.run import parse_recipe_args

    recipe, config = parse_recipe_args(argv, default_config=RECIPES["vader"].config)
    results = run_recipe(recipe, config, RECIPES["vader"].load, RECIPES["vader"].default_teacher_init)
    assert results["transfer"] == {"rows": 4 * 6 + 4 * 8, "per_domain": dict.fromkeys(results["domains"], 14)}
    assert (
        results["distillation"]["prediction_loss"] == "hinton"
        and results["distillation"]["hard_label_weight"] == 0.5
    )
    manifest = next((tmp_path / "cache").rglob("manifest.json"))
    assert json.loads(manifest.read_text())["examples"] == 4 * 8 + 4 * 14  # the cache covers every row
    with pytest.raises(SystemExit, match="multi-domain distillers"):
        parse_recipe_args([*argv, "--method", "tinybert"], default_config=RECIPES["vader"].config)
    with pytest.raises(SystemExit, match="--baseline_pseudo_labels labels transfer rows"):
        parse_recipe_args(["--student_layers", "1", "--baseline_pseudo_labels", "true"])


def test_a_bad_transfer_file_stops_the_run_before_training(tmp_path, bert_teacher_dir, capsys):
    from hrkd_trainer.run import RECIPES, parse_recipe_args, run_recipe

    from .test_docs_commands import TINY

    bad = write(tmp_path / "t.csv", "text,domain\nlovely,tweets\nodd,poems\n")
    argv = [
        "--teacher_init",
        bert_teacher_dir,
        *TINY,
        "--output_dir",
        str(tmp_path / "run"),
        "--transfer_file",
        bad,
    ]
    recipe, config = parse_recipe_args(argv, default_config=RECIPES["vader"].config)
    with pytest.raises(SystemExit, match=r"cannot load the transfer text: .*'poems'"):
        run_recipe(recipe, config, RECIPES["vader"].load, RECIPES["vader"].default_teacher_init)
    assert not (tmp_path / "run" / "teacher").exists()
