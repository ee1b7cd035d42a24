"""A study's summary, from its finished files only (no training), so that ``--summarise`` rebuilds it
from committed results. The one copy of the comparison protocol:

* each row: test accuracy per domain and the average, mean ± std over seeds (fractions);
* each row against the study's baseline row (and, for ``compare: previous``, against the row above):
  :func:`paired`, i.e. the paired t interval over the common seeds per domain and on the average,
  McNemar's exact test over the pooled per-example test predictions of those seeds, and a paired
  bootstrap over test examples (all from :mod:`hrkd_trainer.significance`);
* few-shot sections: per rate, each row's improvement rate over the base row,
  100 · (acc − acc_base) / acc_base, mean ± std over seeds (as the paper's Figure 2 plots it);
* teachers (those tested), the measured size and speed of students, compute time.
"""

from __future__ import annotations

import dataclasses
import os
import statistics

from ..significance import mcnemar, mean_std, paired_bootstrap, paired_t
from .share import preset_learning_rate
from .spec import Preset, Section, Study
from .store import FinishedRuns, choice_file, read_json


def domains_of(by_seed: dict) -> list[str]:
    return [d for d in next(iter(by_seed.values()))["test_accuracy"] if d != "average"]


def accuracy_summary(by_seed: dict) -> dict:
    """Mean ± std over seeds (fractions) of each domain's test accuracy and of the average."""
    seeds = sorted(by_seed)
    summary = {"seeds": seeds}
    for key in [*domains_of(by_seed), "average"]:
        summary[key] = dict(zip(("mean", "std"), mean_std([by_seed[s]["test_accuracy"][key] for s in seeds])))
    return summary


def seed_order(seeds, order=()) -> list:
    """``seeds`` in the preset's order (the bootstrap's draws follow it), others after, sorted."""
    order = list(order)
    return sorted(seeds, key=lambda s: (order.index(s), s) if s in order else (len(order), s))


def paired(a: dict, b: dict, bootstrap: int = 0, order=()) -> dict | None:
    """``a`` − ``b`` (cells by seed) over their common seeds (in ``order``): paired t per domain and on
    the average, McNemar over the pooled test predictions, a paired bootstrap over test examples
    (``bootstrap`` resamples, drawn seed by seed; none when 0)."""
    seeds = seed_order(set(a) & set(b), order)
    if not seeds:
        return None
    domains = domains_of(a)
    entry: dict = {"seeds": seeds}
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


def mean_matrix(matrices: list) -> list:
    return [
        [sum(m[i][j] for m in matrices) / len(matrices) for j in range(len(matrices[0][0]))]
        for i in range(len(matrices[0]))
    ]


def measured(cells: dict, teacher_of, order=()) -> dict:
    """Size and speed of a row's students (cells with ``measures``, seeds in ``order``) and, where the
    teacher was tested (``teacher_of(seed)`` gives its record), the share of its average accuracy each
    student keeps."""
    seeds = seed_order([s for s, c in cells.items() if "measures" in c], order)
    first = cells[seeds[0]]["measures"]
    speedups = [cells[s]["measures"]["speedup"] for s in seeds]
    out = {
        "seeds": seeds, "parameters": first["parameters"], "weights_bytes": first["weights_bytes"],
        "compression": first["parameters"]["teacher"] / first["parameters"]["student"],
        "size_ratio": first["weights_bytes"]["teacher"] / first["weights_bytes"]["student"],
        "speedup": {"per_seed": speedups, "spread": [cells[s]["measures"]["speedup_spread"] for s in seeds],
                    "median_of_seeds": statistics.median(speedups)},
    }  # fmt: skip
    pairs = [(cells[s], teacher_of(s)) for s in sorted(cells) if teacher_of(s)]
    if pairs:
        ratios = [c["test_accuracy"]["average"] / t["test_accuracy"]["average"] for c, t in pairs]
        out["retention"] = dict(zip(("mean", "std"), mean_std(ratios)))
    return out


class Summariser:
    """Reads the finished cells of one study and preset back into its summary."""

    def __init__(self, study: Study, preset: Preset, runs: FinishedRuns, out: str, bootstrap: int = 2000):
        self.study, self.preset, self.runs, self.out, self.bootstrap = study, preset, runs, out, bootstrap
        self.default_learning_rate = preset_learning_rate(preset)

    def learning_rate(self, key: str, chosen: float | None = None) -> float:
        row = self.study.rows[key]
        if row.learning_rate is not None:
            return row.learning_rate
        return chosen if chosen is not None else self.default_learning_rate

    def cells(self, key: str, fraction: float | None = None, chosen: float | None = None) -> dict:
        fraction = self.preset.train_fraction if fraction is None else fraction
        return self.runs.of(fraction, key, self.learning_rate(key, chosen))

    def chosen(self, section: Section) -> dict:
        """``{row: learning rate}`` dev chose for a section with ``learning_rates`` (else empty)."""
        path = os.path.join(self.out, choice_file(section.name))
        if section.few_shot or not section.learning_rates or not os.path.exists(path):
            return {}
        return read_json(path)["per_row"]

    def section_cells(self, section: Section, key: str) -> dict:
        """A row's cells on the preset's share, at the learning rate dev chose for it in ``section``."""
        return self.cells(key, chosen=self.chosen(section).get(key))

    def row(self, section: Section, key: str, previous: str | None) -> dict:
        cells, base = self.section_cells(section, key), self.section_cells(section, self.study.baseline)
        entry = {
            "label": section.label(self.study.rows[key]),
            **accuracy_summary(cells),
            "train_seconds": mean_std([c["train_seconds"] for c in cells.values()])[0],
            "vs_baseline": paired(cells, base, self.bootstrap, self.preset.seeds)
            if key != self.study.baseline and base
            else None,
        }
        steps = [c["seconds_per_step"] for c in cells.values() if c.get("seconds_per_step")]
        entry["seconds_per_step"] = mean_std(steps)[0] if len(steps) == len(cells) else None
        if section.compare == "previous" and previous and self.section_cells(section, previous):
            entry["vs_previous"] = paired(
                cells, self.section_cells(section, previous), order=self.preset.seeds
            )
        others = {other: self.section_cells(section, other) for other in section.against if other != key}
        if any(others.values()):
            entry["vs"] = {
                o: paired(cells, c, self.bootstrap, self.preset.seeds) for o, c in others.items() if c
            }
        if section.learning_rates:
            entry["learning_rate"] = self.learning_rate(key, self.chosen(section).get(key))
        if any(c.get("mean_ratios") for c in cells.values()):
            entry["mean_ratios"] = mean_matrix([c["mean_ratios"] for c in cells.values()])
            entry["ratio_spread"] = max(c["ratio_spread"] for c in cells.values())
        if any("measures" in c for c in cells.values()):
            tested = self.runs.teachers.get(self.study.rows[key].teacher, {})
            entry["measured"] = measured(
                cells, lambda seed: tested.get(self.preset.teacher_seed_for(seed)), self.preset.seeds
            )
        return entry

    def section(self, section: Section) -> dict | None:
        rows = {}
        for previous, key in zip([section.first_previous, *section.rows], section.rows):
            if self.section_cells(section, key):
                rows[key] = self.row(section, key, previous)
        if not rows:
            return None
        out = {"title": section.title, "rows": rows, "against": list(section.against)}
        if self.chosen(section):
            out["learning_rates"] = read_json(os.path.join(self.out, choice_file(section.name)))
        return out

    def few_shot(self, section: Section) -> dict | None:
        """Per rate: each row's average accuracy, its improvement rate over the base row and the
        paired interval of the difference in points against it."""
        path = os.path.join(self.out, choice_file(section.name))
        if not os.path.exists(path):
            return None
        choice, few = read_json(path), self.preset.few_shot
        rates = {}
        for rate in sorted(few.rates):
            fraction = few.pool * rate
            base = self.cells(section.base, fraction, choice["learning_rate"])
            if not base:
                continue
            entry = {
                "fraction": fraction,
                "train_sizes": next(iter(base.values()))["train_sizes"],
                "rows": {},
            }
            for key in section.rows:
                runs = self.cells(key, fraction, choice["learning_rate"])
                if not runs:
                    continue
                seeds = sorted(set(runs) & set(base))
                gains = [
                    100
                    * (runs[s]["test_accuracy"]["average"] - base[s]["test_accuracy"]["average"])
                    / base[s]["test_accuracy"]["average"]
                    for s in seeds
                ]
                entry["rows"][key] = {
                    **accuracy_summary(runs),
                    "improvement_rate": dict(zip(("mean", "std"), mean_std(gains))),
                    "improvement_by_seed": dict(zip(seeds, gains)),
                    "vs_base": paired(runs, base, order=self.preset.seeds) if key != section.base else None,
                }
            rates[f"{rate:g}"] = entry
        return (
            {"title": section.title, "base": section.base, "learning_rate": choice, "rates": rates}
            if rates
            else None
        )

    def summary(self) -> dict:
        study, preset = self.study, self.preset
        summary: dict = {"study": study.name, "description": study.description, "baseline": study.baseline,
                         "preset": dataclasses.asdict(preset), "sections": {}}  # fmt: skip
        main = self.runs.at(preset.train_fraction)
        if main:
            summary["test_sizes"] = {d: len(c) for d, c in main[0]["test_correct"].items()}
            summary["train_sizes"] = main[0]["train_sizes"]
            summary["domains"] = list(summary["test_sizes"])
        if self.runs.teachers:
            summary["teachers"] = {
                kind: accuracy_summary(by_seed) for kind, by_seed in self.runs.teachers.items()
            }
        for name, section in study.sections.items():
            done = self.few_shot(section) if section.few_shot else self.section(section)
            if done:
                summary["sections"][name] = done
        invocations = os.path.join(self.out, "invocations.json")
        if os.path.exists(invocations):
            summary["invocations"] = read_json(invocations)
        cells = [c for by_seed in self.runs.cells.values() for c in by_seed.values()]
        summary["compute_seconds"] = sum(c["train_seconds"] for c in cells) + self.runs.teacher_seconds
        summary["cells"], summary["teachers_recorded"] = len(cells), self.runs.teacher_count
        return summary
