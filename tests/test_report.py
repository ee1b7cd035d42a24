"""The paper report (benchmarks/report.py, issue 17): presets and overrides, resumable cells, the
summary's paired statistics and claim verdicts on hand-made runs, the page and the README block, and
that the committed README block is the one the committed runs give."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from hrkd_trainer.significance import paired_t

from .test_significance import benchmark_module

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # report.py imports its helpers as top-level modules
report = benchmark_module("report")
runs = benchmark_module("report_runs")
stats = benchmark_module("report_summary")
page = benchmark_module("report_page")

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
        "seed": seed, "row": row, "label": runs.ROWS[row].label, "fraction": fraction, "learning_rate": lr,
        "train_sizes": {"a": 10, "b": 20}, "train_seconds": 1.0, "test_accuracy": accuracy, "test_correct": correct,
        "dev_accuracy": {"average": accuracy["average"]}, "mean_ratios": ratios, "ratio_spread": 0.1 if ratios else 0.0,
    }  # fmt: skip
    path = runs.cell_path(str(out), fraction, seed, row, lr)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(cell, handle)
    return cell


@pytest.fixture
def finished(tmp_path):
    """Hand-made finished runs: HRKD beats TinyBERT-KD by 10 points at every seed, Meta-KD beats HRKD by
    5.5-6.5 points, each ablation step loses 0 or 2.5 points (by seed); few-shot gains shrink with data."""
    args = report.parse_args(["--out", str(tmp_path / "out"), "--page", str(tmp_path / "results.md")])
    args.bootstrap = 0
    preset, out = args.preset, tmp_path / "out"
    table = (preset.train_fraction, preset.learning_rate)
    for seed in (1, 2, 3):
        base = 0.5 + 0.025 * seed
        write_cell(out, *table[:1], seed, "hrkd-uniform", table[1], {"a": base, "b": base})
        write_cell(out, *table[:1], seed, "hrkd-tinybert", table[1], {"a": base - 0.1, "b": base - 0.1})
        write_cell(out, *table[:1], seed, "hrkd-hrkd", table[1], {"a": base, "b": base},
                   ratios=[[0.4, 0.6], [0.5, 0.5]])  # fmt: skip
        write_cell(
            out, *table[:1], seed, "meta-metadistill", table[1], {"a": base + 0.1 + 0.01 * seed, "b": base}
        )
        for step, row in enumerate(runs.ablation_rows()):
            write_cell(
                out, *table[:1], seed, row.key, table[1], {"a": base - 0.025 * step * (seed % 2), "b": base}
            )
        for rate in preset.few_shot_rates:
            fraction = round(preset.few_shot_pool * rate, 6)
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
    few_teacher = out / "runs" / f"f{preset.few_shot_pool * 0.02:g}" / "seed1" / "teacher-hrkd.json"
    few_teacher.write_text(
        json.dumps({"seed": 1, "kind": "hrkd", "seconds": 7.0})
    )  # a few-shot share's: untested
    with open(out / "few_shot_lr.json", "w") as handle:
        json.dump(
            {"learning_rate": 5e-4, "rate": 0.05, "seed": 1, "dev_average": {"5e-05": 0.5, "0.0005": 0.6}},
            handle,
        )
    return args


def test_presets_overrides_and_worker_commands(tmp_path):
    cpu = runs.PRESETS["cpu"]
    assert len(cpu.seeds) >= 3 and cpu.data == "vader" and cpu.dev_per_domain
    assert runs.PRESETS["paper"].teacher_init == "bert-base-uncased" and not runs.PRESETS["paper"].use_cpu
    changed = report.apply_overrides(cpu, ["train_fraction=0.01", "few_shot_rates=0.1,0.2", "use_cpu=false"])
    assert (changed.train_fraction, changed.few_shot_rates, changed.use_cpu) == (0.01, (0.1, 0.2), False)
    with pytest.raises(SystemExit, match="FIELD=VALUE"):
        report.apply_overrides(cpu, ["nonsense=1"])
    args = report.parse_args(["--jobs", "2", "--readme", "--set", "epochs=1", "--out", str(tmp_path)])
    assert args.page == os.path.join(str(tmp_path), "results.md")  # overridden presets never write docs/
    command = report.worker_command(args, ["--jobs", "2", "--readme", "--set", "epochs=1"], ("tables", 2))
    assert "--jobs" not in command and "--readme" not in command
    assert command[-3:] == ["--task", "tables", "2"] and "epochs=1" in command
    tasks = report.tasks_of(args)
    sections = [t[0] for t in tasks]
    assert sections.index("few_shot_lr") < sections.index("few_shot")  # the choice comes first
    few = [t for t in tasks if t[0] == "few_shot"]  # one task per seed and rate, largest rate first
    assert few == [("few_shot", s, r) for s in args.seeds for r in sorted(cpu.few_shot_rates, reverse=True)]
    command = report.worker_command(args, [], few[-1])
    assert command[-4:] == ["--task", "few_shot", str(args.seeds[-1]), f"{min(cpu.few_shot_rates):g}"]
    assert report.task_name(few[-1]) == f"few_shot-{args.seeds[-1]}-{min(cpu.few_shot_rates):g}"
    # the table rows, the progressive ablations, the few-shot rows
    assert [r.key for r in runs.ablation_rows()][
        -1
    ] == "hrkd-minus-selfattention-compareaggregate-hierarchy-domainrelation"
    assert set(runs.FEW_SHOT_ROWS) <= set(runs.ROWS) and runs.BASELINE in runs.ROWS


def test_the_paper_preset_needs_its_data_files():
    with pytest.raises(SystemExit, match="--data_path"):
        runs.load_data(runs.PRESETS["paper"], None)


def test_a_finished_cell_is_read_not_retrained(tmp_path):
    cell = write_cell(tmp_path, 0.04, 1, "hrkd-hrkd", 5e-4, {"a": 0.5, "b": 0.75})
    # the share is never touched: a killed report resumes after its last finished run
    assert (
        runs.run_cell(argparse.Namespace(fraction=0.04), str(tmp_path), 1, runs.ROWS["hrkd-hrkd"], 5e-4)
        == cell
    )


def test_summary_pairs_seeds_and_gives_verdicts(finished):
    loaded = stats.load_cells(finished.out)
    summary = stats.summarise(finished, loaded)
    table = loaded["cells"][(round(finished.preset.train_fraction, 6), finished.preset.learning_rate)]
    stats.resolve_claims(summary, table, 0)
    rows = summary["sections"]["tables"]
    assert list(rows)[:3] == ["single-tinybert", "meta-metadistill", "hrkd-tinybert"]  # the paper's row order
    tiny = rows["hrkd-tinybert"]
    assert tiny["average"]["mean"] == pytest.approx(0.5 + 0.05 - 0.1)
    expected = paired_t([0.525 - 0.1, 0.55 - 0.1, 0.575 - 0.1], [0.525, 0.55, 0.575])
    assert tiny["vs_uniform"]["average"]["mean"] == pytest.approx(expected.mean)
    assert tiny["vs_uniform"]["mcnemar"] == {
        "only_a": 0,
        "only_b": 3 * 2 * 20,
        "p": pytest.approx(0.0, abs=1e-30),
    }
    assert rows["hrkd-hrkd"]["mean_ratios"] == [[pytest.approx(0.4), 0.6], [0.5, 0.5]]
    assert summary["teachers"]["hrkd"]["average"]["mean"] == 0.85  # the tables' teacher, not the few-shot one
    assert loaded["teacher_seconds"] == 5.0 + 7.0  # every teacher's time counts in the compute
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


def test_the_committed_readme_block_comes_from_the_committed_runs():
    out = ROOT / "benchmarks" / "results" / "report_cpu"
    if not (out / "summary.json").exists():  # written when the page is built from finished runs
        pytest.skip("no committed report")
    args = report.parse_args(["--summarise", "--out", str(out)])
    args.bootstrap = 0
    loaded = stats.load_cells(args.out)
    summary = stats.summarise(args, loaded)
    table = loaded["cells"][(round(args.preset.train_fraction, 6), args.preset.learning_rate)]
    stats.resolve_claims(summary, table, 0)
    readme = (ROOT / "README.md").read_text()
    assert page.readme_table(summary) in readme


def test_the_example_level_view_is_added_only_when_the_seeds_cannot_decide():
    unresolved = "not resolved (the interval includes 0)"
    strong = {"only_a": 30, "only_b": 5, "p": 0.001}
    assert stats.with_mcnemar(unresolved, strong).endswith("McNemar p = 0.001 favours the claim")
    assert stats.with_mcnemar(unresolved, strong, -1).endswith("goes against the claim")  # a 'hurts' claim
    assert stats.with_mcnemar(unresolved, {**strong, "p": 0.2}) == unresolved
    assert stats.with_mcnemar("supported", strong) == "supported"


def test_the_page_lists_each_invocation_with_its_wall_time_and_note():
    lines = page.invocation_lines(
        [
            {"command": "python benchmarks/report.py --preset cpu", "started": 0, "seconds": 5400},
            {
                "command": "python benchmarks/report.py --preset cpu",
                "started": 86400,
                "seconds": 600,
                "note": "paused",
            },
        ]
    )
    assert lines[2] == "| `python benchmarks/report.py --preset cpu` | 1970-01-01 00:00 | 90 min |  |"
    assert lines[3] == "| `python benchmarks/report.py --preset cpu` | 1970-01-02 00:00 | 10 min | paused |"
    assert page.invocation_lines([]) == []


def test_tiny_p_values_are_not_printed_as_zero():
    assert stats.p_value(1e-9) == "< 0.001" and stats.p_value(0.0374) == "= 0.037"


def test_a_real_run_on_tiny_encoders_writes_the_page_and_resumes_to_the_same_predictions(
    tmp_path, bert_teacher_dir, bert_student_dir
):
    """End to end on VADER's real splits with tiny random encoders (about 25 s): a teacher, a per-domain
    row (TinyBERT-KD) and two multi-domain rows, the page; then a deleted cell is retrained from the kept teacher to
    the same prediction on every test example."""
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    argv = [
        "--set", f"teacher_init={bert_teacher_dir}", f"student_init={bert_student_dir}", "student_layers=2",
        "train_fraction=0.005", "dev_per_domain=20", "evaluations=1", "max_length=32", "teacher_epochs=1",
        "epochs=1", "--seeds", "1", "--sections", "tables",
        "--rows", "hrkd-uniform", "hrkd-hrkd", "hrkd-tinybert",
        "--out", str(out), "--scratch", str(scratch), "--bootstrap", "0",
    ]  # fmt: skip
    report.main(argv)
    cells = out / "runs" / "f0.005" / "seed1"

    def read(name: str) -> dict:
        return json.loads((cells / f"{name}.json").read_text())

    uniform, hrkd, per_domain = (
        read(f"{row}-lr0.0005") for row in ("hrkd-uniform", "hrkd-hrkd", "hrkd-tinybert")
    )
    assert sum(len(c) for c in uniform["test_correct"].values()) == 1946  # VADER's whole test splits
    assert per_domain["per_domain_steps"] == uniform["steps"]  # each domain's student trains as long
    assert len(hrkd["mean_ratios"]) == 3  # embeddings and the student's 2 layers
    assert set(read("teacher-hrkd")["test_accuracy"]) == {*uniform["test_accuracy"]}
    page_text = (out / "results.md").read_text()
    assert "| HRKD-teacher → HRKD (paper's graph, frozen) | 1 |" in page_text
    assert len(json.loads((out / "invocations.json").read_text())) == 1
    done = scratch / "f0.005" / "seed1" / "teacher-hrkd" / "done.json"
    stamp = done.read_text()
    (cells / "hrkd-hrkd-lr0.0005.json").unlink()
    report.main(argv)
    again = read("hrkd-hrkd-lr0.0005")
    assert again["test_correct"] == hrkd["test_correct"] and again["final_ratios"] == hrkd["final_ratios"]
    assert done.read_text() == stamp and read("hrkd-uniform-lr0.0005") == uniform  # loaded, not retrained
    assert len(json.loads((out / "invocations.json").read_text())) == 2
