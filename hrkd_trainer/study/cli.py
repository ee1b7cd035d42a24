"""``python -m hrkd_trainer.study STUDY --preset NAME`` (or ``hrkd-study``): run a study, resume it,
summarise it.

    hrkd-study report --preset cpu --jobs 2 --out benchmarks/results/report_cpu
    hrkd-study weighting --preset cpu --seeds 1 2 --set train_fraction=0.03 num_train_epochs=1 --out runs/pilot
    hrkd-study compression --preset cpu --summarise --out benchmarks/results/compression_vader_mpnet \\
        --doc docs/compression.md

Each finished cell is kept in ``--out`` and never recomputed: a killed study resumes after its last
finished cell. ``--summarise`` only rebuilds ``OUT/summary.json`` and ``OUT/summary.md`` (and the
``--doc`` blocks) from the finished cells.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import yaml

from ..results import machine_description, write_json
from .markdown import replace_block, summary_markdown
from .plan import StudyRun, log, parse_task, run_tasks, tasks_of
from .spec import Preset, StudyError, load_study, study_names
from .store import load_runs, record_invocation
from .summary import Summariser

PRESET_FIELDS = {f.name for f in dataclasses.fields(Preset)} - {"name", "flags", "few_shot"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hrkd-study",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("study", help=f"a shipped study ({', '.join(study_names())}) or a study YAML file")
    parser.add_argument("--preset", help="the study's preset (default: its first)")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: the preset's")
    parser.add_argument("--sections", nargs="+", help="only these sections (default: all)")
    parser.add_argument("--rows", nargs="+", help="only these rows (default: every row of the sections)")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="NAME=VALUE",
        help=f"override a preset field ({', '.join(sorted(PRESET_FIELDS))}) or any recipe flag, e.g. "
        "--set train_fraction=0.01 num_train_epochs=1",
    )  # fmt: skip
    parser.add_argument("--data_path", help="the data files, for presets whose data is not offline")
    parser.add_argument("--out", help="finished cells and the summary (default runs/study/STUDY_PRESET)")
    parser.add_argument(
        "--scratch", help="teachers, caches, checkpoints (default runs/study-scratch/STUDY_PRESET)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (seeds run side by side)")
    parser.add_argument(
        "--keep_teachers", action="store_true",
        help="keep the scratch teachers (and their output caches) once no task of this invocation needs them: "
        "for a later invocation with more rows or seeds, or one running beside this one on the same scratch "
        "(by default they are deleted to bound the disk; a later need retrains them, to the same weights)",
    )  # fmt: skip
    parser.add_argument(
        "--summarise", action="store_true", help="only rebuild the summary from finished cells"
    )
    parser.add_argument("--doc", nargs="+", default=[], metavar="FILE", help="fill the study's block in FILE")
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap resamples")
    parser.add_argument("--task", nargs="+", help=argparse.SUPPRESS)
    return parser


def apply_overrides(preset: Preset, pairs: list[str]) -> Preset:
    """``NAME=VALUE`` pairs (YAML values) onto the preset: its own fields, else recipe flags."""
    fields, flags = {}, dict(preset.flags)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--set {pair!r}: expected NAME=VALUE")
        value = yaml.safe_load(text)
        if name in PRESET_FIELDS:
            fields[name] = tuple(value) if name == "seeds" else value
        else:
            flags[name] = value
    return dataclasses.replace(preset, flags=flags, **fields)


def worker_command(args, run: StudyRun) -> list[str]:
    """This command again for one task, with this invocation's preset, overrides, rows and folders."""
    command = [sys.executable, "-m", "hrkd_trainer.study", run.study.path, "--preset", run.preset.name,
               "--out", run.out, "--scratch", run.scratch, "--seeds", *map(str, run.seeds),
               "--sections", *run.sections]  # fmt: skip
    command += ["--set", *args.set] if args.set else []
    command += ["--rows", *args.rows] if args.rows else []
    command += ["--data_path", args.data_path] if args.data_path else []
    return command


def summarise(run: StudyRun, bootstrap: int, docs: list[str]) -> dict:
    """``OUT/summary.json``, ``OUT/summary.md`` and the ``--doc`` blocks, from the finished cells."""
    runs = load_runs(run.out)
    if not runs.cells:
        raise SystemExit(f"no finished cells under {run.out}/runs: run the study first")
    summary = Summariser(run.study, run.preset, runs, run.out, bootstrap).summary()
    summary["machine"] = machine_description(__import__("torch").device("cpu"))
    write_json(os.path.join(run.out, "summary.json"), summary)
    text = summary_markdown(summary, {k: r.label for k, r in run.study.rows.items()})
    with open(os.path.join(run.out, "summary.md"), "w") as handle:
        handle.write(text)
    for path in docs:
        with open(path) as handle:
            page = handle.read()
        try:
            page = replace_block(page, f"{run.study.name}-{run.preset.name}", text)
        except ValueError as err:
            raise SystemExit(f"--doc {path}: {err}") from None
        with open(path, "w") as handle:
            handle.write(page)
    return summary


def study_run(args) -> StudyRun:
    try:
        study = load_study(args.study)
        preset = apply_overrides(study.preset(args.preset or next(iter(study.presets))), args.set)
    except StudyError as err:
        raise SystemExit(str(err)) from None
    sections = args.sections or list(study.sections)
    unknown = [s for s in sections if s not in study.sections] + [
        r for r in args.rows or [] if r not in study.rows
    ]
    if unknown:
        raise SystemExit(
            f"{study.path}: no section or row {unknown}; sections {list(study.sections)}, rows {list(study.rows)}"
        )
    name = f"{study.name}_{preset.name}"
    out = args.out or os.path.join("runs", "study", name)
    scratch = args.scratch or os.path.join("runs", "study-scratch", name)
    seeds = args.seeds or list(preset.seeds)
    return StudyRun(
        study,
        preset,
        os.path.abspath(out),
        os.path.abspath(scratch),
        seeds,
        sections,
        args.rows,
        args.data_path,
        keep_teachers=getattr(args, "keep_teachers", False),
    )


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    run = study_run(args)
    os.makedirs(run.out, exist_ok=True)
    if args.task:  # a worker of run_tasks
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        run.run_task(parse_task(args.task))
        return {}
    if not args.summarise:
        run.check_flags()
        started, command = time.time(), "python -m hrkd_trainer.study " + " ".join(argv)
        try:
            run_tasks(run, tasks_of(run), args.jobs, worker_command(args, run))
        except BaseException as stop:  # a failed task or a kill: the time spent still counts
            record_invocation(run.out, command, started, f"stopped before its end: {stop!r}"[:300])
            raise
        record_invocation(run.out, command, started)
    summary = summarise(run, args.bootstrap, args.doc)
    log(f"summary written to {run.out}/summary.md")
    return summary


def console() -> None:
    """The ``hrkd-study`` command."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated (SIGTERM)"))  # so the stop is recorded
    main()
