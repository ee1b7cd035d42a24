"""A recipe run killed with SIGKILL during distillation resumes with ``--resume_from_checkpoint true``:
the teacher is reused (not retrained), distillation continues from its latest checkpoint, and the
final student equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import safetensors.torch
import torch

from hrkd_trainer.run.resume import StageRecord, latest_checkpoint, wants_resume

from .test_data import write_amazon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(data, teacher_init, out, *extra):
    return [
        sys.executable, os.path.join(ROOT, "recipes", "amazon.py"), "--data_path", str(data),
        "--teacher_init", teacher_init, "--student_layers", "2", "--output_dir", str(out), "--max_length", "32",
        "--per_domain_train_batch_size", "4", "--max_steps", "60", "--teacher_num_train_epochs", "1",
        "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "5", "--baseline", "false",
        "--logging_steps", "5", "--disable_tqdm", "true", "--speed_batches", "1", "--use_cpu", "true",
        "--report_to", "none", "--case_study_examples", "0", *extra,
    ]  # fmt: skip


def student_weights(out) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(os.path.join(out, "student", "model.safetensors"))


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path, bert_teacher_dir):
    data = tmp_path / "sorted_data_acl"
    write_amazon(data, n=12)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    whole = tmp_path / "whole"
    subprocess.run(
        command(data, bert_teacher_dir, whole), check=True, env=env, capture_output=True, timeout=600
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        command(data, bert_teacher_dir, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 600
    while latest_checkpoint(str(killed / "student_checkpoints")) is None:
        assert process.poll() is None, "the run ended before its first distillation checkpoint"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.json").exists() and not (killed / "student").exists()
    stages = json.loads((killed / "stages.json").read_text())
    assert list(stages) == ["teacher"]  # the teacher finished, distillation did not
    teacher_file = killed / "teacher" / "model.safetensors"
    teacher_mtime = teacher_file.stat().st_mtime_ns
    interrupted_at = latest_checkpoint(str(killed / "student_checkpoints"))

    resumed = subprocess.run(
        command(data, bert_teacher_dir, killed, "--resume_from_checkpoint", "true"),
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert teacher_file.stat().st_mtime_ns == teacher_mtime  # reused, not retrained
    assert f"resuming from {interrupted_at}" in resumed.stderr
    assert list(json.loads((killed / "stages.json").read_text())) == ["teacher", "distillation"]
    a, b = student_weights(whole), student_weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5, msg=key)
    results = json.loads((killed / "results.json").read_text())
    expected = json.loads((whole / "results.json").read_text())
    assert results["student"]["accuracy"] == expected["student"]["accuracy"]
    assert set(results) == set(expected)


def test_the_stage_record(tmp_path):
    assert not wants_resume(None) and not wants_resume("false") and wants_resume("true")
    record = StageRecord(str(tmp_path))
    record.mark("teacher", trainable_parameters=7)
    assert StageRecord(str(tmp_path), "true").finished("teacher") == {"trainable_parameters": 7}
    (tmp_path / "student_checkpoints" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "student_checkpoints" / "checkpoint-12").mkdir()
    (tmp_path / "student_checkpoints" / "checkpoint-12" / "trainer_state.json").write_text("{}")
    (tmp_path / "student_checkpoints" / "checkpoint-20").mkdir()  # being written: no trainer state yet
    record = StageRecord(str(tmp_path), "true")
    assert record.checkpoint("distillation") == str(tmp_path / "student_checkpoints" / "checkpoint-12")
    assert record.checkpoint("baseline") is None
    given = StageRecord(str(tmp_path), str(tmp_path / "student_checkpoints" / "checkpoint-3"))
    assert given.checkpoint("distillation") == str(tmp_path / "student_checkpoints" / "checkpoint-3")
    with pytest.raises(SystemExit, match="not a checkpoint of this run"):
        StageRecord(str(tmp_path), str(tmp_path / "elsewhere"))
    StageRecord(str(tmp_path))  # a fresh run clears the record
    assert not (tmp_path / "stages.json").exists()


def test_a_checkpoint_cut_short_by_a_kill_is_named_and_the_stage_says_it_starts_over(tmp_path, caplog):
    """A kill during a checkpoint's write leaves ``checkpoint-N`` without its ``trainer_state.json``:
    the resumed stage names it, and says whether it resumes from an earlier one or starts over."""
    folder = tmp_path / "student_checkpoints"
    (folder / "checkpoint-10").mkdir(parents=True)
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"half")
    record = StageRecord(str(tmp_path), "true")
    with caplog.at_level("WARNING", logger="hrkd_trainer.run.resume"):
        assert record.checkpoint("distillation") is None
    assert f"no complete checkpoint in {folder} (checkpoint-10 incomplete" in caplog.text
    assert "the stage starts over" in caplog.text
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "trainer_state.json").write_text("{}")
    caplog.clear()
    with caplog.at_level("WARNING", logger="hrkd_trainer.run.resume"):
        assert record.checkpoint("distillation") == str(folder / "checkpoint-5")
    assert "resuming from" in caplog.text and "checkpoint-10 incomplete" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hrkd_trainer.run.resume"):
        assert record.checkpoint("teacher") is None  # no folder at all: starts over, said once
    assert "no complete checkpoint in" in caplog.text and "incomplete" not in caplog.text
