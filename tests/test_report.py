"""The paper report's page (benchmarks/results_page.py over the study ``report``): the claims'
verdicts on hand-made runs, the page and the README block; and that the committed pages (the README
block, docs/results.md, the study blocks of docs/weighting.md and docs/compression.md) are what the
committed runs give."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from hrkd_trainer.significance import paired_t
from hrkd_trainer.study import cell_path, load_study, p_value

from .test_significance import benchmark_module

ROOT = Path(__file__).resolve().parents[1]
page = benchmark_module("results_page")
STUDY = load_study("report")
PRESET = STUDY.preset("cpu")

DOMAINS = ["a", "b"]
N = 200  # test examples per domain


def correct_list(accuracy: float, shift: int = 0) -> list[int]:
    right = round(accuracy * N)
    return [1 if (i + shift) % N < right else 0 for i in range(N)]


def write_cell(out, fraction, seed, row, lr, accuracies: dict, ratios=None):
    correct = {d: correct_list(accuracies[d], shift=seed) for d in DOMAINS}
    accuracy = {d: sum(c) / N for d, c in correct.items()}
    accuracy["average"] = sum(accuracy.values()) / len(DOMAINS)
    cell = {
        "seed": seed, "row": row, "label": STUDY.rows[row].label, "fraction": fraction, "learning_rate": lr,
        "train_sizes": {"a": 10, "b": 20}, "train_seconds": 1.0, "test_accuracy": accuracy, "test_correct": correct,
        "dev_accuracy": {"average": accuracy["average"]}, "mean_ratios": ratios, "ratio_spread": 0.1 if ratios else 0.0,
    }  # fmt: skip
    path = cell_path(str(out), fraction, seed, row, lr)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(cell, handle)
    return cell


@pytest.fixture
def finished(tmp_path):
    """Hand-made finished runs: HRKD beats TinyBERT-KD by 10 points at every seed, Meta-KD beats HRKD by
    5.5-6.5 points, each ablation step loses 0 or 2.5 points (by seed); few-shot gains shrink with data."""
    args = argparse.Namespace(out=str(tmp_path / "out"), page=str(tmp_path / "results.md"), preset="cpu",
                              bootstrap=0, readme=False)  # fmt: skip
    preset, out = PRESET, tmp_path / "out"
    table = (preset.train_fraction, 5e-4)
    for seed in (1, 2, 3):
        base = 0.5 + 0.025 * seed
        write_cell(out, *table[:1], seed, "hrkd-uniform", table[1], {"a": base, "b": base})
        write_cell(out, *table[:1], seed, "hrkd-tinybert", table[1], {"a": base - 0.1, "b": base - 0.1})
        write_cell(out, *table[:1], seed, "hrkd-hrkd", table[1], {"a": base, "b": base},
                   ratios=[[0.4, 0.6], [0.5, 0.5]])  # fmt: skip
        write_cell(
            out, *table[:1], seed, "meta-metadistill", table[1], {"a": base + 0.1 + 0.01 * seed, "b": base}
        )
        for step, row in enumerate(STUDY.section_rows("ablations")[1:]):
            write_cell(
                out, *table[:1], seed, row.key, table[1], {"a": base - 0.025 * step * (seed % 2), "b": base}
            )
        for rate in preset.few_shot.rates:
            fraction = round(preset.few_shot.pool * rate, 6)
            write_cell(out, fraction, seed, "single-tinybert", 5e-4, {"a": 0.5, "b": 0.5})
            if (
                fraction != preset.train_fraction
            ):  # the largest rate is the tables' share: its runs are reused
                write_cell(out, fraction, seed, "hrkd-hrkd", 5e-4, {"a": 0.5 + 0.05 / (rate * 10), "b": 0.5})
    with open(out / "runs" / f"f{preset.train_fraction:g}" / "seed1" / "teacher-hrkd.json", "w") as handle:
        json.dump(
            {
                "seed": 1,
                "kind": "hrkd",
                "seconds": 5.0,
                "test_accuracy": {"a": 0.9, "b": 0.8, "average": 0.85},
            },
            handle,
        )
    few_teacher = out / "runs" / f"f{preset.few_shot.pool * 0.02:g}" / "seed1" / "teacher-hrkd.json"
    few_teacher.write_text(
        json.dumps({"seed": 1, "kind": "hrkd", "seconds": 7.0})
    )  # a few-shot share's: untested
    with open(out / "few_shot_lr.json", "w") as handle:
        json.dump(
            {"learning_rate": 5e-4, "rate": 0.05, "seed": 1, "dev_average": {"5e-05": 0.5, "0.0005": 0.6}},
            handle,
        )
    return args


def test_summary_pairs_seeds_and_gives_verdicts(finished):
    summary = page.page_summary("cpu", finished.out, 0)
    rows = summary["sections"]["tables"]["rows"]
    assert list(rows)[:3] == ["single-tinybert", "meta-metadistill", "hrkd-tinybert"]  # the paper's row order
    tiny = rows["hrkd-tinybert"]
    assert tiny["average"]["mean"] == pytest.approx(0.5 + 0.05 - 0.1)
    expected = paired_t([0.525 - 0.1, 0.55 - 0.1, 0.575 - 0.1], [0.525, 0.55, 0.575])
    assert tiny["vs_baseline"]["average"]["mean"] == pytest.approx(expected.mean)
    assert tiny["vs_baseline"]["mcnemar"] == {
        "only_a": 0,
        "only_b": 3 * 2 * 20,
        "p": pytest.approx(0.0, abs=1e-30),
    }
    assert rows["hrkd-hrkd"]["mean_ratios"] == [[pytest.approx(0.4), 0.6], [0.5, 0.5]]
    assert summary["teachers"]["hrkd"]["average"]["mean"] == 0.85  # the tables' teacher, not the few-shot one
    assert summary["compute_seconds"] == pytest.approx(
        5.0 + 7.0 + summary["cells"] * 1.0
    )  # every teacher counts
    verdicts = {c["claim"].split(" (")[0]: c["verdict"] for c in summary["claims"]}
    assert verdicts["HRKD > TinyBERT-KD"] == "supported"  # +10 points at every seed
    assert verdicts["HRKD > Meta-KD"] == "contradicted"  # Meta-KD wins by 5.5, 6, 6.5 points
    assert verdicts["removing self attention hurts"].startswith("not resolved")
    few = summary["sections"]["few_shot"]["rates"]
    assert few["0.02"]["rows"]["hrkd-hrkd"]["improvement_rate"]["mean"] == pytest.approx(100 * 0.125 / 0.5)
    growth = next(c for c in summary["claims"] if "grows as data shrinks" in c["claim"])
    assert growth["verdict"] == "supported"


def test_page_plots_and_readme_block(finished, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{page.README_BEGIN}\nold\n{page.README_END}\n\ntail\n")
    summary = page.build(finished)
    text = (tmp_path / "results.md").read_text()
    for heading in ("## Tables 2-3", "## Table 4", "## Figure 2", "## The paper's claims", "## Teachers"):
        assert heading in text
    assert "| HRKD-teacher → TinyBERT-KD | 3 |" in text and "| − Self-attention | 3 |" in text
    block = page.readme_table(summary)
    assert page.update_readme(str(readme), block)
    assert readme.read_text() == f"# x\n\n{block}\n\ntail\n" and "old" not in readme.read_text()
    assert "| HRKD > TinyBERT-KD (same HRKD-teacher) | +10.00 [+10.00, +10.00] | supported |" in block
    assert (
        "| HRKD > TinyBERT-KD (same HRKD-teacher) | +0.5 (MNLI), +2.6 (Amazon) | +10.00 [+10.00, +10.00] | < 0.001 | supported |"
        in text
    )
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "results" / "per_domain.png").exists() and (
            tmp_path / "results" / "few_shot.png"
        ).exists()


COMMITTED = ROOT / "benchmarks" / "results"


def test_the_committed_results_page_and_readme_block_come_from_the_committed_runs():
    """docs/results.md and the README block, rebuilt from the committed cells, are the committed ones
    (the page shows no bootstrap interval, so none is drawn here)."""
    summary = page.page_summary("cpu", str(COMMITTED / "report_cpu"), 0)
    assert page.readme_table(summary) in (ROOT / "README.md").read_text()
    args = argparse.Namespace(out=str(COMMITTED / "report_cpu"), page=str(ROOT / "docs" / "results.md"))
    plots = {
        "tables": "results/per_domain.png",
        "few_shot": "results/few_shot.png",
        "ratios": "results/ratios.png",
    }
    assert page.markdown(args, summary, plots) == (ROOT / "docs" / "results.md").read_text()


@pytest.mark.parametrize(
    "study, doc",
    [("weighting", "weighting.md"), ("compression", "compression.md"), ("distillation", "compression.md")],
)
def test_the_committed_study_blocks_come_from_the_committed_runs(study, doc):
    """The study's block in the page equals its summary of the committed cells, but for the bootstrap
    column (2,000 resamples take a minute in pure Python: the test compares everything else)."""
    from hrkd_trainer.study import Summariser, load_runs, summary_markdown

    spec = load_study(study)
    preset = spec.preset("cpu")
    out = COMMITTED / f"{study}_cpu"
    summary = Summariser(spec, preset, load_runs(str(out)), str(out), 0).summary()
    text = summary_markdown(summary, {k: r.label for k, r in spec.rows.items()})
    committed = (ROOT / "docs" / doc).read_text()
    begin, end = f"<!-- study:{study}-cpu:begin", f"<!-- study:{study}-cpu:end -->"
    block = committed.split(begin, 1)[1].split("\n", 1)[1].split(end, 1)[0]

    def without_bootstrap(markdown: str) -> list[str]:
        return [re.sub(r"\| \[[-+][0-9.]+, [-+][0-9.]+\] \| (\S+ [-+][0-9.]+ \|)", r"| – | \1", line)
                for line in markdown.strip().splitlines() if not line.startswith("Compute:")]  # fmt: skip

    assert without_bootstrap(block) == without_bootstrap(text)
    assert "invocation" not in block or summary.get("invocations")


def test_the_example_level_view_is_added_only_when_the_seeds_cannot_decide():
    unresolved = "not resolved (the interval includes 0)"
    strong = {"only_a": 30, "only_b": 5, "p": 0.001}
    assert page.with_mcnemar(unresolved, strong).endswith("McNemar p = 0.001 favours the claim")
    assert page.with_mcnemar(unresolved, strong, -1).endswith("goes against the claim")  # a 'hurts' claim
    assert page.with_mcnemar(unresolved, {**strong, "p": 0.2}) == unresolved
    assert page.with_mcnemar("supported", strong) == "supported"


def test_the_page_lists_each_invocation_with_its_wall_time_and_note():
    lines = page.invocation_lines(
        [
            {"command": "python -m hrkd_trainer.study report", "started": 0, "seconds": 5400},
            {
                "command": "python -m hrkd_trainer.study report",
                "started": 86400,
                "seconds": 600,
                "note": "paused",
            },
        ]
    )
    assert lines[2] == "| `python -m hrkd_trainer.study report` | 1970-01-01 00:00 | 90 min |  |"
    assert lines[3] == "| `python -m hrkd_trainer.study report` | 1970-01-02 00:00 | 10 min | paused |"
    assert page.invocation_lines([]) == []


def test_tiny_p_values_are_not_printed_as_zero():
    assert p_value(1e-9) == "< 0.001" and p_value(0.0374) == "= 0.037"
