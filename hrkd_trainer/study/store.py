"""Where a study keeps what it finished (``OUT``, small, meant to be committed) and reads it back.

    OUT/runs/f<share>/seed<S>/<row>-lr<LR>.json     one finished cell: accuracy, per-example correctness
    OUT/runs/f<share>/seed<S>/teacher-<type>.json   one trained teacher: its time (and test accuracy)
    OUT/<section>_lr.json                           a few-shot section's learning rate, chosen on dev
    OUT/invocations.json                            every invocation: command, start, wall time, note
    OUT/summary.json, summary.md                    built from the above, never from training

A cell file is written when the cell ends and is never recomputed, so a killed study resumes after its
last finished cell. Teachers, caches and checkpoints live in the scratch folder (see ``share.py``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from ..results import write_json

INVOCATIONS = "invocations.json"


def share_name(fraction: float) -> str:
    """``f0.04``: the share of each domain's train split a cell trained on."""
    return f"f{round(fraction, 6):g}"


def cell_path(out: str, fraction: float, seed: int, row: str, learning_rate: float) -> str:
    return os.path.join(out, "runs", share_name(fraction), f"seed{seed}", f"{row}-lr{learning_rate:g}.json")


def teacher_path(out: str, fraction: float, seed: int, kind: str) -> str:
    return os.path.join(out, "runs", share_name(fraction), f"seed{seed}", f"teacher-{kind}.json")


def choice_file(section: str) -> str:
    """The file of a few-shot section's learning rate (dev's choice)."""
    return f"{section}_lr.json"


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


@dataclass
class FinishedRuns:
    """Every finished file of a study: ``cells[(fraction, row, lr)][seed]``, the tested teachers
    ``teachers[type][seed]`` and the summed time of every teacher (tested or not)."""

    cells: dict = field(default_factory=dict)
    teachers: dict = field(default_factory=dict)
    teacher_seconds: float = 0.0
    teacher_count: int = 0

    def of(self, fraction: float, row: str, learning_rate: float) -> dict:
        """``{seed: cell}`` of one row at one share and learning rate."""
        return self.cells.get((round(fraction, 6), row, learning_rate), {})

    def at(self, fraction: float) -> list[dict]:
        """Every finished cell of one share."""
        return [
            c
            for (f, _, _), by_seed in self.cells.items()
            if f == round(fraction, 6)
            for c in by_seed.values()
        ]


def load_runs(out: str) -> FinishedRuns:
    runs = FinishedRuns()
    root = os.path.join(out, "runs")
    for share in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for seed_dir in sorted(os.listdir(os.path.join(root, share))):
            for name in sorted(os.listdir(os.path.join(root, share, seed_dir))):
                if not name.endswith(".json"):
                    continue
                run = read_json(os.path.join(root, share, seed_dir, name))
                if name.startswith("teacher-"):
                    runs.teacher_seconds += run["seconds"]
                    runs.teacher_count += 1
                    if "test_accuracy" in run:
                        runs.teachers.setdefault(run["kind"], {})[run["seed"]] = run
                else:
                    key = (round(run["fraction"], 6), run["row"], run["learning_rate"])
                    runs.cells.setdefault(key, {})[run["seed"]] = run
    return runs


def record_invocation(out: str, command: str, started: float, note: str = "") -> None:
    """Append one invocation (its command, start and wall time; a note when it stopped early)."""
    path = os.path.join(out, INVOCATIONS)
    done = read_json(path) if os.path.exists(path) else []
    entry = {"command": command, "started": started, "seconds": time.time() - started}
    done.append({**entry, **({"note": note} if note else {})})
    write_json(path, done)
