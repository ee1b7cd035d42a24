#!/usr/bin/env python
"""Every teacher × distiller row of the paper's Tables 2-3, on the VADER data, over several seeds.

For each seed, runs ``recipes/vader.py`` once per row. A row whose teacher type was already trained
for that seed reuses it (``--teacher``), so the HRKD-teacher is trained once and distilled three ways.
Every row's student starts from the same *pretrained* layers (``--student``: the ``--teacher_init``
of ``--flags``, else the offline MiniLM), never from a fine-tuned teacher, so that the rows compare
methods, not initialisations.
Writes ``OUT/summary.json`` and ``OUT/summary.md``: per-domain test accuracy and the dev average
(mean ± std over seeds) for the teachers and the students. Finished runs are reused, so an
interrupted sweep continues. Checkpoint folders are deleted after each run (the exports and
``results.json`` stay).

    python benchmarks/paper_tables.py --out runs/tables --seeds 42 1 2 \\
        --flags "--max_train_samples_per_domain 240 --max_eval_samples_per_domain 200"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: (row name, teacher type, distiller), in the order of the paper's tables
ROWS = [
    ("single → TinyBERT-KD", "single", "tinybert"),
    ("mix → TinyBERT-KD", "mix", "tinybert"),
    ("mtl → TinyBERT-KD", "mtl", "tinybert"),
    ("meta → Meta-distillation", "meta", "meta-distill"),
    ("hrkd → TinyBERT-KD", "hrkd", "tinybert"),
    ("hrkd → multi-domain KD", "hrkd", "multi-domain"),
    ("hrkd → HRKD", "hrkd", "hrkd"),
]
TEACHER_NAMES = {
    "single": "BERT-single",
    "mix": "BERT-mix",
    "mtl": "BERT-mtl",
    "meta": "Meta-teacher",
    "hrkd": "HRKD-teacher",
}


def slug(teacher: str, method: str) -> str:
    return f"{teacher}-{method}"


def with_dev(model_results: dict) -> dict:
    """Test accuracy per domain and average, then the dev average (fractions)."""
    return {**model_results["accuracy"], "dev average": model_results["dev_accuracy"]["average"]}


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(out: str, teachers: dict, students: dict) -> dict:
    """``teachers[type][seed]`` and ``students[row][seed]`` are accuracy dicts (fractions): test per
    domain, test average, dev average."""

    def rows_of(table: dict) -> dict:
        rows = {}
        for name, by_seed in table.items():
            if not by_seed:
                continue
            keys = list(next(iter(by_seed.values())))
            rows[name] = {
                "seeds": sorted(by_seed),
                "test": {k: mean_std([100 * acc[k] for acc in by_seed.values()]) for k in keys},
            }
        return rows

    summary = {
        "teachers": rows_of({TEACHER_NAMES[t]: v for t, v in teachers.items()}),
        "students": rows_of(students),
    }
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2)
    lines = []
    for part in ("teachers", "students"):
        rows = summary[part]
        if not rows:
            continue
        columns = list(next(iter(rows.values()))["test"])
        lines += [f"| {part[:-1]} | " + " | ".join(columns) + " | seeds |", "|---" * (len(columns) + 2) + "|"]
        for name, row in rows.items():
            cells = [f"{m:.1f} ± {s:.1f}" for m, s in row["test"].values()]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {len(row['seeds'])} |")
        lines.append("")
    with open(os.path.join(out, "summary.md"), "w") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines), flush=True)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument(
        "--only", nargs="*", help="run only these rows (teacher-method slugs, e.g. hrkd-hrkd)"
    )
    parser.add_argument("--flags", default="", help="flags added to every run (caps, epochs, ...)")
    parser.add_argument("--recipe", default=os.path.join(ROOT, "recipes", "vader.py"))
    args = parser.parse_args()
    rows = [r for r in ROWS if not args.only or slug(r[1], r[2]) in args.only]
    flags = shlex.split(args.flags)
    student_init = flags[flags.index("--teacher_init") + 1] if "--teacher_init" in flags else None
    if student_init is None:
        sys.path.insert(0, ROOT)
        from hrkd_trainer.assets import offline_minilm_path

        student_init = offline_minilm_path()
    teachers: dict[str, dict[int, dict]] = {}
    students: dict[str, dict[int, dict]] = {name: {} for name, _, _ in rows}
    for seed in args.seeds:
        for name, teacher_type, method in rows:
            run_dir = os.path.join(args.out, f"seed{seed}", slug(teacher_type, method))
            result = os.path.join(run_dir, "results.json")
            if not os.path.exists(result):
                trained = [
                    os.path.join(args.out, f"seed{seed}", slug(t, m), "teacher")
                    for _, t, m in ROWS
                    if t == teacher_type and m != method
                ]
                reuse = next(
                    (p for p in trained if os.path.exists(os.path.join(os.path.dirname(p), "results.json"))),
                    None,
                )
                command = [
                    sys.executable, args.recipe, "--seed", str(seed), "--output_dir", run_dir, "--disable_tqdm", "true",
                    "--baseline", "false", "--method", method, "--teacher_type", teacher_type,
                    "--student", student_init, *(["--teacher", reuse] if reuse else []), *flags,
                ]  # fmt: skip
                os.makedirs(run_dir, exist_ok=True)
                begin = time.time()
                with open(os.path.join(run_dir, "log.txt"), "w") as log:
                    log.write(" ".join(shlex.quote(c) for c in command) + "\n")
                    log.flush()
                    code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
                print(
                    f"{slug(teacher_type, method)} seed {seed}: exit {code} in {time.time() - begin:.0f} s",
                    flush=True,
                )
                if code:
                    return code
                for entry in os.listdir(run_dir):  # checkpoints (optimizer states): GBs per run, not needed
                    if entry.endswith("_checkpoints"):
                        shutil.rmtree(os.path.join(run_dir, entry))
            with open(result) as handle:
                results = json.load(handle)
            students[name][seed] = with_dev(results["student"])
            if results["teacher_type"] != "given":
                teachers.setdefault(teacher_type, {})[seed] = with_dev(results["teacher"])
            summarise(args.out, teachers, students)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
