#!/usr/bin/env python
"""The paper's experiments as one report: Tables 2-3, Table 4 and Figure 2 with paired intervals.

    python benchmarks/report.py --preset cpu                 # docs/results.md, its plots, the README table
    python benchmarks/report.py --preset paper --data_path /data/sorted_data_acl --out runs/report_paper
    python benchmarks/report.py --preset cpu --summarise     # rebuild the page from the finished runs

Every run goes through one protocol (benchmarks/report_runs.py): per seed, every row gets the same
pretrained student layers, data, epochs and schedule; each teacher type is trained once per seed
and share of the data and reused by every row that distils it; dev picks each run's snapshot; the
whole test splits report. Intervals are paired by seed against uniform multi-domain KD.

Sections (``--sections``): ``tables`` (Tables 2-3: every teacher × distiller row), ``ablations``
(Table 4: the relational modules removed one after another), ``few_shot`` (Figure 2: the few-shot
rates, with the student's learning rate chosen on dev at the first seed). Each finished run is a JSON
file under ``OUT/runs`` and is reused: a killed report resumes after its last finished run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import report_runs  # noqa: E402
from report_runs import FEW_SHOT_ROWS, PRESETS, ROWS, TABLE_ROWS, Share, ablation_rows, run_cell  # noqa: E402

from hrkd_trainer.results import write_json  # noqa: E402

SECTIONS = ("tables", "ablations", "few_shot")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="cpu")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: the preset's")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), help="only these rows (default: all)")
    parser.add_argument("--data_path", help="the data files (the paper preset: Amazon or MNLI)")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="FIELD=VALUE",
        help="override preset fields, e.g. --set train_fraction=0.01 epochs=1",
    )  # fmt: skip
    parser.add_argument("--out", help="runs and summary (default benchmarks/results/report_<preset>)")
    parser.add_argument("--scratch", help="teachers, caches, checkpoints (default runs/report/<preset>)")
    parser.add_argument(
        "--page", help="the results page (default docs/results.md for cpu, else OUT/results.md)"
    )
    parser.add_argument("--readme", action="store_true", help="also rewrite the README's results table")
    parser.add_argument("--summarise", action="store_true", help="only rebuild the page from finished runs")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes (seeds, and few-shot rates, run side by side)"
    )
    parser.add_argument("--task", nargs="+", metavar="SECTION VALUE", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap resamples")
    args = parser.parse_args(argv)
    args.preset = apply_overrides(PRESETS[args.preset], args.set)
    args.seeds = args.seeds or list(args.preset.seeds)
    args.out = args.out or os.path.join(ROOT, "benchmarks", "results", f"report_{args.preset.name}")
    args.scratch = args.scratch or os.path.join(ROOT, "runs", "report", args.preset.name)
    if args.page is None:
        default = args.preset.name == "cpu" and not args.set
        args.page = (
            os.path.join(ROOT, "docs", "results.md") if default else os.path.join(args.out, "results.md")
        )
    return args


def apply_overrides(preset, pairs: list[str]):
    fields = {f.name: f for f in dataclasses.fields(preset)}
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        current = getattr(preset, name)
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            values[name] = tuple(kind(v) for v in text.split(","))
        elif isinstance(current, bool):
            values[name] = text.lower() in ("1", "true", "yes")
        else:
            values[name] = type(current)(text)
    return dataclasses.replace(preset, **values) if values else preset


def wanted(args, keys):
    return [k for k in keys if not args.rows or k in args.rows]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Report:
    """The shares of the data (tokenised once each) and the run loop."""

    def __init__(self, args):
        from transformers import AutoTokenizer

        from hrkd_trainer.assets import resolve_model_source

        self.args, preset = args, args.preset
        self.sources = (resolve_model_source(preset.teacher_init), resolve_model_source(preset.student_init))
        self.tokenizer = AutoTokenizer.from_pretrained(self.sources[1])
        teacher_tokenizer = AutoTokenizer.from_pretrained(self.sources[0])
        if teacher_tokenizer.get_vocab() != self.tokenizer.get_vocab():
            raise SystemExit(
                f"the report feeds teacher and student the same ids, but {preset.teacher_init} and "
                f"{preset.student_init} have different vocabularies: pick a student with the teacher's tokenizer"
            )
        self.raw = report_runs.load_data(preset, args.data_path)
        self.shares: dict[float, Share] = {}

    def share(self, fraction: float) -> Share:
        fraction = round(fraction, 6)
        if fraction not in self.shares:
            self.shares[fraction] = Share(
                self.args.preset,
                self.raw,
                fraction,
                self.tokenizer,
                self.sources,
                self.args.scratch,
                self.args.out,
            )
        return self.shares[fraction]

    def cell(self, fraction: float, seed: int, key: str, learning_rate: float) -> dict:
        begin = time.time()
        share = self.share(fraction)
        fresh = not os.path.exists(report_runs.cell_path(self.args.out, fraction, seed, key, learning_rate))
        result = run_cell(share, self.args.out, seed, ROWS[key], learning_rate)
        if fresh:
            log(
                f"f={fraction:g} seed {seed} {key} lr {learning_rate:g}: test average "
                f"{100 * result['test_accuracy']['average']:.2f} ({time.time() - begin:.0f} s)"
            )
        return result

    def tables(self, seed: int) -> None:
        preset = self.args.preset
        for key in wanted(self.args, [r.key for r in TABLE_ROWS]):
            self.cell(preset.train_fraction, seed, key, preset.learning_rate)

    def ablations(self, seed: int) -> None:
        preset = self.args.preset
        for key in wanted(self.args, [r.key for r in ablation_rows()]):
            self.cell(preset.train_fraction, seed, key, preset.learning_rate)

    def few_shot_lr(self, learning_rate: float) -> None:
        """One candidate of the few-shot learning-rate choice: every few-shot row at the first seed and
        the second-smallest rate (see :func:`choose_few_shot_lr`)."""
        preset = self.args.preset
        rate = choice_rate(preset)
        for key in wanted(self.args, FEW_SHOT_ROWS):
            self.cell(preset.few_shot_pool * rate, self.args.seeds[0], key, learning_rate)

    def few_shot(self, seed: int, rate: float) -> None:
        """The few-shot rows at one seed and rate (each rate is its own share of the data with its own
        teachers, so the rates of a seed run side by side)."""
        preset = self.args.preset
        learning_rate = read_json(few_shot_lr_path(self.args))["learning_rate"]
        for key in wanted(self.args, FEW_SHOT_ROWS):
            self.cell(preset.few_shot_pool * rate, seed, key, learning_rate)


def choice_rate(preset) -> float:
    rates = sorted(preset.few_shot_rates)
    return rates[1] if len(rates) > 1 else rates[0]


def few_shot_lr_path(args) -> str:
    return os.path.join(args.out, "few_shot_lr.json")


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def choose_few_shot_lr(args) -> dict:
    """Dev chooses the few-shot student learning rate: of the candidates, the one with the best mean dev
    average over the few-shot rows at the first seed and the second-smallest rate."""
    path = few_shot_lr_path(args)
    if os.path.exists(path):
        return read_json(path)
    preset, seed = args.preset, args.seeds[0]
    rate = choice_rate(preset)
    dev = {}
    for lr in preset.few_shot_learning_rates:
        runs = [
            read_json(report_runs.cell_path(args.out, round(preset.few_shot_pool * rate, 6), seed, key, lr))
            for key in wanted(args, FEW_SHOT_ROWS)
        ]
        dev[lr] = sum(r["dev_accuracy"]["average"] for r in runs) / len(runs)
    chosen = max(dev, key=dev.get)
    choice = {
        "learning_rate": chosen, "rate": rate, "seed": seed, "rows": wanted(args, FEW_SHOT_ROWS),
        "dev_average": {f"{k:g}": v for k, v in dev.items()},
    }  # fmt: skip
    write_json(path, choice)
    log(f"few-shot learning rate chosen on dev: {chosen:g} ({choice['dev_average']})")
    return choice


def tasks_of(args) -> list[tuple]:
    """The report's work, in order: (section, seed), ("few_shot_lr", candidate learning rate) or
    ("few_shot", seed, rate), the largest rate of a seed first."""
    tasks = []
    for section in SECTIONS:
        if section not in args.sections:
            continue
        if section == "few_shot":
            tasks += [("few_shot_lr", lr) for lr in args.preset.few_shot_learning_rates]
            rates = sorted(args.preset.few_shot_rates, reverse=True)
            tasks += [(section, seed, rate) for seed in args.seeds for rate in rates]
        else:
            tasks += [(section, seed) for seed in args.seeds]
    return tasks


def task_name(task: tuple) -> str:
    return "-".join([task[0], *(f"{v:g}" for v in task[1:])])


def worker_command(args, argv: list[str], task: tuple) -> list[str]:
    """This script again, for one task, with this invocation's preset, overrides, rows and folders."""
    keep, skip = [], False
    for item in argv:  # drop the options the task sets itself
        if item.startswith("--"):
            skip = item in ("--sections", "--seeds", "--jobs", "--task", "--page", "--readme")
            if item in ("--readme", "--summarise"):
                continue
        if not skip:
            keep.append(item)
    return [
        sys.executable, os.path.abspath(__file__), *keep, "--out", args.out, "--scratch", args.scratch,
        "--seeds", *map(str, args.seeds), "--task", task[0], *(f"{v:g}" for v in task[1:]),
    ]  # fmt: skip


def run_tasks(args, argv: list[str]) -> None:
    """Run the tasks, ``--jobs`` at a time in worker processes (each with its share of the CPU
    threads); the few-shot seeds start once every learning-rate candidate has finished."""
    tasks = tasks_of(args)
    if args.jobs == 1:
        report = Report(args)
        for section, *values in tasks:
            if section == "few_shot":
                choose_few_shot_lr(args)
            getattr(report, section)(*values)
        return
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    os.makedirs(os.path.join(args.scratch, "logs"), exist_ok=True)
    running: dict = {}
    pending = list(tasks)
    try:
        while pending or running:
            for task, process in list(running.items()):
                if process.poll() is not None:
                    del running[task]
                    if process.returncode:
                        raise SystemExit(
                            f"report task {task_name(task)} failed (exit {process.returncode}); "
                            f"see {args.scratch}/logs/{task_name(task)}.log"
                        )
                    log(f"task {task_name(task)} finished")
            candidates_done = not any(t[0] == "few_shot_lr" for t in [*pending, *running])
            startable = [t for t in pending if t[0] != "few_shot" or candidates_done]
            while startable and len(running) < args.jobs:
                task = startable.pop(0)
                pending.remove(task)
                if task[0] == "few_shot":
                    choose_few_shot_lr(args)
                name = task_name(task)
                with open(os.path.join(args.scratch, "logs", f"{name}.log"), "a") as handle:
                    running[task] = subprocess.Popen(
                        worker_command(args, argv, task),
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=ROOT,
                    )
                log(f"task {name} started (pid {running[task].pid}, {threads} threads)")
            time.sleep(5)
    finally:  # stopped (a failed task, Ctrl-C, SIGTERM): no worker outlives the report
        for process in running.values():
            if process.poll() is None:
                process.terminate()


def record_invocation(args, argv: list[str], started: float, note: str = "") -> None:
    """Append this run's command and wall time to ``OUT/invocations.json`` (the page lists them), with
    a note when it stopped before its end."""
    path = os.path.join(args.out, "invocations.json")
    done = read_json(path) if os.path.exists(path) else []
    entry = {"command": "python benchmarks/report.py " + " ".join(argv), "started": started}
    done.append({**entry, "seconds": time.time() - started, **({"note": note} if note else {})})
    write_json(path, done)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    begin = time.time()
    if args.task:  # a worker of run_tasks
        section, *values = args.task
        torch_threads = os.environ.get("OMP_NUM_THREADS")
        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        seed_or_lr = float(values[0]) if section == "few_shot_lr" else int(values[0])
        getattr(Report(args), section)(seed_or_lr, *map(float, values[1:]))
        return {}
    if not args.summarise:
        argv = list(sys.argv[1:] if argv is None else argv)
        started = time.time()
        try:
            run_tasks(args, argv)
        except BaseException as stop:  # a failed task or a kill: the time spent still counts
            record_invocation(args, argv, started, f"stopped before its end: {stop!r}"[:300])
            raise
        record_invocation(args, argv, started)
    import report_page  # imported here: a long run writes the page with the page code of its end

    summary = report_page.build(args)
    log(f"report written to {args.page} ({time.time() - begin:.0f} s this invocation)")
    return summary


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated (SIGTERM)"))  # so the stop is recorded
    main()
