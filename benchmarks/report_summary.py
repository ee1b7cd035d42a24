"""The statistics of ``benchmarks/report.py``: the finished runs read back, summarised and tested.

Everything here reads the finished runs under ``OUT/runs`` (no training), so ``--summarise`` rebuilds
the summary from committed results. Intervals are paired by seed (t on n − 1 degrees of freedom); the
McNemar test and the bootstrap use the pooled per-example test predictions of the same seeds. The
paper's claims get a verdict from those tests; ``report_page`` writes them out.
"""

from __future__ import annotations

import json
import os

from report_runs import (
    ABLATION_STEPS,
    BASELINE,
    FEW_SHOT_BASE,
    FEW_SHOT_ROWS,
    ROWS,
    TABLE_ROWS,
    ablation_rows,
)

from hrkd_trainer.significance import mcnemar, mean_std, paired_bootstrap, paired_t


# ---------------------------------------------------------------------------- reading the runs
def load_cells(out: str) -> dict:
    """``cells[(fraction, lr)][row][seed]``, ``teachers[kind][seed]`` (the tables' teachers, which are
    tested) and ``teacher_seconds`` (every share's teachers) from ``OUT/runs``."""
    cells, teachers, teacher_seconds = {}, {}, 0.0
    root = os.path.join(out, "runs")
    for share in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for seed_dir in sorted(os.listdir(os.path.join(root, share))):
            for name in sorted(os.listdir(os.path.join(root, share, seed_dir))):
                if not name.endswith(".json"):
                    continue
                with open(os.path.join(root, share, seed_dir, name)) as handle:
                    run = json.load(handle)
                if name.startswith("teacher-"):
                    teacher_seconds += run["seconds"]
                    if "test_accuracy" in run:
                        teachers.setdefault(run["kind"], {})[run["seed"]] = run
                else:
                    key = (round(run["fraction"], 6), run["learning_rate"])
                    cells.setdefault(key, {}).setdefault(run["row"], {})[run["seed"]] = run
    return {"cells": cells, "teachers": teachers, "teacher_seconds": teacher_seconds}


def domains_of(by_seed: dict) -> list[str]:
    return [d for d in next(iter(by_seed.values()))["test_accuracy"] if d != "average"]


def accuracy_summary(by_seed: dict) -> dict:
    """Mean ± std over seeds (fractions) of each domain's test accuracy and the average."""
    keys = [*domains_of(by_seed), "average"]
    seeds = sorted(by_seed)
    return {
        "seeds": seeds,
        **{
            k: dict(zip(("mean", "std"), mean_std([by_seed[s]["test_accuracy"][k] for s in seeds])))
            for k in keys
        },
    }


def paired(a: dict, b: dict, bootstrap: int) -> dict | None:
    """``a`` − ``b`` (runs by seed) over their common seeds: paired t per domain and on the average,
    McNemar over the pooled test predictions, paired bootstrap over test examples."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    domains = domains_of(a)
    entry = {"seeds": seeds}
    for key in [*domains, "average"]:
        entry[key] = paired_t(
            [a[s]["test_accuracy"][key] for s in seeds], [b[s]["test_accuracy"][key] for s in seeds]
        ).__dict__
    pooled = [[c for s in seeds for d in domains for c in runs[s]["test_correct"][d]] for runs in (a, b)]
    entry["mcnemar"] = mcnemar(*pooled).__dict__
    if bootstrap:
        rows = [[[runs[s]["test_correct"][d] for d in domains] for s in seeds] for runs in (a, b)]
        entry["bootstrap"] = dict(zip(("mean", "low", "high"), paired_bootstrap(*rows, bootstrap)))
    return entry


# ---------------------------------------------------------------------------- the summary
def summarise(args, loaded: dict) -> dict:
    preset, cells = args.preset, loaded["cells"]
    table = cells.get((round(preset.train_fraction, 6), preset.learning_rate), {})
    summary: dict = {"preset": preset.__dict__, "sections": {}}
    if loaded["teachers"]:
        summary["teachers"] = {kind: accuracy_summary(runs) for kind, runs in loaded["teachers"].items()}
    base = table.get(BASELINE, {})
    for section, keys in (
        ("tables", [r.key for r in TABLE_ROWS]),
        ("ablations", ["hrkd-hrkd", *[r.key for r in ablation_rows()]]),
    ):
        rows = {}
        for previous, key in zip([None, *keys], keys):
            if key not in table:
                continue
            rows[key] = {
                "label": ROWS[key].label
                if section == "tables" or key != "hrkd-hrkd"
                else "HRKD (paper's graph, frozen)",
                **accuracy_summary(table[key]),
                "train_seconds": mean_std([r["train_seconds"] for r in table[key].values()])[0],
                "vs_uniform": paired(table[key], base, args.bootstrap) if key != BASELINE and base else None,
            }
            if section == "ablations" and previous in table:
                rows[key]["vs_previous"] = paired(table[key], table[previous], 0)
            if table[key][next(iter(table[key]))].get("mean_ratios"):
                rows[key]["mean_ratios"] = mean_matrix([r["mean_ratios"] for r in table[key].values()])
                rows[key]["ratio_spread"] = max(r["ratio_spread"] for r in table[key].values())
        if rows:
            summary["sections"][section] = rows
    if table:
        first = next(iter(next(iter(table.values())).values()))
        summary["test_sizes"] = {d: len(c) for d, c in first["test_correct"].items()}
        summary["train_sizes"] = first["train_sizes"]
        summary["domains"] = list(summary["test_sizes"])
    few = few_shot_summary(args, cells)
    if few:
        summary["sections"]["few_shot"] = few
    summary["claims"] = claims(summary)
    path = os.path.join(args.out, "invocations.json")
    if os.path.exists(path):
        with open(path) as handle:
            summary["invocations"] = json.load(handle)
    summary["compute_seconds"] = sum(
        r["train_seconds"] for by_row in cells.values() for runs in by_row.values() for r in runs.values()
    )
    summary["compute_seconds"] += loaded["teacher_seconds"]
    return summary


def mean_matrix(matrices: list) -> list:
    return [
        [sum(m[i][j] for m in matrices) / len(matrices) for j in range(len(matrices[0][0]))]
        for i in range(len(matrices[0]))
    ]


def few_shot_summary(args, cells: dict) -> dict | None:
    """Per rate: each row's average accuracy, its improvement rate over the base row
    100 · (acc − acc_base) / acc_base (mean ± std over seeds, as Figure 2 plots it) and the paired
    interval of the difference in points against the base."""
    path = os.path.join(args.out, "few_shot_lr.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        choice = json.load(handle)
    preset, lr = args.preset, choice["learning_rate"]
    rates = {}
    for rate in sorted(preset.few_shot_rates):
        runs = cells.get((round(preset.few_shot_pool * rate, 6), lr), {})
        base = runs.get(FEW_SHOT_BASE)
        if not base:
            continue
        entry = {
            "fraction": preset.few_shot_pool * rate,
            "train_sizes": next(iter(base.values()))["train_sizes"],
            "rows": {},
        }
        for key in FEW_SHOT_ROWS:
            if key not in runs:
                continue
            seeds = sorted(set(runs[key]) & set(base))
            gains = [
                100
                * (runs[key][s]["test_accuracy"]["average"] - base[s]["test_accuracy"]["average"])
                / base[s]["test_accuracy"]["average"]
                for s in seeds
            ]
            entry["rows"][key] = {
                **accuracy_summary(runs[key]),
                "improvement_rate": dict(zip(("mean", "std"), mean_std(gains))),
                "improvement_by_seed": dict(zip(seeds, gains)),
                "vs_base": paired(runs[key], base, 0) if key != FEW_SHOT_BASE else None,
            }
        rates[f"{rate:g}"] = entry
    return {"learning_rate": choice, "rates": rates} if rates else None


# ---------------------------------------------------------------------------- the paper's claims
def verdict(test: dict | None, direction: int = 1) -> str:
    """supported / contradicted when the 95 % interval excludes zero, else not resolved."""
    if not test or test.get("low") is None or test["low"] != test["low"]:  # NaN: one seed
        return "not tested"
    low, high = direction * test["low"], direction * test["high"]
    if min(low, high) > 0:
        return "supported"
    if max(low, high) < 0:
        return "contradicted"
    return "not resolved (the interval includes 0)"


def with_mcnemar(text: str, mcnemar: dict | None, direction: int = 1) -> str:
    """Add the example-level view when the seed-level interval cannot decide: the pooled McNemar test."""
    if not mcnemar or not text.startswith("not resolved") or mcnemar["p"] >= 0.05:
        return text
    favours = (mcnemar["only_a"] - mcnemar["only_b"]) * direction > 0
    return f"{text}; at the example level McNemar p {p_value(mcnemar['p'])} {'favours' if favours else 'goes against'} the claim"


def p_value(p: float) -> str:
    """``= 0.037`` or ``< 0.001`` (three decimals would print a tiny p as 0.000)."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def claims(summary: dict) -> list[dict]:
    tables = summary["sections"].get("tables", {})
    out = []

    def against(a: str, b: str, claim: str, paper: str) -> None:
        if a not in tables or b not in tables:
            return
        # the difference a − b, from the two rows' intervals against the same uniform baseline is not
        # paired; pair them directly instead
        out.append({"claim": claim, "paper": paper, "rows": [a, b], "key": (a, b)})

    against(
        "hrkd-hrkd", "hrkd-tinybert", "HRKD > TinyBERT-KD (same HRKD-teacher)", "+0.5 (MNLI), +2.6 (Amazon)"
    )
    against(
        "hrkd-hrkd",
        "meta-metadistill",
        "HRKD > Meta-KD (Meta-teacher → Meta-distillation)",
        "+0.5 (MNLI), +1.1 (Amazon)",
    )
    return out


def resolve_claims(summary: dict, table: dict, bootstrap: int) -> None:
    """Fill in the pairwise tests of the claims (needs the runs, not only the summary)."""
    resolved = []
    for claim in summary["claims"]:
        a, b = claim.pop("key")
        test = paired(table[a], table[b], bootstrap)
        resolved.append(
            {
                **claim,
                "difference": test["average"],
                "mcnemar": test["mcnemar"],
                "verdict": with_mcnemar(verdict(test["average"]), test["mcnemar"]),
            }
        )
    ablations = summary["sections"].get("ablations", {})
    for (switch, label), key in zip(ABLATION_STEPS, [r.key for r in ablation_rows()]):
        test = (ablations.get(key) or {}).get("vs_previous")
        if test:
            resolved.append({
                "claim": f"removing {switch.replace('_', ' ')} hurts ({label}, against the row above)",
                "paper": "every step lowers the average (Table 4: −0.2, −0.4, −0.4, −1.6)",
                "difference": test["average"], "mcnemar": test["mcnemar"],
                "verdict": with_mcnemar(verdict(test["average"], -1), test["mcnemar"], -1),
            })  # fmt: skip
    few = summary["sections"].get("few_shot")
    if few and len(few["rates"]) > 1:
        rates = list(few["rates"])
        small, large = few["rates"][rates[0]]["rows"], few["rates"][rates[-1]]["rows"]
        if "hrkd-hrkd" in small and "hrkd-hrkd" in large:
            a, b = small["hrkd-hrkd"]["improvement_by_seed"], large["hrkd-hrkd"]["improvement_by_seed"]
            seeds = sorted(set(a) & set(b), key=str)
            test = paired_t([a[s] for s in seeds], [b[s] for s in seeds]).__dict__
            resolved.append({
                "claim": f"HRKD's few-shot gain over BERT-single → TinyBERT-KD grows as data shrinks (improvement rate at {float(rates[0]):.0%} − at {float(rates[-1]):.0%} of the pool, in % points)",
                "paper": "10.1 % at 2 % of MNLI, smaller at 5-20 %", "difference": test, "verdict": verdict(test), "unit": "rate",
            })  # fmt: skip
        for key in ("hrkd-hrkd", "meta-metadistill"):
            test = (small.get(key) or {}).get("vs_base")
            if test:
                resolved.append({
                    "claim": f"{ROWS[key].label} beats BERT-single → TinyBERT-KD at the smallest rate ({float(rates[0]):.0%})",
                    "paper": "yes, both (Figure 2)", "difference": test["average"], "mcnemar": test["mcnemar"],
                    "verdict": with_mcnemar(verdict(test["average"]), test["mcnemar"]),
                })  # fmt: skip
    summary["claims"] = resolved
