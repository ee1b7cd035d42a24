#!/usr/bin/env python
"""HRKD vs the uniform multi-domain baseline on the VADER quick start, over several seeds.

Runs ``recipes/vader.py`` once per (variant, seed) with the same teacher, then writes
``OUT/summary.json`` and ``OUT/summary.md``: per-domain test accuracy (mean ± std over seeds), dev
average, distillation wall time and the final ratio entropy. Finished runs are reused, so an
interrupted sweep continues where it stopped.

    python benchmarks/vader_seeds.py --teacher runs/vader/teacher --out runs/seeds --seeds 42 1 2
    python benchmarks/vader_seeds.py ... --variant learned-1e-3="--method hrkd --relational_mode learned \
        --relational_learning_rate 1e-3"
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

import torch

from hrkd_trainer.relational import normalised_entropy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    "multi-domain": "--method multi-domain",
    "hrkd-frozen": "--method hrkd --relational_mode frozen",
    "hrkd-learned": "--method hrkd --relational_mode learned",
}


def entropy(ratios: list[list[float]]) -> float:
    """Mean normalised entropy of the ratio rows (1 = uniform), as logged as ``ratio_entropy``."""
    return normalised_entropy(torch.tensor(ratios)).item()


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def ratio_extremes(run_dir: str) -> tuple[float, float] | None:
    """(lowest normalised ratio entropy, largest single ratio) over the logged training history."""
    path = os.path.join(run_dir, "ratio_history.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        history = json.load(handle)["history"]
    if not history:
        return None
    return (
        min(entropy(h["ratios"]) for h in history),
        max(max(row) for h in history for row in h["ratios"]),
    )


def summarise(out: str, runs: dict[str, dict[int, dict]]) -> dict:
    summary = {}
    for variant, by_seed in runs.items():
        if not by_seed:
            continue
        first = next(iter(by_seed.values()))
        domains = first["domains"]
        row = {"seeds": sorted(by_seed), "test": {}, "dev_avg": None}
        for name in [*domains, "average"]:
            row["test"][name] = mean_std([100 * r["student"]["accuracy"][name] for r in by_seed.values()])
        row["dev_avg"] = mean_std([100 * r["student"]["dev_accuracy"]["average"] for r in by_seed.values()])
        row["distillation_seconds"] = mean_std(
            [r["wall_time_seconds"]["distillation"] for r in by_seed.values()]
        )
        ratios = [r.get("final_ratios") for r in by_seed.values() if r.get("final_ratios")]
        row["final_ratio_entropy"] = mean_std([entropy(r) for r in ratios]) if ratios else None
        extremes = [ratio_extremes(os.path.join(out, variant, f"seed{s}")) for s in by_seed]
        extremes = [e for e in extremes if e]
        row["min_ratio_entropy"] = min(e[0] for e in extremes) if extremes else None
        row["max_ratio"] = max(e[1] for e in extremes) if extremes else None
        row["per_seed_test_avg"] = {s: 100 * r["student"]["accuracy"]["average"] for s, r in by_seed.items()}
        summary[variant] = row
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    if summary:
        domains = list(next(iter(summary.values()))["test"])
        lines = [
            "| method | "
            + " | ".join(domains)
            + " | dev avg | distil s | final / min ratio entropy | max ratio |",
            "|---" * (len(domains) + 5) + "|",
        ]
        for variant, row in summary.items():
            cells = [f"{m:.1f} ± {s:.1f}" for m, s in row["test"].values()]
            cells.append(f"{row['dev_avg'][0]:.1f} ± {row['dev_avg'][1]:.1f}")
            cells.append(f"{row['distillation_seconds'][0]:.0f}")
            ent = row["final_ratio_entropy"]
            cells.append("–" if ent is None else f"{ent[0]:.4f} / {row['min_ratio_entropy']:.4f}")
            cells.append("–" if row["max_ratio"] is None else f"{row['max_ratio']:.3f}")
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        with open(os.path.join(out, "summary.md"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, help="a fine-tuned VADER teacher (RUN_DIR/teacher)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--only", nargs="*", help="run only these variants")
    parser.add_argument("--variant", action="append", default=[], help="NAME=FLAGS: an extra variant")
    parser.add_argument("--flags", default="", help="flags added to every run")
    args = parser.parse_args()
    variants = dict(VARIANTS)
    for item in args.variant:
        name, _, flags = item.partition("=")
        variants[name] = flags
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only}
    runs: dict[str, dict[int, dict]] = {name: {} for name in variants}
    for seed in args.seeds:
        for name, flags in variants.items():
            run_dir = os.path.join(args.out, name, f"seed{seed}")
            result = os.path.join(run_dir, "results.json")
            if not os.path.exists(result):
                command = [
                    sys.executable, os.path.join(ROOT, "recipes", "vader.py"), "--teacher", args.teacher,
                    "--baseline", "false", "--seed", str(seed), "--output_dir", run_dir, "--disable_tqdm", "true",
                    *shlex.split(flags), *shlex.split(args.flags),
                ]  # fmt: skip
                os.makedirs(run_dir, exist_ok=True)
                begin = time.time()
                with open(os.path.join(run_dir, "log.txt"), "w") as log:
                    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
                print(f"{name} seed {seed}: exit {code} in {time.time() - begin:.0f} s", flush=True)
                if code:
                    return code
            with open(result) as handle:
                runs[name][seed] = json.load(handle)
            summarise(args.out, runs)
    summarise(args.out, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
