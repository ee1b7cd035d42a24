#!/usr/bin/env python
"""Does distillation beat training the same small student without a teacher, by more than the noise?
Runs a shipped recipe once per seed with one fine-tuned teacher reused (so the teacher-output cache is
built once), each run training the distilled student and the no-KD baseline from the same
initialisation on the same data and steps; then pairs them.

    hrkd-distill vader-mpnet                                   # trains the teacher (seed 42)
    python benchmarks/compression.py --teacher runs/vader_mpnet/teacher --include 42=runs/vader_mpnet \\
        --seeds 1 2 --out benchmarks/results/compression_vader_mpnet

Writes ``OUT/summary.json`` and ``OUT/summary.md``: teacher, student and baseline test accuracy per
domain (mean ± std over seeds), the student's share of the teacher's accuracy, the paired difference
student − baseline (t interval over seeds, exact McNemar over the pooled test predictions, paired
bootstrap over test examples), parameters, weights on disk and the interleaved inference speed-up.
Each finished seed is kept (``OUT/runs/seed<S>.json``), so a killed sweep resumes after it; the run
folders go to ``--scratch`` (default ``runs/compression/<name of OUT>``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hrkd_trainer.results import without_local_paths, write_json  # noqa: E402
from hrkd_trainer.significance import mcnemar, mean_std, paired_bootstrap, paired_t  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, help="a fine-tuned teacher export (RUN_DIR/teacher)")
    parser.add_argument("--recipe", default="vader-mpnet", help="the shipped recipe (or YAML) to run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", required=True)
    parser.add_argument("--scratch", help="where the run folders go (default runs/compression/<name of OUT>)")
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="SEED=RUN_DIR",
        help="a finished run of the same recipe and teacher to count as that seed (e.g. the run that trained "
        "the teacher: 42=runs/vader_mpnet)",
    )
    parser.add_argument("--flags", default="", help="flags added to every run, e.g. '--num_train_epochs 1'")
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap resamples")
    parser.add_argument(
        "--summarise", action="store_true", help="only rebuild the summary from finished seeds"
    )
    return parser.parse_args(argv)


def run_seed(args, seed: int, scratch: str) -> dict | None:
    """Run the recipe for ``seed`` (unless finished) → its record: results.json and the predictions."""
    record_path = os.path.join(args.out, "runs", f"seed{seed}.json")
    if os.path.exists(record_path):
        with open(record_path) as handle:
            return json.load(handle)
    if args.summarise:
        return None
    run_dir = os.path.join(scratch, f"seed{seed}")
    os.makedirs(run_dir, exist_ok=True)
    command = [
        sys.executable, "-m", "hrkd_trainer", args.recipe, "--teacher", args.teacher, "--seed", str(seed),
        "--output_dir", run_dir, "--disable_tqdm", "true", "--resume_from_checkpoint", "true", *shlex.split(args.flags),
    ]  # fmt: skip
    begin = time.time()
    with open(os.path.join(run_dir, "log.txt"), "a") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    print(f"seed {seed}: exit {code} in {time.time() - begin:.0f} s ({run_dir}/log.txt)", flush=True)
    if code:
        raise SystemExit(f"seed {seed} failed: see {run_dir}/log.txt")
    return record_run(args, seed, run_dir)


def record_run(args, seed: int, run_dir: str) -> dict:
    """The record of a finished run folder: its results.json (local paths removed) and which test
    examples the student and the no-KD baseline got right; stored under ``OUT/runs``."""
    with open(os.path.join(run_dir, "results.json")) as handle:
        results = json.load(handle)
    with open(os.path.join(run_dir, "test_predictions.json")) as handle:
        examples = json.load(handle)["examples"]
    correct = {
        who: {d: [p == y for p, y in zip(rows[key], rows["label"])] for d, rows in examples.items()}
        for who, key in (("student", "prediction"), ("baseline", "baseline_prediction"))
    }
    record = {"seed": seed, "results": without_local_paths(results, run_dir), "correct": correct}
    write_json(os.path.join(args.out, "runs", f"seed{seed}.json"), record)
    return record


def percent(values) -> list[float]:
    return [100 * v for v in values]


def summarise(args, records: list[dict]) -> dict:
    first = records[0]["results"]
    domains = first["domains"]
    names = [*domains, "average"]
    accuracy = {
        who: {n: mean_std(percent(r["results"][who]["accuracy"][n] for r in records)) for n in names}
        for who in ("teacher", "student", "baseline")
    }
    student = [100 * r["results"]["student"]["accuracy"]["average"] for r in records]
    baseline = [100 * r["results"]["baseline"]["accuracy"]["average"] for r in records]
    teacher = [100 * r["results"]["teacher"]["accuracy"]["average"] for r in records]
    test = paired_t(student, baseline)
    per_domain = {
        d: paired_t(
            percent(r["results"]["student"]["accuracy"][d] for r in records),
            percent(r["results"]["baseline"]["accuracy"][d] for r in records),
        ).__dict__
        for d in domains
    }
    pooled_s = [x for r in records for d in domains for x in r["correct"]["student"][d]]
    pooled_b = [x for r in records for d in domains for x in r["correct"]["baseline"][d]]
    rows_s = [[r["correct"]["student"][d] for d in domains] for r in records]
    rows_b = [[r["correct"]["baseline"][d] for d in domains] for r in records]
    boot = [100 * v for v in paired_bootstrap(rows_s, rows_b, args.bootstrap)]
    speedups = [r["results"]["student"]["speedup"] for r in records]
    summary = {
        "recipe": args.recipe,
        "seeds": [r["seed"] for r in records],
        "domains": domains,
        "test_examples": {d: len(records[0]["correct"]["student"][d]) for d in domains},
        "accuracy": accuracy,
        "retention": mean_std([s / t for s, t in zip(student, teacher)]),
        "student_minus_baseline": {
            "average": test.__dict__,
            "per_domain": per_domain,
            "mcnemar": mcnemar(pooled_s, pooled_b).__dict__,
            "bootstrap": dict(zip(("mean", "low", "high"), boot)),
        },
        "parameters": {"teacher": first["teacher"]["parameters"], "student": first["student"]["parameters"]},
        "compression": first["compression"],
        "weights_bytes": {k: first[k].get("weights_bytes") for k in ("teacher", "student")},
        "size_ratio": first.get("size_ratio"),
        "speedup": {
            "per_seed": speedups,
            "spread": [r["results"]["student"].get("speedup_spread") for r in records],
            "median_of_seeds": statistics.median(speedups),
        },
        "wall_time_seconds": {
            k: mean_std([r["results"]["wall_time_seconds"].get(k, 0.0) for r in records])
            for k in first["wall_time_seconds"]
        },
        "machine": first.get("machine"),
        "command": " ".join(sys.argv),
    }
    write_json(os.path.join(args.out, "summary.json"), summary)
    text = format_summary(summary)
    with open(os.path.join(args.out, "summary.md"), "w") as handle:
        handle.write(text)
    print(text)
    return summary


def format_summary(summary: dict) -> str:
    domains = summary["domains"]
    names = [*domains, "average"]
    seeds = len(summary["seeds"])
    sizes = " / ".join(str(summary["test_examples"][d]) for d in domains)
    lines = [
        f"Test accuracy (%), mean ± std over {seeds} seeds ({', '.join(map(str, summary['seeds']))}); one teacher; "
        f"full test splits ({sizes} examples)",
        "",
        "| model | " + " | ".join(names) + " | parameters | weights on disk | speed-up |",
        "|---" * (len(names) + 4) + "|",
    ]
    labels = {"teacher": "teacher", "student": "student (KD)", "baseline": "student (no KD)"}
    params, disk = summary["parameters"], summary["weights_bytes"]
    speed = summary["speedup"]
    for who, label in labels.items():
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in (summary["accuracy"][who][n] for n in names)]
        model = "teacher" if who == "teacher" else "student"
        size = f"{disk[model] / 2**20:.0f} MB" if disk.get(model) else "–"
        fast = "1.0×" if who == "teacher" else f"{speed['median_of_seeds']:.1f}×"
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {params[model] / 1e6:.1f} M | {size} | {fast} |"
        )
    diff = summary["student_minus_baseline"]
    avg, mc, boot = diff["average"], diff["mcnemar"], diff["bootstrap"]
    retention = summary["retention"]
    spreads = [s for s in speed["spread"] if s]
    lines += [
        "",
        f"- Compression: {summary['compression']:.2f}× fewer parameters"
        + (f", {summary['size_ratio']:.2f}× smaller on disk" if summary.get("size_ratio") else "")
        + "; speed-up per seed "
        + ", ".join(
            f"{s:.1f}× [{q['q1']:.1f}-{q['q3']:.1f}]" if q else f"{s:.1f}×"
            for s, q in zip(speed["per_seed"], speed["spread"])
        )
        + (f" (median [quartiles] of {spreads[0]['repeats']} interleaved repeats)" if spreads else ""),
        f"- The student keeps {100 * retention[0]:.1f} % ± {100 * retention[1]:.1f} of the teacher's average accuracy.",
        f"- Student − baseline, average: {avg['mean']:+.2f} points, 95 % t interval over seeds "
        f"[{avg['low']:+.2f}, {avg['high']:+.2f}], p = {avg['p']:.3f}; McNemar over pooled predictions "
        f"{mc['only_a']} / {mc['only_b']} (only KD right / only no-KD right), p = {mc['p']:.2g}; paired bootstrap "
        f"95 % [{boot['low']:+.2f}, {boot['high']:+.2f}].",
        "- Per domain (mean paired difference): "
        + ", ".join(f"{d} {diff['per_domain'][d]['mean']:+.1f}" for d in domains)
        + ".",
    ]
    wall = summary["wall_time_seconds"]
    lines.append(
        "- Wall time per seed (s, mean): " + ", ".join(f"{k} {v[0]:.0f}" for k, v in wall.items()) + "."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    scratch = args.scratch or os.path.join(
        ROOT, "runs", "compression", os.path.basename(os.path.normpath(args.out))
    )
    os.makedirs(os.path.join(args.out, "runs"), exist_ok=True)
    included = {}
    for item in args.include:
        seed, _, run_dir = item.partition("=")
        included[int(seed)] = run_dir
    records = []
    for seed, run_dir in included.items():
        path = os.path.join(args.out, "runs", f"seed{seed}.json")
        if os.path.exists(path):
            with open(path) as handle:
                records.append(json.load(handle))
        else:
            records.append(record_run(args, seed, run_dir))
    records += [
        r for r in (run_seed(args, s, scratch) for s in args.seeds if s not in included) if r is not None
    ]
    if not records:
        raise SystemExit("no finished seed to summarise")
    summarise(args, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
