#!/usr/bin/env python
"""Compare loss-weighting methods under a protocol that can tell a point: same student
initialisation, data, steps and schedule for every method of a seed; one teacher per seed, trained
once and shared by that seed's methods; non-overlapping epoch orders across seeds; whole dev and test
splits; dev picks the snapshot, test reports; paired statistics against uniform KD.

    python benchmarks/compare.py --methods uniform hrkd-frozen loss-progress --seeds 5
    python benchmarks/compare.py --seeds 1 2 --train_fraction 0.05 --epochs 1 --out runs/pilot   # small

Each finished (seed, method) run is written to ``OUT/runs/seed<S>/<method>.json`` as it ends and is
reused, so a killed comparison resumes after its last finished run. Teachers, the teacher-output
cache and checkpoints go to ``--scratch`` (default ``runs/compare/<name of OUT>``, not committed); a
seed's teacher is trained once and reused (retrained deterministically if its folder is gone). ``OUT/summary.json``, ``summary.md`` and ``per_domain.png`` are rebuilt
from every finished run at the end (or alone with ``--summarise``).

Setting (the ``cpu`` defaults): VADER's four domains in their natural proportions (movie reviews
about 3× the others), the first ``--train_fraction`` of each domain's train split; teacher MiniLM-L6
(offline weights) fine-tuned per seed with one head per domain; student its *pretrained* first 3
layers (not the fine-tuned teacher's), the same initial weights for every method of a seed; the
teacher-output cache on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hrkd_trainer import (  # noqa: E402
    HRKDConfig,
    HRKDTrainer,
    MultiDomainArguments,
    MultiDomainModel,
    tokenize_splits,
)
from hrkd_trainer.assets import offline_minilm_path  # noqa: E402
from hrkd_trainer.baselines import train_teacher  # noqa: E402
from hrkd_trainer.data import load_vader  # noqa: E402
from hrkd_trainer.data.common import few_shot  # noqa: E402
from hrkd_trainer.evaluation import predict_per_domain  # noqa: E402
from hrkd_trainer.results import machine_description, write_json  # noqa: E402
from hrkd_trainer.significance import mcnemar, mean_std, paired_bootstrap, paired_t  # noqa: E402

#: method name → HRKDConfig settings (everything else is identical across methods)
METHODS = {
    "uniform": {},
    "hrkd-frozen": {"relational_mode": "frozen"},
    "hrkd-learned": {"relational_mode": "learned"},
    "uniform-noise": {"loss_weighting": "uniform-noise"},
    "loss-progress": {"loss_weighting": "loss-progress"},
    "group-dro": {"loss_weighting": "group-dro"},
    "gradient-alignment": {"loss_weighting": "gradient-alignment"},
}
BASELINE = "uniform"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[5], help="N (seeds 1..N) or a list of seeds")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "compare_vader_cpu"))
    parser.add_argument(
        "--train_fraction", type=float, default=0.08, help="first fraction of each domain's train split"
    )
    parser.add_argument(
        "--epochs", type=float, default=3.0, help="student epochs (epoch = the largest domain once)"
    )
    parser.add_argument("--teacher_epochs", type=float, default=3.0)
    parser.add_argument("--teacher_learning_rate", type=float, default=2e-4)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--per_domain_batch", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--student_layers", type=int, default=3)
    parser.add_argument("--losses", nargs="+", default=["embedding", "hidden", "prediction"])
    parser.add_argument(
        "--scratch", help="teachers, caches, checkpoints (default runs/compare/<basename of --out>)"
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap resamples")
    parser.add_argument(
        "--summarise", action="store_true", help="only rebuild the summary from finished runs"
    )
    args = parser.parse_args(argv)
    args.scratch = args.scratch or os.path.join(
        ROOT, "runs", "compare", os.path.basename(os.path.normpath(args.out))
    )
    if len(args.seeds) == 1:  # a single number N means seeds 1..N
        args.seeds = list(range(1, args.seeds[0] + 1))
    return args


def prepare_data(args, tokenizer):
    data = few_shot(load_vader(), args.train_fraction)  # dev and test stay whole
    return data, tokenize_splits(data, tokenizer, args.max_length)


def common_args(args, seed: int, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir, seed=seed, data_seed=10_000 * seed,  # seeds' epoch orders never overlap
        per_domain_train_batch_size=args.per_domain_batch, per_device_eval_batch_size=64, max_length=args.max_length,
        eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
        metric_for_best_model="avg_accuracy", save_total_limit=1, logging_steps=10, report_to="none",
        disable_tqdm=True, use_cpu=True, warmup_steps=0.1, weight_decay=0.01,
    )  # fmt: skip


def teacher_for(args, seed: int, tokenized, tokenizer, source: str) -> MultiDomainModel:
    """The seed's teacher: trained once (dev picks its epoch), then read from OUT/teachers/seed<S>."""
    folder = os.path.join(args.scratch, "teachers", f"seed{seed}")
    done = os.path.join(folder, "done.json")
    if os.path.exists(done):
        return MultiDomainModel.from_pretrained(os.path.join(folder, "teacher"))
    work = os.path.join(folder, "checkpoints")
    shutil.rmtree(work, ignore_errors=True)
    teacher_args = MultiDomainArguments(
        **common_args(args, seed, work),
        num_train_epochs=args.teacher_epochs,
        learning_rate=args.teacher_learning_rate,
    )
    begin = time.time()
    trained = train_teacher(
        "hrkd", source, tokenized, teacher_args, tokenizer, os.path.join(folder, "teacher")
    )
    shutil.rmtree(work, ignore_errors=True)
    write_json(done, {"seed": seed, "seconds": time.time() - begin})
    return trained.model


def correctness(predictions: dict, splits: dict) -> dict:
    return {d: [int(p == y) for p, y in zip(predictions[d], splits[d]["labels"])] for d in predictions}


def run_method(args, seed: int, method: str, teacher, tokenized, tokenizer, source: str) -> dict:
    path = os.path.join(args.out, "runs", f"seed{seed}", f"{method}.json")
    if os.path.exists(path):
        with open(path) as handle:
            return json.load(handle)
    work = os.path.join(args.scratch, "work", f"seed{seed}-{method}")
    shutil.rmtree(work, ignore_errors=True)  # a killed run's checkpoints must not count as this run's
    config = HRKDConfig(
        **common_args(args, seed, work), num_train_epochs=args.epochs, learning_rate=args.learning_rate,
        distill_losses=args.losses, teacher_cache=True, teacher_cache_dir=os.path.join(args.scratch, "cache"),
        **METHODS[method],
    )  # fmt: skip
    student = MultiDomainModel.from_encoder(
        source, tokenized.domains, tokenized.labels, num_hidden_layers=args.student_layers, seed=seed
    )
    trainer = HRKDTrainer(
        model=student, teacher_model=teacher, args=config, train_dataset=tokenized.train,
        eval_dataset=tokenized.dev, processing_class=tokenizer,
    )  # fmt: skip
    begin = time.time()
    output = trainer.train()
    seconds = time.time() - begin
    model = trainer.student
    test = correctness(predict_per_domain(model, tokenized.test, tokenizer.pad_token_id), tokenized.test)
    dev_best = trainer.state.best_metric
    ratios = trainer.ratio_history() if hasattr(trainer, "ratio_history") else []
    result = {
        "seed": seed,
        "method": method,
        "settings": METHODS[method],
        "test_accuracy": {d: sum(c) / len(c) for d, c in test.items()},
        "test_correct": test,
        "dev_best_avg_accuracy": dev_best,
        "best_checkpoint_step": int(trainer.state.best_model_checkpoint.rsplit("-", 1)[-1])
        if trainer.state.best_model_checkpoint
        else None,
        "steps": trainer.state.global_step,
        "train_seconds": seconds,
        "seconds_per_step": output.metrics["train_runtime"] / max(1, trainer.state.global_step),
        "final_ratios": ratios[-1]["ratios"] if ratios else None,
        "ratio_spread": max(
            (abs(r - 1 / len(test)) for h in ratios for row in h["ratios"] for r in row), default=0.0
        ),
    }
    result["test_accuracy"]["average"] = sum(result["test_accuracy"].values()) / len(test)
    write_json(path, result)
    shutil.rmtree(work, ignore_errors=True)
    return result


def load_runs(out: str) -> dict:
    runs: dict = {}
    root = os.path.join(out, "runs")
    for seed_dir in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for name in sorted(os.listdir(os.path.join(root, seed_dir))):
            with open(os.path.join(root, seed_dir, name)) as handle:
                run = json.load(handle)
            runs.setdefault(run["method"], {})[run["seed"]] = run
    return runs


def summarise(args, runs: dict) -> dict:
    """Mean ± std per method and domain, and each method against uniform KD: paired t over seeds,
    McNemar over the pooled test predictions, a paired bootstrap over test examples."""
    methods = [m for m in METHODS if m in runs]
    domains = [d for d in next(iter(next(iter(runs.values())).values()))["test_accuracy"] if d != "average"]
    summary = {"domains": domains, "methods": {}, "against_uniform": {}, "test_sizes": {}}
    for method in methods:
        seeds = sorted(runs[method])
        summary["methods"][method] = {
            "seeds": seeds,
            **{
                key: dict(
                    zip(("mean", "std"), mean_std([runs[method][s]["test_accuracy"][key] for s in seeds]))
                )
                for key in [*domains, "average"]
            },
            "seconds_per_step": mean_std([runs[method][s]["seconds_per_step"] for s in seeds])[0],
            "ratio_spread": max(runs[method][s]["ratio_spread"] for s in seeds),
        }
    first = next(iter(next(iter(runs.values())).values()))
    summary["test_sizes"] = {d: len(first["test_correct"][d]) for d in domains}
    base = runs.get(BASELINE, {})
    for method in methods:
        if method == BASELINE:
            continue
        seeds = sorted(set(base) & set(runs[method]))
        if not seeds:
            continue
        entry = {"seeds": seeds}
        for key in [*domains, "average"]:
            test = paired_t(
                [runs[method][s]["test_accuracy"][key] for s in seeds],
                [base[s]["test_accuracy"][key] for s in seeds],
            )
            entry[key] = test.__dict__
        pooled_a = [c for s in seeds for d in domains for c in runs[method][s]["test_correct"][d]]
        pooled_b = [c for s in seeds for d in domains for c in base[s]["test_correct"][d]]
        entry["mcnemar"] = mcnemar(pooled_a, pooled_b).__dict__
        rows_a = [[runs[method][s]["test_correct"][d] for d in domains] for s in seeds]
        rows_b = [[base[s]["test_correct"][d] for d in domains] for s in seeds]
        entry["bootstrap"] = dict(
            zip(("mean", "low", "high"), paired_bootstrap(rows_a, rows_b, args.bootstrap))
        )
        entry["step_time_vs_uniform"] = (
            summary["methods"][method]["seconds_per_step"] / summary["methods"][BASELINE]["seconds_per_step"]
        )
        summary["against_uniform"][method] = entry
    return summary


def markdown(summary: dict, args) -> str:
    domains = summary["domains"]
    sizes = ", ".join(f"{d} {n}" for d, n in summary["test_sizes"].items())
    lines = [
        "# Loss-weighting comparison (benchmarks/compare.py)",
        "",
        f"Test accuracy (%), mean ± std over seeds; whole test splits ({sizes}). Command: "
        f"`python benchmarks/compare.py {' '.join(sys.argv[1:])}`",
        "",
        "| method | seeds | " + " | ".join(domains) + " | average | train s/step |",
        "|---" * (len(domains) + 4) + "|",
    ]
    for method, entry in summary["methods"].items():
        cells = [f"{100 * entry[k]['mean']:.1f} ± {100 * entry[k]['std']:.1f}" for k in [*domains, "average"]]
        lines.append(
            f"| {method} | {len(entry['seeds'])} | "
            + " | ".join(cells)
            + f" | {entry['seconds_per_step']:.2f} |"
        )
    lines += [
        "",
        "Against uniform KD, paired by seed: mean difference of the average (points) with its 95 % interval and "
        "paired t-test p; McNemar over the pooled test predictions; paired bootstrap 95 % interval; the worst domain. "
        "Train time includes the per-epoch dev evaluations; the step-time overhead of each strategy, measured "
        "interleaved in one process, is in benchmarks/speed.py's results.",
        "",
        "| method | Δ average [95 % CI] | t-test p | McNemar (only m / only uniform, p) | bootstrap 95 % | worst domain Δ | train time ×uniform |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, entry in summary["against_uniform"].items():
        avg, mc, boot = entry["average"], entry["mcnemar"], entry["bootstrap"]
        worst = min(domains, key=lambda d: entry[d]["mean"])
        lines.append(
            f"| {method} | {100 * avg['mean']:+.2f} [{100 * avg['low']:+.2f}, {100 * avg['high']:+.2f}] | {avg['p']:.3f} | "
            f"{mc['only_a']} / {mc['only_b']}, p = {mc['p']:.3f} | [{100 * boot['low']:+.2f}, {100 * boot['high']:+.2f}] | "
            f"{worst} {100 * entry[worst]['mean']:+.2f} | {entry['step_time_vs_uniform']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    domains = [*summary["domains"], "average"]
    methods = list(summary["methods"])
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(domains)), 4))
    for i, method in enumerate(methods):
        entry = summary["methods"][method]
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(domains))]
        ax.bar(xs, [100 * entry[d]["mean"] for d in domains], width, yerr=[100 * entry[d]["std"] for d in domains],
               capsize=2, label=method)  # fmt: skip
    ax.set_xticks(range(len(domains)), domains)
    ax.set_ylabel("test accuracy (%)")
    low = min(100 * summary["methods"][m][d]["mean"] for m in methods for d in domains)
    ax.set_ylim(max(0, low - 8), 100)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("per-domain test accuracy, mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if not args.summarise:
        from transformers import AutoTokenizer

        source = offline_minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(source)
        _, tokenized = prepare_data(args, tokenizer)
        for seed in args.seeds:
            teacher = teacher_for(args, seed, tokenized, tokenizer, source)
            for method in args.methods:
                result = run_method(args, seed, method, teacher, tokenized, tokenizer, source)
                print(
                    f"seed {seed} {method}: test average {100 * result['test_accuracy']['average']:.2f}",
                    flush=True,
                )
    runs = load_runs(args.out)
    summary = summarise(args, runs)
    summary["machine"] = machine_description(__import__("torch").device("cpu"))
    summary["settings"] = {k: v for k, v in vars(args).items() if k not in ("summarise",)}
    write_json(os.path.join(args.out, "summary.json"), summary)
    with open(os.path.join(args.out, "summary.md"), "w") as handle:
        handle.write(markdown(summary, args))
    plot(summary, os.path.join(args.out, "per_domain.png"))
    print(markdown(summary, args))
    return summary


if __name__ == "__main__":
    main()
