"""Studies: several ways of training the student (rows) compared under one protocol, over seeds and
shares of the data, each cell a run of the recipe runner's own stages, stored as it ends and
resumable, summarised with paired statistics. The paper report, the loss-weighting comparison and
the compression comparison are studies (``hrkd_trainer/studies/*.yaml``); so is any of yours.

    python -m hrkd_trainer.study report --preset cpu --jobs 2 --out benchmarks/results/report_cpu

Layers: :mod:`.spec` (the YAML: rows, sections, presets), :mod:`.share` (a share of the data and its
teachers), :mod:`.cells` (one cell), :mod:`.plan` (tasks, worker processes, scratch), :mod:`.store`
(the finished files), :mod:`.summary` (the paired summary), :mod:`.markdown`, :mod:`.cli`.
"""

from .cli import main
from .markdown import few_shot_table, interval, p_value, pct, replace_block, summary_markdown
from .spec import FINE_TUNE, FewShot, Preset, Row, Section, Study, StudyError, load_study, study_names
from .store import FinishedRuns, cell_path, load_runs, read_json, teacher_path
from .summary import Summariser, accuracy_summary, paired

__all__ = [
    "FINE_TUNE",
    "FewShot",
    "FinishedRuns",
    "Preset",
    "Row",
    "Section",
    "Study",
    "StudyError",
    "Summariser",
    "accuracy_summary",
    "cell_path",
    "few_shot_table",
    "interval",
    "load_runs",
    "load_study",
    "main",
    "p_value",
    "paired",
    "pct",
    "read_json",
    "replace_block",
    "study_names",
    "summary_markdown",
    "teacher_path",
]
