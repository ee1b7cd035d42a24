"""Resuming a killed recipe run: which stages finished, and where a stage that was running resumes.

Each training stage (teacher, distillation, baseline) writes its export first and then records
itself in ``OUTPUT_DIR/stages.json`` (written to a temporary file and renamed, so a killed write never
looks finished). With ``--resume_from_checkpoint true`` (or a checkpoint path) a run:

- skips every recorded stage and loads its export from the run folder (the teacher is reused, never
  retrained);
- resumes the first unfinished stage from the latest ``checkpoint-N`` of its checkpoint folder
  (``teacher_checkpoints``, ``student_checkpoints``, ``baseline_checkpoints``), or from the path
  given, which must lie in one of them; a stage without a checkpoint starts from its beginning.

Without the flag a run starts over and clears the record. Per-domain stages (``--teacher_type
single``, ``--method tinybert`` / ``meta-distill``) are skipped when finished but restart, rather
than resume, when they were interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import re

from ..results import write_json

logger = logging.getLogger(__name__)

STAGES_FILE = "stages.json"
#: stage name → its checkpoint folder inside the run folder
CHECKPOINT_DIRS = {
    "teacher": "teacher_checkpoints",
    "distillation": "student_checkpoints",
    "baseline": "baseline_checkpoints",
}
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def wants_resume(value) -> bool:
    """``--resume_from_checkpoint``: None/''/'false' → no; 'true' or a path → yes."""
    return value is not None and str(value).strip().lower() not in ("", "false", "0", "no")


def _checkpoints(directory: str) -> list[tuple[int, str, bool]]:
    """``(N, path, complete)`` of every ``checkpoint-N`` in ``directory``, by N; complete: it holds the
    ``trainer_state.json`` that Trainer writes last."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _CHECKPOINT.match(name)
        if match:
            path = os.path.join(directory, name)
            found.append(
                (int(match.group(1)), path, os.path.isfile(os.path.join(path, "trainer_state.json")))
            )
    return sorted(found)


def latest_checkpoint(directory: str) -> str | None:
    """The ``checkpoint-N`` with the largest N that holds a finished ``trainer_state.json``."""
    complete = [path for _, path, done in _checkpoints(directory) if done]
    return complete[-1] if complete else None


class StageRecord:
    """The finished stages of one run folder, and the checkpoint each unfinished stage resumes from."""

    def __init__(self, output_dir: str, resume_from_checkpoint=None, main_process: bool = True):
        self.output_dir, self.main_process = output_dir, main_process
        self.path = os.path.join(output_dir, STAGES_FILE)
        self.resume = wants_resume(resume_from_checkpoint)
        self.explicit = None
        if self.resume and str(resume_from_checkpoint).strip().lower() != "true":
            self.explicit = os.path.abspath(str(resume_from_checkpoint))
            if self.stage_of(self.explicit) is None:
                folders = ", ".join(os.path.join(output_dir, d) for d in CHECKPOINT_DIRS.values())
                raise SystemExit(
                    f"--resume_from_checkpoint {resume_from_checkpoint}: not a checkpoint of this run; give a "
                    f"checkpoint-N folder inside {folders}, or 'true' for the latest"
                )
        self.stages: dict[str, dict] = {}
        if self.resume and os.path.isfile(self.path):
            with open(self.path) as handle:
                self.stages = json.load(handle)
        elif main_process and os.path.isfile(self.path):
            os.remove(self.path)  # a fresh run: earlier stages no longer describe this folder

    def stage_of(self, checkpoint: str) -> str | None:
        parent = os.path.dirname(os.path.abspath(checkpoint))
        for stage, folder in CHECKPOINT_DIRS.items():
            if parent == os.path.abspath(os.path.join(self.output_dir, folder)):
                return stage if os.path.isdir(checkpoint) else None
        return None

    def finished(self, stage: str) -> dict | None:
        """The record of a finished stage (what it wrote), or None."""
        return self.stages.get(stage) if self.resume else None

    def checkpoint(self, stage: str) -> str | None:
        """Where the stage resumes: the checkpoint given for it, else its latest one, else None."""
        if not self.resume:
            return None
        if self.explicit is not None and self.stage_of(self.explicit) == stage:
            return self.explicit
        directory = os.path.join(self.output_dir, CHECKPOINT_DIRS[stage])
        found = latest_checkpoint(directory)
        incomplete = [os.path.basename(path) for _, path, done in _checkpoints(directory) if not done]
        broken = (
            f" ({', '.join(incomplete)} incomplete: the run was stopped while writing it)"
            if incomplete
            else ""
        )
        if found:
            logger.warning("%s: resuming from %s%s", stage, found, broken)
        else:
            logger.warning(
                "%s: no complete checkpoint in %s%s; the stage starts over", stage, directory, broken
            )
        return found

    def mark(self, stage: str, **info) -> None:
        """Record a finished stage (after its export is written)."""
        self.stages[stage] = info
        if self.main_process:
            write_json(self.path, self.stages)
