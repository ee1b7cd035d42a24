"""The work of one study invocation: its tasks, in order, run in this process or ``--jobs`` worker
processes, and the teachers deleted once no unfinished task needs them.

A task is ``("section", NAME, SEED)`` (every row of a section at one seed on the preset's share),
``("lr", NAME, LR)`` (one candidate of a few-shot section's learning rate: its rows at the first seed
and the second-smallest rate) or ``("few_shot", NAME, SEED, RATE)``. The candidates come first (the
few-shot tasks need dev's choice), then the tasks seed by seed, so that a seed's teachers are needed
for a short stretch of the run and its scratch stays small.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from ..results import write_json
from .cells import run_cell
from .share import Share, parse_flags, preset_learning_rate
from .spec import Preset, Row, Section, Study
from .store import cell_path, choice_file, read_json, share_name

logger = logging.getLogger(__name__)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class StudyRun:
    """One invocation: the study, its preset, the seeds, rows and sections asked for, the folders."""

    study: Study
    preset: Preset
    out: str
    scratch: str
    seeds: list[int]
    sections: list[str]
    rows: list[str] | None = None
    data_path: str | None = None
    shares: dict = field(default_factory=dict)
    default_learning_rate: float | None = None
    keep_teachers: bool = False

    def share(self, fraction: float) -> Share:
        fraction = round(fraction, 6)
        if fraction not in self.shares:
            self.shares[fraction] = Share(
                self.study, self.preset, fraction, self.scratch, self.out, self.data_path
            )
        return self.shares[fraction]

    def section_rows(self, name: str) -> list[Row]:
        return self.study.section_rows(name, self.rows)

    def learning_rate(self, row: Row, chosen: float | None = None) -> float:
        """A row's learning rate: its own, else dev's few-shot choice, else the preset's."""
        if row.learning_rate is not None:
            return row.learning_rate
        if chosen is not None:
            return chosen
        if self.default_learning_rate is None:
            self.default_learning_rate = preset_learning_rate(self.preset)
        return self.default_learning_rate

    def check_flags(self) -> None:
        """Every row's flags through the recipe parser, before anything trains."""
        for name in self.sections:
            for row in self.section_rows(name):
                try:
                    parse_flags(self.preset, {**row.recipe_flags(), "data_path": self.data_path})
                except SystemExit as err:
                    detail = err.code if isinstance(err.code, str) else "see the error above"
                    raise SystemExit(
                        f"{self.study.path}: rows.{row.key} with preset {self.preset.name}: {detail}"
                    ) from None

    # ------------------------------------------------------------------ learning rates dev chooses
    def tuned(self, section: Section) -> bool:
        """Whether dev chooses the section's learning rates (few-shot: one for all rows; else per row)."""
        return section.few_shot or bool(section.learning_rates)

    def candidates(self, section: Section) -> tuple[float, ...]:
        return self.preset.few_shot.learning_rates if section.few_shot else section.learning_rates

    def choice_share(self, section: Section) -> float:
        """The share whose first-seed cells dev reads: the few-shot choice rate, else the preset's."""
        few = self.preset.few_shot
        return few.pool * few.choice_rate if section.few_shot else self.preset.train_fraction

    def choice_path(self, section: Section) -> str:
        return os.path.join(self.out, choice_file(section.name))

    def choice_made(self, section: Section) -> bool:
        """Whether dev has chosen for every row of this invocation (per-row choices grow: an invocation
        with more rows adds theirs to the file)."""
        path = self.choice_path(section)
        if not os.path.exists(path):
            return False
        if section.few_shot:
            return True
        per_row = read_json(path)["per_row"]
        return all(r.key in per_row for r in self.section_rows(section.name))

    def chosen_rate(self, section: Section, row: Row) -> float | None:
        """Dev's learning rate for ``row`` in ``section`` (None: not tuned, or not chosen yet)."""
        if not self.tuned(section) or not self.choice_made(section):
            return None
        choice = read_json(self.choice_path(section))
        return choice["learning_rate"] if section.few_shot else choice["per_row"].get(row.key)

    def choose(self, section: Section) -> dict:
        """Dev chooses: of the candidates, the best dev average at the first seed on the choice share,
        for the section's rows together (few-shot, the paper's single rate) or for each row (a row with
        its own ``learning_rate`` keeps it). The candidates' cells must be done."""
        path = self.choice_path(section)
        if self.choice_made(section):
            return read_json(path)
        earlier = read_json(path) if os.path.exists(path) else None
        seed, rows, fraction = self.seeds[0], self.section_rows(section.name), self.choice_share(section)
        if earlier is not None:  # rows added since: dev chooses theirs, the earlier choices stay
            rows = [r for r in rows if r.key not in earlier["per_row"]]
        dev = {
            r.key: {
                f"{lr:g}": read_json(cell_path(self.out, fraction, seed, r.key, self.learning_rate(r, lr)))[
                    "dev_accuracy"
                ]["average"]
                for lr in self.candidates(section)
            }
            for r in rows
        }
        if section.few_shot:
            mean = {
                lr: sum(dev[r.key][f"{lr:g}"] for r in rows) / len(rows) for lr in self.candidates(section)
            }
            chosen = max(mean, key=mean.get)
            choice = {"learning_rate": chosen, "rate": self.preset.few_shot.choice_rate, "seed": seed,
                      "rows": [r.key for r in rows], "dev_average": {f"{k:g}": v for k, v in mean.items()}}  # fmt: skip
            log(f"few-shot learning rate chosen on dev: {chosen:g} ({choice['dev_average']})")
        else:
            per_row = {
                r.key: r.learning_rate
                if r.learning_rate is not None
                else float(max(dev[r.key], key=dev[r.key].get))
                for r in rows
            }
            if earlier is not None:
                if (earlier["seed"], earlier["fraction"]) != (seed, fraction):
                    raise SystemExit(
                        f"{path}: chosen at seed {earlier['seed']} on share {earlier['fraction']}, this "
                        f"invocation chooses at seed {seed} on share {fraction}; run with the same first seed"
                    )
                per_row, dev = {**earlier["per_row"], **per_row}, {**earlier["dev_average"], **dev}
            choice = {"per_row": per_row, "seed": seed, "fraction": fraction, "dev_average": dev}
            log(f"learning rates chosen on dev for {section.name}: {per_row}")
        write_json(path, choice)
        return choice

    # ------------------------------------------------------------------ what each task trains
    def cells_of(self, task: tuple) -> list[tuple[float, Row, int, float]]:
        """``(fraction, row, seed, learning rate)`` of every cell of ``task``."""
        kind, name, *values = task
        section = self.study.sections[name]
        if kind == "lr":
            fraction, seed = self.choice_share(section), self.seeds[0]
            return [(fraction, r, seed, self.learning_rate(r, values[0])) for r in self.section_rows(name)]
        fraction = self.preset.train_fraction if kind == "section" else self.preset.few_shot.pool * values[1]
        return [
            (fraction, r, values[0], self.learning_rate(r, self.chosen_rate(section, r)))
            for r in self.section_rows(name)
        ]

    def run_task(self, task: tuple) -> None:
        section = self.study.sections[task[1]]
        if task[0] != "lr" and self.tuned(section):
            self.choose(section)
        for fraction, row, seed, learning_rate in self.cells_of(task):
            begin = time.time()
            fresh = not os.path.exists(cell_path(self.out, fraction, seed, row.key, learning_rate))
            result = run_cell(self.share(fraction), row, seed, learning_rate)
            if fresh:
                log(f"{share_name(fraction)} seed {seed} {row.key} lr {learning_rate:g}: test average "
                    f"{100 * result['test_accuracy']['average']:.2f} ({time.time() - begin:.0f} s)")  # fmt: skip

    def teachers_of(self, task: tuple) -> set[str]:
        """The scratch folders of the teachers ``task`` would train or load."""
        kind, name, *values = task
        section = self.study.sections[name]
        if kind == "section":
            fraction, seed = self.preset.train_fraction, values[0]
        elif kind == "lr":
            fraction, seed = self.choice_share(section), self.seeds[0]
        else:
            fraction, seed = self.preset.few_shot.pool * values[1], values[0]
        share = os.path.join(self.scratch, share_name(fraction), f"seed{self.preset.teacher_seed_for(seed)}")
        return {os.path.join(share, f"teacher-{r.teacher}") for r in self.section_rows(name) if r.teacher}

    def finished(self, task: tuple) -> bool:
        section = self.study.sections[task[1]]
        if task[0] != "lr" and self.tuned(section) and not self.choice_made(section):
            return False
        return all(
            os.path.exists(cell_path(self.out, f, s, r.key, lr)) for f, r, s, lr in self.cells_of(task)
        )

    def waits(self, task: tuple, unfinished: list[tuple]) -> bool:
        """A task of a tuned section waits until its learning-rate candidates have finished."""
        return task[0] != "lr" and any(t[0] == "lr" and t[1] == task[1] for t in unfinished)


def tasks_of(run: StudyRun) -> list[tuple]:
    """The invocation's tasks in order: the learning-rate candidates of the sections dev tunes, then
    seed by seed every section and every few-shot rate (the largest first)."""
    sections = [run.study.sections[n] for n in run.sections]
    tasks = [("lr", s.name, lr) for s in sections if run.tuned(s) for lr in run.candidates(s)]
    for seed in run.seeds:
        for section in sections:
            if section.few_shot:
                rates = sorted(run.preset.few_shot.rates, reverse=True)
                tasks += [("few_shot", section.name, seed, rate) for rate in rates]
            else:
                tasks.append(("section", section.name, seed))
    return tasks


def task_name(task: tuple) -> str:
    return "-".join(str(v) if isinstance(v, str) else f"{v:g}" for v in task)


def prune_teachers(run: StudyRun, unfinished: list[tuple]) -> list[str]:
    """Delete the scratch teachers no unfinished task needs (a later need retrains them, to the same
    weights); returns the folders deleted. With ``--keep_teachers`` nothing is deleted: another
    invocation (more rows or seeds, or one running beside this one) may still read them."""
    if run.keep_teachers:
        return []
    needed = set().union(*(run.teachers_of(t) for t in unfinished)) if unfinished else set()
    deleted = []
    for share in os.listdir(run.scratch) if os.path.isdir(run.scratch) else []:
        for seed in os.listdir(os.path.join(run.scratch, share)) if share.startswith("f") else []:
            folder = os.path.join(run.scratch, share, seed)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                path = os.path.join(folder, name)
                if name.startswith("teacher-") and os.path.isdir(path) and path not in needed:
                    shutil.rmtree(path)
                    deleted.append(path)
    return deleted


def run_tasks(run: StudyRun, tasks: list[tuple], jobs: int, worker: list[str]) -> None:
    """Run ``tasks``, in this process or ``jobs`` at a time in worker processes (``worker + [--task
    ...]``, each with its share of the CPU threads); a task of a tuned section starts once its
    learning-rate candidates have finished. Teachers are pruned after each task."""
    pending = [t for t in tasks if not run.finished(t)]
    prune_teachers(run, pending)
    if jobs == 1:
        while pending:
            run.run_task(pending[0])
            pending.pop(0)
            prune_teachers(run, pending)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    logs = os.path.join(run.scratch, "logs")
    os.makedirs(logs, exist_ok=True)
    running: dict = {}
    try:
        while pending or running:
            for task, process in list(running.items()):
                if process.poll() is None:
                    continue
                del running[task]
                if process.returncode:
                    raise SystemExit(
                        f"study task {task_name(task)} failed (exit {process.returncode}); see {logs}/{task_name(task)}.log"
                    )
                log(f"task {task_name(task)} finished")
                prune_teachers(run, [*pending, *running])
            unfinished = [*pending, *running]
            startable = [t for t in pending if not run.waits(t, unfinished)]
            while startable and len(running) < jobs:
                task = startable.pop(0)
                pending.remove(task)
                section = run.study.sections[task[1]]
                if task[0] != "lr" and run.tuned(section):
                    run.choose(section)
                with open(os.path.join(logs, f"{task_name(task)}.log"), "a") as handle:
                    command = [*worker, "--task", *(str(v) if isinstance(v, str) else f"{v:g}" for v in task)]
                    running[task] = subprocess.Popen(
                        command, stdout=handle, stderr=subprocess.STDOUT, env=env
                    )
                log(f"task {task_name(task)} started (pid {running[task].pid}, {threads} threads)")
            time.sleep(2)
    finally:  # stopped (a failed task, Ctrl-C, SIGTERM): no worker outlives the study
        for process in running.values():
            if process.poll() is None:
                process.terminate()


def parse_task(values: list[str]) -> tuple:
    """A task from its ``--task`` words (the inverse of the worker command)."""
    kind, name, *numbers = values
    if kind == "lr":
        return (kind, name, float(numbers[0]))
    if kind == "section":
        return (kind, name, int(numbers[0]))
    return (kind, name, int(numbers[0]), float(numbers[1]))
