#!/usr/bin/env python
"""The few-shot study of the paper (§3.5, Figure 2) on the VADER data.

For each sample rate, runs ``benchmarks/paper_tables.py`` with ``--few_shot_fraction RATE`` for the
rows the figure compares: BERT_B-single → TinyBERT-KD (the base), Meta-teacher → Meta-distillation
and HRKD-teacher → HRKD. Teacher and student train on the first RATE of each domain's train split,
the student at the paper's few-shot learning rate (5e-5, ``--few_shot_learning_rate``); dev and test
are whole. Writes ``OUT/few_shot.json`` and ``OUT/few_shot.md``: average test accuracy per row and
the improvement rate over the base, ``100 · (acc − acc_base) / acc_base``, as Figure 2 plots it.

    python benchmarks/few_shot.py --out runs/few_shot --seeds 42 1 2
    python benchmarks/few_shot.py --out runs/few_shot --rates 0.02 --flags "--max_eval_samples_per_domain 200"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = "single → TinyBERT-KD"
ROWS = {"single-tinybert": BASE, "meta-meta-distill": "meta → Meta-distillation", "hrkd-hrkd": "hrkd → HRKD"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--flags", default="", help="flags added to every run")
    args = parser.parse_args()
    table = {}
    for rate in args.rates:
        out = os.path.join(args.out, f"rate{rate:g}")
        command = [
            sys.executable, os.path.join(ROOT, "benchmarks", "paper_tables.py"), "--out", out,
            "--seeds", *map(str, args.seeds), "--only", *ROWS, "--flags", f"--few_shot_fraction {rate} {args.flags}",
        ]  # fmt: skip
        code = subprocess.call(command, cwd=ROOT)
        if code:
            return code
        with open(os.path.join(out, "summary.json")) as handle:
            students = json.load(handle)["students"]
        averages = {name: students[name]["test"]["average"][0] for name in ROWS.values() if name in students}
        base = averages[BASE]
        table[rate] = {
            name: {"average": acc, "improvement_rate": 100 * (acc - base) / base}
            for name, acc in averages.items()
        }
    with open(os.path.join(args.out, "few_shot.json"), "w") as handle:
        json.dump(table, handle, indent=2)
    names = list(ROWS.values())
    lines = ["| rate | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for rate, row in table.items():
        cells = [
            f"{row[n]['average']:.1f} ({row[n]['improvement_rate']:+.1f} %)" if n in row else "–"
            for n in names
        ]
        lines.append(f"| {100 * rate:g} % | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "few_shot.md"), "w") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
