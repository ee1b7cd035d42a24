"""Data builders on small fixtures in the original formats (including malformed files)."""

import json
import logging
import tarfile
from collections import Counter

import pytest

from hrkd_trainer.data import (
    DataFormatError,
    few_shot,
    load_amazon,
    load_files,
    load_mnli_glue,
    per_domain_head,
    select_domains,
)
from hrkd_trainer.data.common import SkipReport
from hrkd_trainer.data.vader import VADER_DOMAINS, parse_ground_truth


# ----------------------------------------------------------------------------- VADER
def test_vader_parsing_labels_and_skips():
    text = "1\t2.5\tgreat stuff\r\n2\t-1.2\tawful\r\n3\t0.2\tmeh\r\n4\t0.0\tnothing\r\n\r\n5\t-3\tvery bad\ttab inside\r\n"
    report = SkipReport("vader")
    rows = parse_ground_truth(text, "f.txt", "tweets", 0.5, report)
    assert [(r["text"], r["label"]) for r in rows] == [
        ("great stuff", "positive"),
        ("awful", "negative"),
        ("very bad\ttab inside", "negative"),
    ]
    assert report.total == 3  # two near-neutral ratings and one empty line, all counted


def test_vader_malformed_lines_name_file_and_line():
    with pytest.raises(DataFormatError, match=r"f.txt, line 2: expected"):
        parse_ground_truth("1\t1.0\tok\nbroken line\n", "f.txt", "tweets", 0.5, SkipReport("v"))
    with pytest.raises(DataFormatError, match=r"f.txt, line 1: rating 'x'"):
        parse_ground_truth("1\tx\tok\n", "f.txt", "tweets", 0.5, SkipReport("v"))


def test_vader_real_archive():
    """The real embedded data: fetched with pip from the pinned source archive, sha256-checked."""
    from hrkd_trainer.data import load_vader

    data = load_vader()
    assert set(data) == {"train", "dev", "test"}
    assert data["train"].features["domain"].names == list(VADER_DOMAINS)
    sizes = (
        Counter(data["train"]["domain"]) + Counter(data["dev"]["domain"]) + Counter(data["test"]["domain"])
    )
    # documented counts after dropping |rating| < 0.5: 3,432 / 10,072 / 2,985 / 2,970
    assert [sizes[i] for i in range(4)] == [3432, 10072, 2985, 2970]
    assert sum(data.skipped.values()) == 4200 + 10605 + 3708 + 5190 - (3432 + 10072 + 2985 + 2970)
    again = load_vader()
    assert again["test"]["text"][:20] == data["test"]["text"][:20]  # seeded, reproducible


# ----------------------------------------------------------------------------- Amazon
REVIEW = """<review>
<unique_id>
{uid}
</unique_id>
<title>
Title
</title>
<review_text>
{text}
</review_text>
</review>
"""


def write_amazon(root, domains=("books", "dvd", "electronics", "kitchen_&_housewares"), n=5):
    for domain in domains:
        folder = root / domain
        folder.mkdir(parents=True)
        for label in ("positive", "negative"):
            reviews = [
                REVIEW.format(uid=i, text=f"{label} {domain} review {i}\n\nsecond line &quot;x&quot;")
                for i in range(n)
            ]
            (folder / f"{label}.review").write_text("".join(reviews))


def test_amazon_folder_parsing_and_split(tmp_path):
    write_amazon(tmp_path / "sorted_data_acl")
    data = load_amazon(tmp_path / "sorted_data_acl")
    assert data["train"].features["domain"].names == ["books", "dvd", "electronics", "kitchen"]
    assert data["train"].features["label"].names == ["negative", "positive"]
    total = sum(len(data[s]) for s in data)
    assert total == 4 * 10
    texts = set(data["train"]["text"]) | set(data["dev"]["text"]) | set(data["test"]["text"])
    assert "positive books review 0 second line &quot;x&quot;" in texts
    label_of = {t: label for t, label in zip(data["train"]["text"], data["train"]["label"])}
    for text, label in label_of.items():
        assert label == (1 if text.startswith("positive") else 0)  # fixed ids: positive = 1
    assert load_amazon(tmp_path / "sorted_data_acl")["train"]["text"] == data["train"]["text"]


def test_amazon_tarball_equals_folder(tmp_path):
    write_amazon(tmp_path / "sorted_data_acl")
    tarball = tmp_path / "domain_sentiment_data.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "sorted_data_acl", arcname="sorted_data_acl")
    assert load_amazon(tarball)["test"]["text"] == load_amazon(tmp_path / "sorted_data_acl")["test"]["text"]


def test_amazon_paper_split_sizes(tmp_path):
    write_amazon(tmp_path / "d", domains=("books",), n=1000)
    data = load_amazon(tmp_path / "d", domains=("books",))
    assert (len(data["train"]), len(data["dev"]), len(data["test"])) == (1631, 170, 199)


def test_amazon_malformed_and_missing(tmp_path):
    write_amazon(tmp_path / "d")
    bad = tmp_path / "d" / "dvd" / "negative.review"
    bad.write_text("<review>\n<review_text>\nno end\n<review_text>\n")
    with pytest.raises(DataFormatError, match=r"negative.review, line 4: <review_text> opened at line 2"):
        load_amazon(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="sorted_data_acl"):
        load_amazon(tmp_path / "missing")
    (tmp_path / "d" / "dvd" / "negative.review").unlink()
    with pytest.raises(FileNotFoundError, match=r"negative\.review for domain 'dvd'"):
        load_amazon(tmp_path / "d")


def test_amazon_empty_review_is_skipped_and_counted(tmp_path, caplog):
    write_amazon(tmp_path / "d", domains=("books",))
    path = tmp_path / "d" / "books" / "positive.review"
    path.write_text(path.read_text() + "<review>\n<review_text>\n\n</review_text>\n</review>\n")
    with caplog.at_level(logging.WARNING):
        data = load_amazon(tmp_path / "d", domains=("books",))
    assert sum(data.skipped.values()) == 1
    assert "skipped 1 row(s)" in caplog.text


# ----------------------------------------------------------------------------- MNLI
HEADER = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"


def mnli_line(i, genre, label):
    return f'{i}\t1\t1e\t{genre}\t(x)\t(y)\t(X)\t(Y)\tpremise "{i}" {genre}\thypothesis {i}\t{label}\t{label}'


def write_mnli(root, n=10):
    root.mkdir()
    labels = ["contradiction", "entailment", "neutral"]
    genres = ["fiction", "government", "slate", "telephone", "travel"]
    train = [mnli_line(i, genres[i % 5], labels[i % 3]) for i in range(5 * n)]
    dev = [mnli_line(i, genres[i % 5], labels[i % 3]) for i in range(10)] + [mnli_line(99, "fiction", "-")]
    (root / "train.tsv").write_text("\n".join([HEADER, *train]) + "\n")
    (root / "dev_matched.tsv").write_text("\n".join([HEADER, *dev]) + "\n")


def test_mnli_glue_split_in_file_order(tmp_path):
    write_mnli(tmp_path / "MNLI")
    data = load_mnli_glue(tmp_path / "MNLI")
    assert data["train"].features["label"].names == ["contradiction", "entailment", "neutral"]
    fiction_train = [t for t, d in zip(data["train"]["text"], data["train"]["domain"]) if d == 0]
    fiction_dev = [t for t, d in zip(data["dev"]["text"], data["dev"]["domain"]) if d == 0]
    # 10 fiction rows: first 9 train, last 1 dev, in file order; quotes kept (no quoting)
    assert fiction_train == [f'premise "{i}" fiction' for i in range(0, 45, 5)]
    assert fiction_dev == ['premise "45" fiction']
    assert data["train"]["text_pair"][0] == "hypothesis 0"
    assert len(data["test"]) == 10 and sum(data.skipped.values()) == 1  # the '-' gold label


def test_mnli_malformed(tmp_path):
    write_mnli(tmp_path / "MNLI")
    with open(tmp_path / "MNLI" / "train.tsv", "a") as handle:
        handle.write("1\t2\tbroken\n")
    with pytest.raises(DataFormatError, match=r"train.tsv, line 52: 3 fields"):
        load_mnli_glue(tmp_path / "MNLI")
    (tmp_path / "MNLI" / "train.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(DataFormatError, match="header lacks"):
        load_mnli_glue(tmp_path / "MNLI")
    with pytest.raises(FileNotFoundError):
        load_mnli_glue(tmp_path / "nothing")


# ----------------------------------------------------------------------------- user files
def test_user_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "data.csv"
    rows = ["text,label,domain"] + [
        f"text {i},{'pos' if i % 2 else 'neg'},{'a' if i < 20 else 'b'}" for i in range(40)
    ]
    rows.append(",pos,a")  # empty text: skipped and counted
    csv_path.write_text("\n".join(rows) + "\n")
    data = load_files(csv_path)
    assert data["train"].features["domain"].names == ["a", "b"]
    assert sum(len(data[s]) for s in data) == 40 and sum(data.skipped.values()) == 1
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"sentence": f"t{i}", "label": i % 2, "domain": "x"}) for i in range(10))
    )
    dev = tmp_path / "dev.jsonl"
    dev.write_text(json.dumps({"sentence": "d", "label": 1, "domain": "x"}))
    data = load_files(jsonl, dev_file=dev, text_column="sentence")
    assert data["train"].features["label"].names == ["0", "1"]
    assert len(data["dev"]) == 1 and len(data["train"]) + len(data["test"]) == 10


def test_user_file_errors(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\nhi,1\n")
    with pytest.raises(DataFormatError, match=r"d.csv: missing text column 'text'; the file has columns"):
        load_files(path)  # no 'domain' column is one domain; a missing text column is an error
    with pytest.raises(DataFormatError, match=r"d.csv: missing text column 'text', domain column 'site'"):
        load_files(path, domain_column="site")
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1, "domain": "x"}\n{oops\n')
    with pytest.raises(DataFormatError, match=r"d.jsonl, line 2: invalid JSON"):
        load_files(path)
    train = tmp_path / "t.csv"
    train.write_text("text,label,domain\na,1,x\nb,0,x\n")
    dev = tmp_path / "v.csv"
    dev.write_text("text,label,domain\nc,1,unknown\n")
    with pytest.raises(DataFormatError, match=r"v.csv, line 2: domain 'unknown'"):
        load_files(train, dev_file=dev)
    with pytest.raises(FileNotFoundError):
        load_files(tmp_path / "none.csv")


def test_malformed_user_files_name_the_line_and_the_fix(tmp_path):
    rows = "".join(f"t{i},{i % 2},a\n" for i in range(30))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(("text,label,domain\n" + rows).encode() + "café,1,a\n".encode("latin-1"))
    with pytest.raises(
        DataFormatError, match=r"latin.csv, line 32: byte 0xe9 is not UTF-8 .*iconv -f latin1"
    ):
        load_files(latin)
    quote = tmp_path / "quote.csv"
    quote.write_text("text,label,domain\n" + rows + '"never closed,1,a\n' + rows)
    with pytest.raises(DataFormatError, match=r"quote.csv, line 32: malformed CSV .* never closed"):
        load_files(quote)
    small = tmp_path / "small.csv"
    small.write_text("text,label,domain\n" + rows + "x,0,tiny\ny,1,tiny\nz,1,tiny\n")
    with pytest.raises(
        DataFormatError, match=r"domain 'tiny' has no dev examples \(train 2, dev 0, test 1\)"
    ):
        load_files(small)
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label,domain\nd,1,a\n")
    test = tmp_path / "test.csv"
    test.write_text("text,label,domain\nd,1,a\n")
    two = tmp_path / "two.csv"
    two.write_text("text,label,domain\n" + rows + rows.replace(",a", ",b"))
    with pytest.raises(
        DataFormatError, match=r"domain 'b' has no dev and no test examples .* add 'b' examples to"
    ):
        load_files(two, dev_file=dev, test_file=test)


# ----------------------------------------------------------------------------- transforms
def test_few_shot_prefix_and_caps(tiny_data):
    small = few_shot(tiny_data, 0.25)
    assert Counter(small["train"]["domain"]) == {0: 12, 1: 12, 2: 12}
    first = [t for t, d in zip(tiny_data["train"]["text"], tiny_data["train"]["domain"]) if d == 1][:12]
    assert [t for t, d in zip(small["train"]["text"], small["train"]["domain"]) if d == 1] == first
    assert len(small["dev"]) == len(tiny_data["dev"])
    assert Counter(per_domain_head(tiny_data["dev"], 5)["domain"]) == {0: 5, 1: 5, 2: 5}
    with pytest.raises(ValueError):
        few_shot(tiny_data, 0.0)


def test_select_domains_reorders_ids(tiny_data):
    picked = select_domains(tiny_data, ["gamma", "alpha"])
    assert picked["train"].features["domain"].names == ["gamma", "alpha"]
    assert Counter(picked["train"]["domain"]) == {0: 48, 1: 48}
    with pytest.raises(ValueError, match="unknown domain"):
        select_domains(tiny_data, ["delta"])


def test_the_dev_cap_picks_snapshots_on_fewer_rows_and_leaves_test_whole(tiny_data):
    from hrkd_trainer.run import parse_recipe_args, prepare_splits

    recipe, config = parse_recipe_args(["--student_layers", "1", "--max_dev_samples_per_domain", "3"])
    limited = prepare_splits(tiny_data, recipe, config)
    assert Counter(limited["dev"]["domain"]) == {0: 3, 1: 3, 2: 3}
    assert len(limited["test"]) == len(tiny_data["test"])
    recipe, config = parse_recipe_args(["--student_layers", "1", "--max_eval_samples_per_domain", "4"])
    limited = prepare_splits(tiny_data, recipe, config)  # without it, the eval cap holds for both
    assert Counter(limited["dev"]["domain"]) == Counter(limited["test"]["domain"]) == {0: 4, 1: 4, 2: 4}
