"""Real data-parallel training: two CPU processes over gloo, launched with ``accelerate launch`` and
the shipped DDP config, against one process on the same global batch (issue 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from .conftest import DOMAINS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "ddp_worker.py")
DDP_CONFIG = os.path.join(ROOT, "recipes", "accelerate", "multi_gpu.yaml")


def _run(command: list[str], out: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    reports = sorted(f for f in os.listdir(out) if f.startswith("rank"))
    return [json.load(open(os.path.join(out, f))) for f in reports]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, teacher_dir, bert_student_dir, tokenized):
    tmp = tmp_path_factory.mktemp("ddp")
    train, dev = tokenized
    train.save_to_disk(str(tmp / "train"))
    for domain, data in dev.items():
        data.save_to_disk(str(tmp / "dev" / domain))
    common = ["--teacher", teacher_dir, "--student", bert_student_dir, "--train", str(tmp / "train")]
    common += ["--dev", str(tmp / "dev"), "--max_steps", "6"]
    single = _run(
        [sys.executable, WORKER, *common, "--out", str(tmp / "one"), "--per_domain_batch", "4"],
        str(tmp / "one"),
    )
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")  # the venv's console script
    launch = [accelerate, "launch", "--config_file", DDP_CONFIG]
    launch += ["--num_processes", "2", "--num_cpu_threads_per_process", "1", "--mixed_precision", "no"]
    double = _run(
        [*launch, WORKER, *common, "--out", str(tmp / "two"), "--per_domain_batch", "2"], str(tmp / "two")
    )
    params = {name: torch.load(tmp / name / "params.pt") for name in ("one", "two")}
    return single, double, params


def test_two_processes_train_exactly_like_one_on_the_same_global_batch(runs):
    (single,), double, params = runs
    assert single["num_processes"] == 1
    assert [r["num_processes"] for r in double] == [2, 2]
    # each rank holds half of every domain, padded to its own longest row
    assert single["first_step"]["local_rows"] == 4 * len(DOMAINS)
    assert [r["first_step"]["local_rows"] for r in double] == [2 * len(DOMAINS)] * 2
    for rank in double:
        # the first step's loss (global per-domain means) and the ratios (global prototypes)
        assert rank["first_step"]["loss"] == pytest.approx(single["first_step"]["loss"], rel=1e-5)
        assert torch.allclose(
            torch.tensor(rank["first_step"]["ratios"]),
            torch.tensor(single["first_step"]["ratios"]),
            atol=1e-6,
        )
        assert rank["losses"] == pytest.approx(single["losses"], rel=1e-4)
    ratios = torch.tensor(single["first_step"]["ratios"])
    assert (ratios - 1 / len(DOMAINS)).abs().max() > 1e-3  # not trivially uniform
    # six optimisation steps later: the same student, projections and relational module. Adam divides
    # each gradient by its own running scale, so float noise in tiny gradients (1e-7 relative) becomes
    # visible in the update: compare what each tensor moved, not the raw values
    one, two = params["one"]["final"], params["two"]["final"]
    initial = params["one"]["initial"]
    assert initial.keys() == one.keys() == two.keys() == params["two"]["initial"].keys()
    assert any(k.startswith("weighting.balancer.") for k in one) and any(
        k.startswith("projections.") for k in one
    )
    for name in one:
        assert torch.equal(initial[name], params["two"]["initial"][name]), name
        assert (one[name] - two[name]).abs().max() <= 2e-4, name
    moved = torch.cat([(one[n] - initial[n]).flatten() for n in one]).norm()
    differ = torch.cat([(one[n] - two[n]).flatten() for n in one]).norm()
    assert differ <= 1e-3 * moved, (differ, moved)
    assert max((one[n] - initial[n]).abs().max() for n in one) > 1e-2  # training moved the weights


def test_teacher_is_never_wrapped_and_no_parameter_is_unused(runs):
    _, double, _ = runs
    for rank in double:
        assert rank["model_wrapper"] == "DistributedDataParallel"
        assert not rank["teacher_in_ddp"] and rank["teacher_wrapper"] == "MultiDomainModel"
        assert not rank["teacher_requires_grad"]
        # every parameter gets a gradient in every step: DDP runs without the unused-parameter search
        assert rank["find_unused_parameters"] is False


def test_per_domain_eval_is_gathered_without_duplicate_padding(runs):
    (single,), double, _ = runs
    # 16 dev examples per domain, eval batches of 3 per rank: the sampler pads the last global batch
    assert single["eval_predictions"] == dict.fromkeys(DOMAINS, 16)
    for rank in double:
        assert rank["eval_predictions"] == dict.fromkeys(DOMAINS, 16)
        assert rank["eval"] == pytest.approx(single["eval"], abs=1e-9)


@pytest.mark.parametrize("weighting, state", [("group-dro", "q"), ("gradient-alignment", "average")])
def test_adaptive_weights_are_the_same_on_every_process(
    weighting, state, tmp_path, teacher_dir, bert_student_dir, tokenized
):
    """Group-DRO weights come from the global per-domain losses, gradient-alignment scores from
    gradients summed over processes: both ranks hold the same weights, equal to one process's on
    the same global batch, and they did move off uniform."""
    train, dev = tokenized
    train.save_to_disk(str(tmp_path / "train"))
    for domain, data in dev.items():
        data.save_to_disk(str(tmp_path / "dev" / domain))
    common = ["--teacher", teacher_dir, "--student", bert_student_dir, "--train", str(tmp_path / "train")]
    common += ["--dev", str(tmp_path / "dev"), "--max_steps", "4", "--relational_mode", "off"]
    common += ["--loss_weighting", weighting, "--weighting_step_size", "1.0"]
    single = _run([sys.executable, WORKER, *common, "--out", str(tmp_path / "one"), "--per_domain_batch", "4"],
                  str(tmp_path / "one"))[0]  # fmt: skip
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    launch = [accelerate, "launch", "--config_file", DDP_CONFIG, "--num_processes", "2"]
    launch += ["--num_cpu_threads_per_process", "1", "--mixed_precision", "no"]
    double = _run([*launch, WORKER, *common, "--out", str(tmp_path / "two"), "--per_domain_batch", "2"],
                  str(tmp_path / "two"))  # fmt: skip
    q_one = torch.tensor(single["weighting_state"][state])
    q_ranks = [torch.tensor(rank["weighting_state"][state]) for rank in double]
    assert torch.equal(q_ranks[0], q_ranks[1])  # bit-identical across processes
    assert torch.allclose(q_ranks[0], q_one, atol=1e-5)
    assert (q_one - 1 / len(DOMAINS)).abs().max() > 1e-3
    assert double[0]["losses"] == pytest.approx(single["losses"], rel=1e-4)
