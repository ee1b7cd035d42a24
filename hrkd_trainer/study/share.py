"""One share of a study's training data (dev and test whole), prepared once per process by the
runner's data stage, and its teachers, each trained once per seed by the runner's teacher stage.

Scratch layout (``SCRATCH``, not committed; deleting it costs only retraining)::

    SCRATCH/f<share>/seed<S>/teacher-<type>/   the runner's run folder of that teacher: stages.json,
                                               teacher/ (the export), cache/ (the teacher-output cache
                                               every row distilling it reads)
    SCRATCH/f<share>/seed<S>/work/<cell>/      a cell while it trains (deleted when it ends)

A teacher is trained under a file lock (worker processes share it), recorded in its folder's
``stages.json`` by the runner and loaded from there by every later cell; its checkpoints are deleted
once the stage is recorded (a finished stage never resumes). The study deletes a teacher folder as soon
as no unfinished task needs it (``plan.py``): a killed study retrains it deterministically if needed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from collections import Counter

from filelock import FileLock

from ..evaluation import accuracy_of_correct, correctness, predict_per_domain
from ..results import write_json
from ..run import (
    RECIPES,
    TRANSFER_FLAGS,
    StageRecord,
    add_prototype_scores,
    add_transfer_set,
    load_own_data,
    obtain_teacher,
    parse_recipe_args,
    prepare_data,
)
from ..vocabulary import Method, TeacherType
from .spec import Preset, Study
from .store import share_name, teacher_path


def as_argv(flags: dict) -> list[str]:
    """Recipe flags as command-line arguments (lists as several values, booleans as true/false)."""
    argv = []
    for name, value in flags.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            argv += [f"--{name}", *map(str, value)]
        elif isinstance(value, bool):
            argv += [f"--{name}", "true" if value else "false"]
        else:
            argv += [f"--{name}", str(value)]  # a float's str round-trips exactly
    return argv


def parse_flags(preset: Preset, flags: dict):
    """``(RecipeArguments, HRKDConfig)`` of ``flags`` on top of the preset's recipe YAML (when it names
    a recipe), checked by the recipe parser: a typo'd or contradictory flag fails here, named."""
    base_config = RECIPES[preset.recipe].config if preset.recipe else None
    return parse_recipe_args(as_argv({**preset.flags, **flags}), default_config=base_config)


def preset_learning_rate(preset: Preset) -> float:
    """The student learning rate of the preset's flags (and its recipe's YAML)."""
    return parse_flags(preset, {})[1].learning_rate


def evaluation_flags(preset: Preset) -> dict:
    """When dev evaluates (and a snapshot is saved): every epoch, or N times evenly over the run."""
    if preset.evaluations == "epoch":
        return {"eval_strategy": "epoch", "save_strategy": "epoch"}
    ratio = 1 / preset.evaluations  # a ratio of the run's steps
    return {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": ratio, "save_steps": ratio}


def stretched_epochs(
    train_domains: list, per_domain_batch: int, epochs: float, min_steps: int
) -> tuple[float, int]:
    """``epochs``, stretched so that a run trains at least ``min_steps`` steps (an epoch is the largest
    domain once, ``per_domain_batch`` rows of every domain a step), and the steps that makes."""
    largest = max(Counter(train_domains).values())
    steps = math.ceil(largest / per_domain_batch)
    epochs = max(epochs, min_steps / steps)
    return epochs, math.ceil(epochs * steps)


class Share:
    """The data of one share, tokenised once, and the teachers trained on it."""

    def __init__(self, study: Study, preset: Preset, fraction: float, scratch: str, out: str, data_path=None):
        self.study, self.preset, self.fraction, self.out = study, preset, fraction, out
        self.scratch = os.path.join(scratch, share_name(fraction))
        spec = RECIPES[preset.recipe or preset.data]
        self.base_flags = {"data_path": data_path, "few_shot_fraction": fraction if fraction < 1 else None}
        recipe, config = self.parse({"output_dir": self.scratch, "seed": preset.seeds[0]})

        def load(r):
            return load_own_data(r, config.seed) if r.own_data else spec.load(r)

        self._default_teacher_init = spec.default_teacher_init
        self.state = prepare_data(recipe, config, load, spec.default_teacher_init, spec.source)
        self.data = self.state.student_data
        batch = config.per_domain_train_batch_size
        train_domains = self.state.data["train"]["domain"]
        # one student per domain (and the single teacher's per-domain models) trains as many steps of its own
        # domain as the multi-domain run takes in all: the same rows of that domain, the same number of steps
        self.epochs, self.steps = stretched_epochs(
            train_domains, batch, config.num_train_epochs, preset.min_steps
        )
        self.teacher_epochs, self.teacher_steps = stretched_epochs(
            train_domains, batch, recipe.teacher_num_train_epochs, preset.min_steps
        )
        self._weighted = None
        self._transfer: dict = {}

    def parse(self, flags: dict):
        """The preset's flags, this share's data flags, then ``flags`` (see :func:`parse_flags`)."""
        return parse_flags(self.preset, {**self.base_flags, **flags})

    def run_flags(self, seed: int, output_dir: str) -> dict:
        """What every run of ``seed`` shares: its folder, seeds (epoch orders never overlap across
        seeds), when dev evaluates, no progress bars."""
        return {"output_dir": output_dir, "seed": seed, "data_seed": 10_000 * seed, "disable_tqdm": True,
                **evaluation_flags(self.preset)}  # fmt: skip

    def sizes(self) -> dict:
        """Training rows per domain (by name)."""
        counts = Counter(self.data.train["domain_ids"])
        return {domain: counts[i] for i, domain in enumerate(self.data.domains)}

    def state_for(self, recipe, meta: bool = False):
        """The data stage's state for a cell: Meta-KD's scores when ``meta``, and the transfer rows its
        recipe asks for (prepared once per distinct setting)."""
        base = self.weighted_state() if meta else self.state
        if not recipe.transfer_requested:
            return dataclasses.replace(base, transfer=None)
        key = tuple(getattr(recipe, name) for name in TRANSFER_FLAGS)
        if key not in self._transfer:
            state = dataclasses.replace(self.state, recipe=recipe, timings={})
            add_transfer_set(state)
            self._transfer[key] = state.transfer
        return dataclasses.replace(base, transfer=self._transfer[key])

    def weighted_state(self):
        """The data stage's state with Meta-KD's prototype scores t_i (computed once, on first use)."""
        if self._weighted is None:
            self._weighted = dataclasses.replace(self.state, timings={})
            add_prototype_scores(self._weighted, self._default_teacher_init)
        return self._weighted

    # ------------------------------------------------------------------ teachers
    def teacher_folder(self, seed: int, kind: str) -> str:
        return os.path.join(self.scratch, f"seed{self.preset.teacher_seed_for(seed)}", f"teacher-{kind}")

    def teacher(self, seed: int, kind: str):
        """``(teacher, its Meta-KD corruption module or None)`` of ``kind`` for ``seed``: trained once,
        under a file lock (workers share it), then loaded from its run folder."""
        folder = self.teacher_folder(seed, kind)
        os.makedirs(folder, exist_ok=True)
        with FileLock(folder + ".lock"):
            return self._teacher(self.preset.teacher_seed_for(seed), kind, folder)

    def _teacher(self, seed: int, kind: str, folder: str):
        flags = {
            **self.run_flags(seed, folder), "teacher_type": kind, "resume_from_checkpoint": "true",
            # the runner trains a 'single' teacher for per-domain students only
            "method": Method.TINYBERT if kind == TeacherType.SINGLE else Method.MULTI_DOMAIN,
            "teacher_num_train_epochs": self.teacher_epochs,
            "max_steps": self.teacher_steps if kind == TeacherType.SINGLE else -1,
        }  # fmt: skip
        recipe, config = self.parse(flags)
        base = self.weighted_state() if kind == TeacherType.META else self.state
        state = dataclasses.replace(
            base, recipe=recipe, config=config, record=StageRecord(folder, "true"), timings={}, trained={}
        )
        fresh = state.record.finished("teacher") is None
        obtain_teacher(state)  # the runner's teacher stage: train and record, or load the recorded one
        if fresh:
            shutil.rmtree(os.path.join(folder, "teacher_checkpoints"), ignore_errors=True)
            self._record_teacher(seed, kind, state)
        return state.teacher, state.corruption

    def _record_teacher(self, seed: int, kind: str, state) -> None:
        """Its time (every teacher counts in the study's compute) and, for the preset's main share, its
        test accuracy (few-shot shares' teachers are not tested)."""
        record = {"seed": seed, "kind": kind, "fraction": self.fraction, "seconds": state.timings["teacher"]}
        if self.fraction == self.preset.train_fraction:
            test = self.state.teacher_data.test
            correct = correctness(
                predict_per_domain(state.teacher, test, state.teacher_tokenizer.pad_token_id), test
            )
            record.update(test_accuracy=accuracy_of_correct(correct), test_correct=correct)
        write_json(teacher_path(self.out, self.fraction, seed, kind), record)
