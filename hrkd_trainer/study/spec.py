"""What a study is, read from one declarative YAML file: rows (the arms), sections (what is reported
together and against what), presets (everything held fixed: data, models, sizes, seeds).

    name: weighting
    description: Loss-weighting strategies against uniform multi-domain KD
    baseline: uniform                  # each section pairs its rows with this row (paired by seed)
    rows:
      uniform: {label: uniform KD, method: multi-domain, teacher: hrkd}
      hrkd-frozen: {label: the paper's graph, method: hrkd, teacher: hrkd, flags: {relational_mode: frozen}}
      no-kd: {label: the student fine-tuned alone, method: fine-tune, learning_rate: 2.0e-4}
    sections:
      methods: {title: Methods, rows: [uniform, hrkd-frozen, no-kd]}
    presets:
      cpu:
        description: VADER, MiniLM-L6 teacher → its first 3 layers, 2-core CPU
        data: vader                    # a shipped recipe's data (or `recipe: NAME`: its YAML settings too)
        seeds: [1, 2, 3]
        train_fraction: 0.08           # the first share of each domain's train split
        evaluations: epoch             # or N: dev evaluations per run, evenly spaced
        flags: {teacher_init: minilm-l6, student_layers: 3, learning_rate: 5.0e-4, ...}

A row's ``method`` is a distiller of the runner (``multi-domain``, ``hrkd``, ``tinybert``,
``meta-distill``) or ``fine-tune`` (the student trained on the labels alone: the runner's baseline
stage, no teacher). ``teacher`` is the type of teacher the row distils (a fine-tune row with ``baseline_pseudo_labels``: the one that labels its transfer text; trained once per seed and
share of the data, shared by every row that names it). ``flags`` are recipe flags (any flag of
``hrkd-distill``), checked here, before anything trains.

Every row of a section is paired with the study's ``baseline`` row (by seed, at the same share); a
section with ``compare: previous`` also pairs each row with the row above it (``first_previous``
for the first one), as an ablation table reads; ``against: [ROW, ...]`` pairs every row with those rows
too. ``learning_rates: [...]`` lets dev choose each row's learning rate among them (the best dev
average at the first seed; a row with its own ``learning_rate`` keeps it); ``few_shot: true`` runs its rows at every rate of the
preset's ``few_shot`` block (shares of ``pool``) with the student learning rate chosen on dev, and
reports each row's improvement over the ``base`` row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from ..vocabulary import Method, TeacherType, did_you_mean

#: the study files shipped in the wheel
STUDY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "studies")
#: the row method that trains the student on the labels alone (the runner's baseline stage)
FINE_TUNE = "fine-tune"
METHODS = (*Method.values(), FINE_TUNE)


class StudyError(ValueError):
    """A study file that cannot run: the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Row:
    """One arm: how its student is trained (``method``), from which teacher type, with which flags."""

    key: str
    label: str
    method: str
    teacher: str | None = None
    flags: dict = field(default_factory=dict)
    learning_rate: float | None = None

    @property
    def per_domain(self) -> bool:
        """One student per domain (TinyBERT-KD, Meta-distillation)."""
        return self.method != FINE_TUNE and Method(self.method).per_domain

    def recipe_flags(self) -> dict:
        """The row's flags with its method and teacher type (a fine-tune row trains the recipe's
        baseline stage, which reads neither)."""
        if self.method == FINE_TUNE:
            return dict(self.flags)
        return {**self.flags, "method": self.method, "teacher_type": self.teacher}


@dataclass(frozen=True)
class Section:
    """Rows reported together; each paired with the study's baseline or with the row above it."""

    name: str
    title: str
    rows: tuple[str, ...]
    compare: str = "baseline"
    first_previous: str | None = None
    few_shot: bool = False
    base: str | None = None
    labels: dict = field(default_factory=dict)  # a row's label in this section, when it differs
    learning_rates: tuple[float, ...] = ()  # candidates: dev chooses each row's at the first seed
    against: tuple[str, ...] = ()  # rows every row is also paired with, besides the study's baseline

    def label(self, row: Row) -> str:
        return self.labels.get(row.key, row.label)


@dataclass(frozen=True)
class FewShot:
    """Few-shot rates (shares of ``pool`` of each domain's train split) and the learning rates dev
    chooses from (at the first seed and the second-smallest rate)."""

    pool: float
    rates: tuple[float, ...]
    learning_rates: tuple[float, ...]

    @property
    def choice_rate(self) -> float:
        rates = sorted(self.rates)
        return rates[1] if len(rates) > 1 else rates[0]


@dataclass(frozen=True)
class Preset:
    """Everything a study run holds fixed. ``flags``: recipe flags of every run (models, sizes,
    schedule); ``train_fraction``: the share of each domain's train split the sections train on."""

    name: str
    description: str
    data: str | None = None
    recipe: str | None = None
    seeds: tuple[int, ...] = (1, 2, 3)
    train_fraction: float = 1.0
    teacher_seed: int | None = None  # one teacher for every seed (trained at this seed)
    min_steps: int = 0  # epochs stretch so that a run trains at least this many steps
    evaluations: int | str = "epoch"  # dev evaluations per run (evenly spaced), or one per epoch
    measure: bool = False  # size and interleaved inference speed-up of teacher and student, per cell
    few_shot: FewShot | None = None
    flags: dict = field(default_factory=dict)

    def teacher_seed_for(self, seed: int) -> int:
        return seed if self.teacher_seed is None else self.teacher_seed


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    baseline: str
    rows: dict[str, Row]
    sections: dict[str, Section]
    presets: dict[str, Preset]
    path: str = ""

    def preset(self, name: str) -> Preset:
        if name not in self.presets:
            raise StudyError(
                f"{self.path}: no preset {name!r}{did_you_mean(name, list(self.presets))}; it has "
                f"{', '.join(self.presets)}"
            )
        return self.presets[name]

    def section_rows(self, section: str, only: list[str] | None = None) -> list[Row]:
        """The rows of ``section`` in order (only those in ``only`` when given)."""
        return [self.rows[k] for k in self.sections[section].rows if not only or k in only]


# ---------------------------------------------------------------------------- reading a file
def study_names() -> list[str]:
    """The studies shipped in the wheel (``python -m hrkd_trainer.study NAME``)."""
    return sorted(f[: -len(".yaml")] for f in os.listdir(STUDY_DIR) if f.endswith(".yaml"))


def study_path(name_or_path: str) -> str:
    """A shipped study by name, or a YAML file."""
    if os.path.isfile(name_or_path):
        return name_or_path
    path = os.path.join(STUDY_DIR, f"{name_or_path}.yaml")
    if os.path.isfile(path):
        return path
    names = study_names()
    raise StudyError(
        f"no study {name_or_path!r}{did_you_mean(name_or_path, names)}: give a shipped study "
        f"({', '.join(names)}) or a YAML file"
    )


def _take(entry: dict, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(entry, dict):
        raise StudyError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        hints = "; ".join(f"{k!r}{did_you_mean(k, list(allowed))}" for k in unknown)
        raise StudyError(f"{where}: unknown key(s) {hints}; allowed: {', '.join(allowed)}")
    missing = [k for k in required if entry.get(k) is None]
    if missing:
        raise StudyError(f"{where}: missing {', '.join(missing)}")
    return entry


def _row(key: str, entry: dict, where: str) -> Row:
    entry = _take(entry, where, ("label", "method", "teacher", "flags", "learning_rate"), ("method",))
    method = entry["method"]
    if method not in METHODS:
        raise StudyError(f"{where}: method {method!r}{did_you_mean(method, list(METHODS))}; one of {METHODS}")
    teacher = entry.get("teacher")
    labels_transfer = bool((entry.get("flags") or {}).get("baseline_pseudo_labels"))
    if method == FINE_TUNE and labels_transfer and not teacher:
        teacher = TeacherType.HRKD  # the teacher that labels the transfer text
    if method == FINE_TUNE and teacher and not labels_transfer:
        raise StudyError(f"{where}: a fine-tune row trains without a teacher: drop 'teacher: {teacher}'")
    if method != FINE_TUNE or teacher:
        if teacher not in TeacherType.values():
            raise StudyError(f"{where}: teacher {teacher!r}: one of {TeacherType.values()}")
        if teacher == TeacherType.SINGLE and (method == FINE_TUNE or not Method(method).per_domain):
            raise StudyError(
                f"{where}: a 'single' teacher (one model per domain) is distilled by tinybert or meta-distill"
            )
    rate = entry.get("learning_rate")
    return Row(key, entry.get("label", key), method, teacher, dict(entry.get("flags") or {}),
               None if rate is None else float(rate))  # fmt: skip


def _section(name: str, entry: dict, rows: dict[str, Row], where: str) -> Section:
    allowed = (
        "title",
        "rows",
        "compare",
        "first_previous",
        "few_shot",
        "base",
        "labels",
        "learning_rates",
        "against",
    )
    entry = _take(entry, where, allowed, ("rows",))
    keys = tuple(entry["rows"])
    labels = dict(entry.get("labels") or {})
    against = tuple(entry.get("against") or ())
    for key in [*keys, *(entry[k] for k in ("first_previous", "base") if entry.get(k)), *labels, *against]:
        if key not in rows:
            raise StudyError(f"{where}: row {key!r}{did_you_mean(key, list(rows))} is not in 'rows'")
    compare = entry.get("compare", "baseline")
    if compare not in ("baseline", "previous"):
        raise StudyError(f"{where}: compare {compare!r}: 'baseline' or 'previous'")
    few_shot = bool(entry.get("few_shot", False))
    if few_shot and entry.get("base") not in keys:
        raise StudyError(f"{where}: a few-shot section needs 'base', one of its rows")
    rates = tuple(float(r) for r in entry.get("learning_rates") or ())
    if rates and few_shot:
        raise StudyError(
            f"{where}: a few-shot section's learning rates are the preset's few_shot.learning_rates"
        )
    return Section(name, entry.get("title", name), keys, compare, entry.get("first_previous"), few_shot,
                   entry.get("base"), labels, rates, against)  # fmt: skip


def _preset(name: str, entry: dict, where: str) -> Preset:
    keys = ("description", "data", "recipe", "seeds", "train_fraction", "teacher_seed", "min_steps",
            "evaluations", "measure", "few_shot", "flags")  # fmt: skip
    entry = _take(entry, where, keys)
    if bool(entry.get("data")) == bool(entry.get("recipe")):
        raise StudyError(
            f"{where}: give one of 'data' (a recipe's data) or 'recipe' (its data and YAML settings)"
        )
    evaluations = entry.get("evaluations", "epoch")
    if evaluations != "epoch" and (not isinstance(evaluations, int) or evaluations < 1):
        raise StudyError(f"{where}: evaluations {evaluations!r}: 'epoch' or a number of evaluations per run")
    fraction = float(entry.get("train_fraction", 1.0))
    if not 0 < fraction <= 1:
        raise StudyError(f"{where}: train_fraction {fraction} must be in (0, 1]")
    few = entry.get("few_shot")
    if few is not None:
        few = _take(
            few, f"{where}.few_shot", ("pool", "rates", "learning_rates"), ("rates", "learning_rates")
        )
        few = FewShot(float(few.get("pool", 1.0)), tuple(map(float, few["rates"])),
                      tuple(map(float, few["learning_rates"])))  # fmt: skip
    seeds = tuple(int(s) for s in entry.get("seeds", (1, 2, 3)))
    return Preset(
        name, entry.get("description", ""), entry.get("data"), entry.get("recipe"), seeds, fraction,
        entry.get("teacher_seed"), int(entry.get("min_steps", 0)), evaluations, bool(entry.get("measure", False)),
        few, dict(entry.get("flags") or {}),
    )  # fmt: skip


def load_study(name_or_path: str) -> Study:
    """Read and check a study file (a shipped study's name or a path)."""
    path = study_path(name_or_path)
    with open(path) as handle:
        raw = yaml.safe_load(handle) or {}
    raw = _take(raw, path, ("name", "description", "baseline", "rows", "sections", "presets"),
                ("baseline", "rows", "sections", "presets"))  # fmt: skip
    rows = {key: _row(key, entry, f"{path}: rows.{key}") for key, entry in raw["rows"].items()}
    if raw["baseline"] not in rows:
        raise StudyError(
            f"{path}: baseline {raw['baseline']!r}{did_you_mean(raw['baseline'], list(rows))} is not a row"
        )
    sections = {
        name: _section(name, entry, rows, f"{path}: sections.{name}")
        for name, entry in raw["sections"].items()
    }
    presets = {
        name: _preset(name, entry, f"{path}: presets.{name}") for name, entry in raw["presets"].items()
    }
    for name, preset in presets.items():
        if any(s.few_shot for s in sections.values()) and preset.few_shot is None:
            raise StudyError(f"{path}: presets.{name}: the few-shot section needs a 'few_shot' block")
    name = raw.get("name") or os.path.splitext(os.path.basename(path))[0]
    return Study(name, raw.get("description", ""), raw["baseline"], rows, sections, presets, path)
