"""The study engine (hrkd_trainer.study): study files and their errors, the paired summary on
hand-made cells (golden values), the task plan and its scratch pruning, the document blocks, and a
real study on VADER's splits with tiny random encoders that is killed, resumed and reproduced."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import yaml

from hrkd_trainer.significance import paired_t
from hrkd_trainer.study import FinishedRuns, Summariser, load_study, paired, replace_block, study_names
from hrkd_trainer.study.cli import apply_overrides, main, study_run, worker_command
from hrkd_trainer.study.plan import parse_task, prune_teachers, task_name, tasks_of
from hrkd_trainer.study.spec import StudyError
from hrkd_trainer.study.store import cell_path, load_runs, share_name
from hrkd_trainer.study.summary import seed_order

DOMAINS = ["a", "b"]


# ---------------------------------------------------------------------------- study files
def write_study(tmp_path, **changes) -> str:
    """A small valid study file, with top-level ``changes``."""
    study = {
        "description": "test study",
        "baseline": "uniform",
        "rows": {
            "uniform": {"label": "uniform KD", "method": "multi-domain", "teacher": "hrkd"},
            "graph": {
                "label": "HRKD",
                "method": "hrkd",
                "teacher": "hrkd",
                "flags": {"relational_mode": "frozen"},
            },
            "per-domain": {"label": "TinyBERT-KD", "method": "tinybert", "teacher": "hrkd"},
            "alone": {"label": "no KD", "method": "fine-tune", "learning_rate": 2.0e-4},
        },
        "sections": {"main": {"title": "Main", "rows": ["uniform", "graph", "per-domain", "alone"]}},
        "presets": {
            "tiny": {
                "description": "tiny",
                "data": "vader",
                "seeds": [1],
                "flags": {"student_layers": 1, "learning_rate": 5.0e-4},
            }
        },
    }
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, allow_unicode=True))
    return str(path)


def test_the_shipped_studies_load_and_their_rows_parse():
    assert {"report", "weighting", "compression"} <= set(study_names())
    report = load_study("report")
    assert report.baseline == "hrkd-uniform" and report.sections["few_shot"].few_shot
    assert report.sections["ablations"].compare == "previous"
    assert report.presets["cpu"].few_shot.choice_rate == 0.05
    compression = load_study("compression")
    assert compression.rows["no-kd"].method == "fine-tune" and compression.presets["cpu"].teacher_seed == 42
    for name in ("report", "weighting", "compression"):  # every row's flags through the recipe parser
        study = load_study(name)
        run = study_run(type("A", (), {"study": name, "preset": None, "set": [], "sections": None, "rows": None,
                                       "out": "/tmp/x", "scratch": "/tmp/y", "seeds": None, "data_path": "/d"})())  # fmt: skip
        run.check_flags()
        assert run.study is not None and study.path.endswith(f"{name}.yaml")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"baseline": "unifrom"}, "did you mean 'uniform'"),
        ({"rows": {"uniform": {"method": "distil", "teacher": "hrkd"}}}, "method 'distil'"),
        ({"rows": {"uniform": {"method": "fine-tune", "teacher": "hrkd"}}}, "without a teacher"),
        ({"rows": {"uniform": {"method": "multi-domain", "teacher": "single"}}}, "tinybert or meta-distill"),
        ({"rows": {"uniform": {"method": "multi-domain", "teacher": "hrkd", "lr": 1}}}, "unknown key"),
        ({"sections": {"main": {"rows": ["uniform", "nope"]}}}, "row 'nope'"),
        ({"sections": {"main": {"rows": ["uniform"], "few_shot": True}}}, "needs 'base'"),
        ({"presets": {"tiny": {"seeds": [1]}}}, "one of 'data'"),
        ({"presets": {"tiny": {"data": "vader", "evaluations": 0}}}, "evaluations"),
    ],
)
def test_a_bad_study_file_is_refused_with_the_entry_and_the_fix(tmp_path, changes, message):
    with pytest.raises(StudyError, match=message):
        load_study(write_study(tmp_path, **changes))


def test_unknown_studies_presets_and_flags_are_named(tmp_path):
    with pytest.raises(StudyError, match="did you mean 'report'"):
        load_study("reprot")
    study = load_study(write_study(tmp_path))
    with pytest.raises(StudyError, match="no preset 'tinny'"):
        study.preset("tinny")
    bad = write_study(tmp_path, rows={"uniform": {"method": "hrkd", "teacher": "hrkd", "flags": {"relational_mod": "x"}}},
                      sections={"main": {"rows": ["uniform"]}})  # fmt: skip
    with pytest.raises(SystemExit, match=r"rows.uniform"):
        main([bad, "--out", str(tmp_path / "o"), "--scratch", str(tmp_path / "s")])


def test_overrides_reach_preset_fields_and_recipe_flags(tmp_path):
    preset = load_study(write_study(tmp_path)).preset("tiny")
    changed = apply_overrides(
        preset, ["train_fraction=0.01", "seeds=[3, 4]", "num_train_epochs=1", "use_cpu=true"]
    )
    assert (changed.train_fraction, changed.seeds) == (0.01, (3, 4))
    assert changed.flags == {
        "student_layers": 1,
        "learning_rate": 5e-4,
        "num_train_epochs": 1,
        "use_cpu": True,
    }
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        apply_overrides(preset, ["nonsense"])


# ---------------------------------------------------------------------------- the paired summary
def cell(seed, row, correct: dict, lr=5e-4, fraction=1.0, **more) -> dict:
    accuracy = {d: sum(c) / len(c) for d, c in correct.items()}
    accuracy["average"] = sum(accuracy.values()) / len(correct)
    return {"seed": seed, "row": row, "fraction": fraction, "learning_rate": lr, "test_accuracy": accuracy,
            "test_correct": correct, "train_sizes": {"a": 4, "b": 2}, "train_seconds": 10.0, **more}  # fmt: skip


def finished(cells: list[dict], teachers: dict | None = None) -> FinishedRuns:
    runs = FinishedRuns(teachers=teachers or {})
    for c in cells:
        runs.cells.setdefault((round(c["fraction"], 6), c["row"], c["learning_rate"]), {})[c["seed"]] = c
    return runs


def test_rows_are_paired_by_seed_against_the_baseline_with_pooled_mcnemar(tmp_path):
    study = load_study(write_study(tmp_path))
    preset = study.preset("tiny")
    runs = finished([
        cell(1, "uniform", {"a": [1, 0, 0, 1], "b": [1, 0]}, seconds_per_step=2.0),
        cell(2, "uniform", {"a": [1, 1, 0, 0], "b": [0, 0]}, seconds_per_step=2.0),
        cell(1, "graph", {"a": [1, 1, 0, 1], "b": [1, 0]}, seconds_per_step=3.0),
        cell(2, "graph", {"a": [1, 1, 1, 0], "b": [1, 0]}, seconds_per_step=3.0),
    ])  # fmt: skip
    summary = Summariser(study, preset, runs, str(tmp_path), bootstrap=100).summary()
    rows = summary["sections"]["main"]["rows"]
    graph = rows["graph"]["vs_baseline"]
    # averages: uniform 0.5, 0.25; graph 0.625, 0.625 → differences 0.125, 0.375
    assert graph["average"]["mean"] == pytest.approx(0.25)
    assert graph["average"]["low"] == pytest.approx(paired_t([0.625, 0.625], [0.5, 0.25]).low)
    assert (graph["mcnemar"]["only_a"], graph["mcnemar"]["only_b"]) == (3, 0)
    assert graph["bootstrap"]["low"] <= 0.25 <= graph["bootstrap"]["high"]
    assert (
        rows["uniform"]["average"]["mean"] == pytest.approx(0.375) and rows["uniform"]["vs_baseline"] is None
    )
    assert rows["graph"]["seconds_per_step"] == 3.0 and summary["test_sizes"] == {"a": 4, "b": 2}
    assert "per-domain" not in rows  # rows without finished cells are left out


def test_seeds_pair_in_the_presets_order_which_the_bootstrap_follows():
    assert seed_order({1, 2, 42}, (42, 1, 2)) == [42, 1, 2] and seed_order({3, 1}, ()) == [1, 3]
    a = {s: cell(s, "x", {"a": [1, 1, 0, 1, 0, 1], "b": [s % 2, 1]}) for s in (42, 1, 2)}
    b = {s: cell(s, "y", {"a": [1, 0, 0, 1, 1, 0], "b": [0, 1]}) for s in (42, 1, 2)}
    ordered, plain = paired(a, b, 300, (42, 1, 2)), paired(a, b, 300)
    assert ordered["seeds"] == [42, 1, 2] and plain["seeds"] == [1, 2, 42]
    assert ordered["average"] == plain["average"]  # the t test does not depend on the order


def test_measured_rows_give_compression_speed_and_the_share_of_the_teacher(tmp_path):
    study = load_study(write_study(tmp_path))
    preset = apply_overrides(study.preset("tiny"), ["teacher_seed=42", "seeds=[42, 1]"])
    measures = {"parameters": {"teacher": 100, "student": 20}, "weights_bytes": {"teacher": 600, "student": 100},
                "speedup_spread": {"q1": 8.5, "q3": 9.5}}  # fmt: skip
    runs = finished(
        [cell(s, "uniform", {"a": [1, 1, 0, 1], "b": [1, 0]}, measures={**measures, "speedup": 9.0 + s}) for s in (42, 1)],
        teachers={"hrkd": {42: {"test_accuracy": {"average": 0.75}}}},  # one teacher distilled at every seed
    )  # fmt: skip
    measured = Summariser(study, preset, runs, str(tmp_path), 0).summary()["sections"]["main"]["rows"][
        "uniform"
    ]["measured"]
    assert (measured["compression"], measured["size_ratio"]) == (5.0, 6.0)
    assert measured["speedup"]["per_seed"] == [51.0, 10.0]  # in the preset's seed order (42, 1)
    assert measured["speedup"]["median_of_seeds"] == 30.5 and measured["seeds"] == [42, 1]
    assert measured["retention"]["mean"] == pytest.approx(0.625 / 0.75)


def test_ablation_rows_pair_with_the_row_above_and_few_shot_rows_with_their_base(tmp_path):
    study = load_study("report")
    preset = study.preset("cpu")
    few, lr = preset.few_shot, 5e-4
    cells = []
    for seed in (1, 2):
        cells.append(cell(seed, "hrkd-hrkd", {"a": [1, 1, 0, 0], "b": [1, 0]}, fraction=0.04))
        cells.append(cell(seed, "hrkd-minus-selfattention", {"a": [1, 0, 0, 0], "b": [1, 0]}, fraction=0.04))
        for rate in few.rates:
            fraction = few.pool * rate
            cells.append(cell(seed, "single-tinybert", {"a": [1, 0, 0, 0], "b": [1, 0]}, fraction=fraction))
            cells.append(cell(seed, "hrkd-hrkd", {"a": [1, 1, 0, 0], "b": [1, 0]}, fraction=fraction))
    (tmp_path / "few_shot_lr.json").write_text(json.dumps(
        {"learning_rate": lr, "rate": 0.05, "seed": 1, "rows": [], "dev_average": {"0.0005": 0.6}}))  # fmt: skip
    summary = Summariser(study, preset, finished(cells), str(tmp_path), 0).summary()
    ablations = summary["sections"]["ablations"]["rows"]
    assert ablations["hrkd-hrkd"]["label"] == "HRKD (paper's graph, frozen)"  # the section's own label
    assert ablations["hrkd-minus-selfattention"]["vs_previous"]["average"]["mean"] == pytest.approx(-0.125)
    rates = summary["sections"]["few_shot"]["rates"]
    gain = rates["0.02"]["rows"]["hrkd-hrkd"]["improvement_rate"]
    assert gain["mean"] == pytest.approx(100 * (0.5 - 0.375) / 0.375) and gain["std"] == 0.0  # averages
    assert rates["0.02"]["rows"]["single-tinybert"]["vs_base"] is None


# ---------------------------------------------------------------------------- plan, scratch, blocks
def test_tasks_come_in_the_order_that_keeps_scratch_small(tmp_path):
    run = study_run(type("A", (), {"study": "report", "preset": "cpu", "set": [], "sections": None, "rows": None,
                                   "out": str(tmp_path / "o"), "scratch": str(tmp_path / "s"), "seeds": [1, 2],
                                   "data_path": None})())  # fmt: skip
    tasks = tasks_of(run)
    assert tasks[:2] == [("lr", "few_shot", 5e-5), ("lr", "few_shot", 5e-4)]  # dev's choice comes first
    assert tasks[2:6] == [("section", "tables", 1), ("section", "ablations", 1), ("few_shot", "few_shot", 1, 0.2),
                          ("few_shot", "few_shot", 1, 0.1)]  # fmt: skip
    for task in tasks:  # what a worker reads back from its --task words
        assert parse_task([task[0], task[1], *(f"{v:g}" for v in task[2:])]) == task
    assert task_name(tasks[-1]) == "few_shot-few_shot-2-0.02"
    # a task's teachers: the tables need five kinds, the ablations only the HRKD-teacher
    assert {os.path.basename(t) for t in run.teachers_of(("section", "tables", 1))} == {
        f"teacher-{k}" for k in ("single", "mix", "mtl", "meta", "hrkd")
    }
    share = os.path.join(run.scratch, share_name(0.04), "seed1")
    for kind in ("hrkd", "mix"):
        os.makedirs(os.path.join(share, f"teacher-{kind}", "teacher"))
    assert prune_teachers(dataclasses.replace(run, keep_teachers=True), []) == []  # --keep_teachers
    deleted = prune_teachers(run, [("section", "ablations", 1)])  # only the HRKD-teacher is still needed
    assert [os.path.basename(p) for p in deleted] == ["teacher-mix"]
    assert os.path.isdir(os.path.join(share, "teacher-hrkd")) and prune_teachers(run, []) == [
        os.path.join(share, "teacher-hrkd")
    ]
    command = worker_command(
        type("A", (), {"set": ["num_train_epochs=1"], "rows": ["hrkd-hrkd"], "data_path": None})(), run
    )
    assert command[1:4] == ["-m", "hrkd_trainer.study", run.study.path] and "num_train_epochs=1" in command


def test_a_document_block_is_replaced_and_a_missing_one_named():
    text = "intro\n<!-- study:x-cpu:begin (generated by python -m hrkd_trainer.study; do not edit) -->\nold\n<!-- study:x-cpu:end -->\nend\n"
    new = replace_block(text, "x-cpu", "| a | b |\n")
    assert new == text.replace("old", "| a | b |") and replace_block(new, "x-cpu", "| a | b |") == new
    with pytest.raises(ValueError, match="study:y-cpu:begin"):
        replace_block(text, "y-cpu", "z")


# ---------------------------------------------------------------------------- a real study, end to end
def test_a_real_study_trains_resumes_after_a_kill_and_reproduces_a_cell(
    tmp_path, bert_teacher_dir, bert_student_dir, monkeypatch
):
    """On VADER's real splits with tiny random encoders: a multi-domain row, the paper's graph, one
    student per domain and the student trained alone, with size and speed measured. The first invocation
    is killed after its second cell; the second resumes (the finished cells and the teacher are read, not
    retrained); then a deleted cell is retrained from a retrained teacher to the same predictions."""
    flags = {"teacher_init": bert_teacher_dir, "student": bert_student_dir, "student_layers": 2, "max_length": 32,
             "teacher_num_train_epochs": 1, "learning_rate": 5.0e-4, "num_train_epochs": 1, "per_domain_train_batch_size": 8,
             "max_dev_samples_per_domain": 20, "teacher_cache": True, "use_cpu": True, "report_to": "none",
             "speed_repeats": 1, "speed_batches": 1, "max_transfer_samples_per_domain": 3}  # fmt: skip
    presets = {"tiny": {"description": "tiny", "data": "vader", "seeds": [1], "train_fraction": 0.005,
                        "evaluations": 1, "measure": True, "flags": flags}}  # fmt: skip
    rows = {
        "uniform": {"label": "uniform KD", "method": "multi-domain", "teacher": "hrkd"},
        "graph": {"label": "HRKD", "method": "hrkd", "teacher": "hrkd", "flags": {"relational_mode": "frozen"}},
        "per-domain": {"label": "TinyBERT-KD", "method": "tinybert", "teacher": "hrkd"},
        "alone": {"label": "no KD", "method": "fine-tune", "learning_rate": 2.0e-4},
        "pseudo": {"label": "no KD + pseudo-labels", "method": "fine-tune",
                   "flags": {"transfer_rest_of_train": True, "baseline_pseudo_labels": True}},
        "transfer": {"label": "KD + transfer", "method": "multi-domain", "teacher": "hrkd",
                     "flags": {"transfer_rest_of_train": True, "prediction_loss": "hinton", "hard_label_weight": 0.5}},
    }  # fmt: skip
    path = write_study(
        tmp_path, presets=presets, rows=rows, sections={"main": {"title": "Main", "rows": list(rows)}}
    )
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    argv = [path, "--out", str(out), "--scratch", str(scratch), "--bootstrap", "0"]
    import hrkd_trainer.study.plan as plan

    real, calls = plan.run_cell, []

    def killed_after_two(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(args[1].key)
        return real(*args)

    monkeypatch.setattr(plan, "run_cell", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    cells = out / "runs" / "f0.005" / "seed1"
    first = json.loads((cells / "uniform-lr0.0005.json").read_text())
    teacher = scratch / "f0.005" / "seed1" / "teacher-hrkd"
    assert (teacher / "stages.json").exists()  # kept: an unfinished task still needs it
    teacher_record = (cells / "teacher-hrkd.json").read_text()
    assert not (teacher / "teacher_checkpoints").exists()  # a finished stage never resumes
    invocations = json.loads((out / "invocations.json").read_text())
    assert "stopped before its end" in invocations[0]["note"]

    monkeypatch.setattr(plan, "run_cell", real)
    summary = main(argv)
    assert json.loads((cells / "uniform-lr0.0005.json").read_text()) == first  # read back, not retrained
    assert (cells / "teacher-hrkd.json").read_text() == teacher_record  # loaded from its stage record
    assert not teacher.exists()  # no task needs it any more
    assert set(summary["sections"]["main"]["rows"]) == set(rows)
    pseudo, transfer = (
        json.loads((cells / f"{k}-lr0.0005.json").read_text()) for k in ("pseudo", "transfer")
    )
    assert pseudo["transfer_rows"] == transfer["transfer_rows"] == 4 * 3  # the rows the cap left out, capped
    assert pseudo["teacher"] == "hrkd"  # the teacher that labelled its transfer text
    uniform, per_domain, alone = (json.loads((cells / f"{k}.json").read_text())
                                  for k in ("uniform-lr0.0005", "per-domain-lr0.0005", "alone-lr0.0002"))  # fmt: skip
    assert sum(len(c) for c in uniform["test_correct"].values()) == 1946  # VADER's whole test splits
    assert uniform["transfer_rows"] == 0
    assert per_domain["per_domain_steps"] == uniform["steps"]  # each domain's student trains as long
    assert alone["learning_rate"] == 2e-4 and alone["teacher"] is None and "measures" not in alone
    assert uniform["measures"]["parameters"]["student"] < uniform["measures"]["parameters"]["teacher"]
    assert len(json.loads((cells / "graph-lr0.0005.json").read_text())["mean_ratios"]) == 3
    assert "| no KD | 1 |" in (out / "summary.md").read_text()

    graph = json.loads((cells / "graph-lr0.0005.json").read_text())
    (cells / "graph-lr0.0005.json").unlink()
    main(argv)  # the teacher is retrained (it was pruned), the cell too: the same predictions
    again = json.loads((cells / "graph-lr0.0005.json").read_text())
    retrained = json.loads((cells / "teacher-hrkd.json").read_text())
    assert retrained["test_correct"] == json.loads(teacher_record)["test_correct"]  # the same teacher again
    assert again["test_correct"] == graph["test_correct"] and again["final_ratios"] == graph["final_ratios"]
    assert len(load_runs(str(out)).cells) == 6 and cell_path(str(out), 0.005, 1, "graph", 5e-4).endswith(
        "graph-lr0.0005.json"
    )


def test_two_tasks_needing_one_cell_train_it_once(tmp_path, monkeypatch):
    """The largest few-shot rate is the tables' share: its task and the tables' task can ask for the same
    cell at once; the second waits for the first and reads its result instead of training over it."""
    import threading
    import time

    import hrkd_trainer.study.cells as cells

    calls = []

    def slow_train(share, row, seed, learning_rate, path, work):
        calls.append(row.key)
        time.sleep(0.5)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            json.dump({"row": row.key}, handle)
        return {"row": row.key}

    monkeypatch.setattr(cells, "_train_cell", slow_train)
    share = type("S", (), {"out": str(tmp_path / "o"), "scratch": str(tmp_path / "s"), "fraction": 0.04})()
    row = load_study("report").rows["hrkd-hrkd"]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cells.run_cell(share, row, 1, 5e-4))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["hrkd-hrkd"] and results == [{"row": "hrkd-hrkd"}] * 2


def test_dev_chooses_each_rows_learning_rate_and_rows_pair_against_several_rows(tmp_path):
    """A section with ``learning_rates``: the candidates run first at the first seed; dev picks each
    row's best (a row with its own rate keeps it); every seed then trains at the chosen rate; the summary
    pairs each row with the baseline and with the ``against`` rows, at their chosen rates."""
    sections = {"main": {"title": "Main", "rows": ["uniform", "graph", "alone"], "learning_rates": [1e-4, 5e-4],
                         "against": ["graph"]}}  # fmt: skip
    path = write_study(tmp_path, sections=sections)
    args = type("A", (), {"study": path, "preset": None, "set": ["seeds=[1, 2]"], "sections": None, "rows": None,
                          "out": str(tmp_path / "o"), "scratch": str(tmp_path / "s"), "seeds": None, "data_path": None})()  # fmt: skip
    run = study_run(args)
    tasks = tasks_of(run)
    assert tasks == [
        ("lr", "main", 1e-4),
        ("lr", "main", 5e-4),
        ("section", "main", 1),
        ("section", "main", 2),
    ]
    assert run.waits(("section", "main", 2), tasks) and not run.finished(("section", "main", 1))
    assert {(r.key, lr) for _, r, _, lr in run.cells_of(("lr", "main", 1e-4))} == {
        ("uniform", 1e-4), ("graph", 1e-4), ("alone", 2e-4)  # the fine-tuned row keeps its own rate
    }  # fmt: skip
    dev = {
        ("uniform", 1e-4): 0.6,
        ("uniform", 5e-4): 0.7,
        ("graph", 1e-4): 0.8,
        ("graph", 5e-4): 0.5,
        ("alone", 2e-4): 0.4,
    }
    for seed in (1, 2):
        for (key, lr), value in dev.items():
            correct = (
                {"a": [1, 0, seed % 2, 1], "b": [int(lr > 2e-4), 1]}
                if key != "graph"
                else {"a": [1, 1, 1, 1], "b": [1, 1]}
            )
            made = cell(seed, key, correct, lr=lr, dev_accuracy={"average": value})
            out = cell_path(run.out, 1.0, seed, key, lr)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "w") as handle:
                json.dump(made, handle)
    main = run.study.sections["main"]
    first = dataclasses.replace(run, rows=["uniform"])  # an earlier invocation with one row
    assert first.choose(main)["per_row"] == {"uniform": 5e-4}
    assert first.choice_made(main) and not run.choice_made(main) and not run.finished(("section", "main", 2))
    choice = run.choose(study_run(args).study.sections["main"])  # the rows added since get theirs
    assert choice["per_row"] == {"uniform": 5e-4, "graph": 1e-4, "alone": 2e-4}
    assert run.choice_made(main) and set(choice["dev_average"]) == {"uniform", "graph", "alone"}
    assert {(r.key, lr) for _, r, _, lr in run.cells_of(("section", "main", 2))} == {
        ("uniform", 5e-4), ("graph", 1e-4), ("alone", 2e-4)
    }  # fmt: skip
    assert run.finished(("section", "main", 2))
    summary = Summariser(run.study, run.preset, load_runs(run.out), run.out, 0).summary()
    rows = summary["sections"]["main"]["rows"]
    assert rows["uniform"]["learning_rate"] == 5e-4 and rows["graph"]["learning_rate"] == 1e-4
    assert rows["alone"]["vs"]["graph"]["average"]["mean"] == pytest.approx(
        rows["alone"]["average"]["mean"] - 1.0
    )
    assert "graph" not in rows["graph"].get("vs", {})
    from hrkd_trainer.study import summary_markdown

    text = summary_markdown(summary, {k: r.label for k, r in run.study.rows.items()})
    assert "| row | Δ average vs HRKD [95 % CI]" in text and "Learning rates chosen on dev (seed 1" in text


# What each committed row of the vader-mpnet studies ran with (docs/compression.md): the recipe's
# defaults may move to a study's winner, the rows must not move with them.
COMMITTED_SETTINGS = {
    ("distillation", "F0"): dict(transfer_rest_of_train=False, augment=0, baseline_pseudo_labels=False),
    ("distillation", "F1"): dict(transfer_rest_of_train=True, augment=0, baseline_pseudo_labels=True),
    ("distillation", "K1"): dict(transfer_rest_of_train=False, augment=0, distill_losses=["prediction"],
                                 prediction_loss="hinton", hard_label_weight=0.5, temperature=1.0),
    ("distillation", "K2"): dict(transfer_rest_of_train=True, augment=0, distill_losses=["prediction"],
                                 prediction_loss="hinton", hard_label_weight=0.5, temperature=1.0),
    ("distillation", "K3"): dict(transfer_rest_of_train=True, augment=1, distill_losses=["prediction"],
                                 prediction_loss="hinton", hard_label_weight=0.5, temperature=1.0),
    ("distillation", "K4"): dict(transfer_rest_of_train=True, augment=1, prediction_loss="hinton",
                                 distill_losses=["embedding", "hidden", "prediction"], projection_init="lstsq",
                                 hard_label_weight=0.5, temperature=1.0),
    ("compression", "kd"): dict(transfer_rest_of_train=False, augment=0, distill_losses=["prediction"],
                                prediction_loss="soft-ce", temperature=0.5, learning_rate=5e-4),
}  # fmt: skip


@pytest.mark.parametrize("study, row", sorted(COMMITTED_SETTINGS))
def test_committed_rows_keep_their_settings_whatever_the_recipe_now_defaults_to(study, row):
    """A row of a committed study, parsed on top of today's shipped recipe, is still what its committed
    cells ran: the transfer text, augmentation, losses and temperature it was measured with."""
    from hrkd_trainer.study.share import parse_flags

    spec = load_study(study)
    entry = spec.rows[row]
    flags = entry.recipe_flags()
    if entry.learning_rate is not None:
        flags["learning_rate"] = entry.learning_rate
    recipe, config = parse_flags(spec.preset("cpu"), flags)
    expected = COMMITTED_SETTINGS[study, row]
    effective = {name: getattr(recipe, name, getattr(config, name, None)) for name in expected}
    assert effective == expected
