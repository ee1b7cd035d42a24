"""Stage 5 of a recipe run: test accuracy, size and speed of teacher, student and baseline →
``results.json`` (built by :mod:`hrkd_trainer.results`), ``test_predictions.json``, the printed
table, HRKD's case study, and the Hub when ``--push_to_hub`` asked for it."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter

from ..assets import hub_id_of
from ..evaluation import accuracy_per_domain, evaluate_per_domain, interleaved_speedup, predict_per_domain
from ..modeling import DomainExperts
from ..results import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    build_results,
    distillation_settings,
    format_table,
    model_entry,
    speedup_text,
    weights_bytes,
    write_results,
    write_test_predictions,
)
from ..training_logs import RATIO_HISTORY_NAME
from ..vocabulary import GIVEN_TEACHER, Method
from .stages import RunState


def check_push(config) -> None:
    """``--push_to_hub`` needs a repo id and a token: checked before any training."""
    from ..hub import PublishError, resolve_token

    if not config.hub_model_id:
        raise SystemExit("--push_to_hub needs --hub_model_id (the Hub repo, e.g. me/vader-student)")
    try:
        resolve_token(config.hub_token)
    except PublishError as err:
        raise SystemExit(f"--push_to_hub: {err}") from err


def evaluate_models(state: RunState) -> dict:
    """Test and dev accuracy and inference time of every model of the run (timed on the same rows)."""
    recipe = state.recipe
    teacher_pad, pad = state.teacher_tokenizer.pad_token_id, state.tokenizer.pad_token_id
    first = state.domains[0]
    out = {"student_predictions": predict_per_domain(state.student, state.student_data.test, pad)}
    speed = interleaved_speedup(
        state.teacher, state.teacher_data.test[first], teacher_pad, state.student, state.student_data.test[first], pad,
        batches=recipe.speed_batches, repeats=recipe.speed_repeats,
    )  # fmt: skip
    out["teacher"] = dict(
        accuracy=evaluate_per_domain(state.teacher, state.teacher_data.test, teacher_pad),
        dev=evaluate_per_domain(state.teacher, state.teacher_data.dev, teacher_pad),
        seconds=speed["teacher_seconds"],
    )  # fmt: skip
    out["student"] = dict(
        accuracy=accuracy_per_domain(out["student_predictions"], state.student_data.test),
        dev=evaluate_per_domain(state.student, state.student_data.dev, pad),
        seconds=speed["student_seconds"], speedup=speed["speedup"], speedup_spread=speed["speedup_spread"],
    )  # fmt: skip
    if state.baseline is not None:
        out["baseline_predictions"] = predict_per_domain(state.baseline, state.student_data.test, pad)
        out["baseline"] = dict(
            accuracy=accuracy_per_domain(out["baseline_predictions"], state.student_data.test),
            dev=evaluate_per_domain(state.baseline, state.student_data.dev, pad),
        )
    return out


def run_results(state: RunState, measured: dict) -> dict:
    """The results.json of a recipe run (schema: :mod:`hrkd_trainer.results`)."""
    recipe, teacher, student = state.recipe, state.teacher, state.student
    teacher_type = GIVEN_TEACHER if recipe.teacher else recipe.teacher_type
    t, s = measured["teacher"], measured["student"]
    teacher_entry = model_entry(
        teacher, t["accuracy"], t["dev"], t["seconds"], source=state.teacher_source,
        # the Hub model it stands for: a given teacher's id, else the encoder it was fine-tuned from
        hub_id=hub_id_of(recipe.teacher or state.teacher_source), type=teacher_type,
        trainable_parameters=state.teacher_trainable, lora_r=recipe.teacher_lora_r if not recipe.teacher else None,
        weights_bytes=weights_bytes(recipe.teacher or os.path.join(state.output_dir, "teacher"), state.domains[0]),
    )  # fmt: skip
    student_entry = model_entry(
        student, s["accuracy"], s["dev"], s["seconds"], speedup=s["speedup"], speedup_spread=s["speedup_spread"],
        init=state.student_source, weights_bytes=weights_bytes(os.path.join(state.output_dir, "student"), state.domains[0]),
        layers=student.num_hidden_layers, per_domain_models=isinstance(student, DomainExperts),
    )  # fmt: skip
    baseline_entry = None
    if state.baseline is not None:
        b = measured["baseline"]
        baseline_entry = model_entry(
            state.baseline, b["accuracy"], b["dev"], learning_rate=state.baseline_args.learning_rate
        )
    args = state.distill_args
    sections = {
        "data": {split: len(state.data[split]) for split in state.data},
        "skipped_rows": sum(getattr(state.data, "skipped", {}).values()),
        "teacher_type": teacher_type,
        "few_shot_fraction": recipe.few_shot_fraction,
    }
    if state.transfer is not None:  # rows without gold labels the distillation added
        counts = Counter(state.transfer["domain_ids"])
        per_domain = {d: counts[i] for i, d in enumerate(state.domains)}
        sections["transfer"] = {"rows": len(state.transfer), "per_domain": per_domain}
    if state.data_source is not None:
        sections["dataset"] = dataclasses.asdict(state.data_source)
    if recipe.method == Method.META_DISTILL:
        sections["meta_distill"] = {
            "transfer_loss_weight": recipe.meta_transfer_loss_weight,
            "instance_weights": recipe.meta_instance_weights,
            "transfer_term": state.corruption is not None and recipe.meta_transfer_loss_weight > 0,
            "prediction_stage_learning_rate": recipe.prediction_stage_learning_rate or args.learning_rate,
            "prediction_stage_epochs": recipe.prediction_stage_epochs or args.num_train_epochs,
        }
    ratio_path = os.path.join(state.output_dir, RATIO_HISTORY_NAME)
    if args.relational and os.path.exists(ratio_path):
        with open(ratio_path) as handle:
            history = json.load(handle)["history"]
        sections["final_ratios"] = history[-1]["ratios"] if history else None
    results = build_results(
        domains=state.domains, labels=state.labels, method=recipe.method, student=student_entry,
        teacher=teacher_entry, baseline=baseline_entry, distillation=distillation_settings(args),
        device=next(student.parameters()).device, **sections,
    )  # fmt: skip
    results["wall_time_seconds"] = {**state.timings, "total": time.time() - state.started}
    return results


def write_case_study(state: RunState) -> None:
    """HRKD's Tables 5-6 for this run: ratios of sets of test examples, printed and in case_study.md."""
    from ..case_study import case_study_from_run, format_case_study

    studies = case_study_from_run(state.output_dir, state.data["test"], state.recipe.case_study_examples)
    text = format_case_study(studies)
    with open(os.path.join(state.output_dir, "case_study.md"), "w") as handle:
        handle.write(text)
    print(text)


def megabytes(entry: dict) -> str:
    size = entry.get("weights_bytes")
    return f"{size / 2**20:.0f}" if size else "–"


def print_summary(state: RunState, results: dict) -> None:
    rows = {"teacher": results["teacher"]["accuracy"], "student (KD)": results["student"]["accuracy"]}
    extra = {
        "teacher": {
            "params (M)": f"{results['teacher']['parameters'] / 1e6:.1f}",
            "MB": megabytes(results["teacher"]),
            "speed-up": "1.0x",
        },
        "student (KD)": {
            "params (M)": f"{results['student']['parameters'] / 1e6:.1f}",
            "MB": megabytes(results["student"]),
            "speed-up": speedup_text(results["student"]),
        },
    }
    if "baseline" in results:
        rows["student (no KD)"] = results["baseline"]["accuracy"]
        extra["student (no KD)"] = dict(extra["student (KD)"])
    out = state.output_dir
    print(f"\nTest accuracy (%) per domain — {out}\n{format_table(state.domains, rows, extra)}\n")
    if state.teacher_trainable is not None:
        recipe = state.recipe
        lora = f" (LoRA r={recipe.teacher_lora_r}, merged)" if recipe.teacher_lora_r else ""
        print(
            f"teacher ({recipe.teacher_type}): {state.teacher_trainable / 1e6:.2f} M trainable parameters{lora}"
        )
    print(f"student exported to {os.path.join(out, 'student')}; results in {os.path.join(out, RESULTS_FILE)}")


def report(state: RunState, push: bool = False) -> dict:
    """Stage 5: measure, write results.json and the test predictions, print, publish."""
    measured = evaluate_models(state)
    config = state.config
    if state.distill_args.relational and state.recipe.case_study_examples and config.should_save:
        write_case_study(state)
    results = run_results(state, measured)
    if not config.should_save:  # other processes of a multi-process launch: the main one reports
        return results
    write_results(os.path.join(state.output_dir, RESULTS_FILE), results)
    write_test_predictions(
        os.path.join(state.output_dir, PREDICTIONS_FILE), state.data["test"], measured["student_predictions"],
        state.labels, config.max_length, baseline=measured.get("baseline_predictions"),
    )  # fmt: skip
    print_summary(state, results)
    if push:
        from ..hub import publish_run

        publish_run(
            state.output_dir, repo_id=config.hub_model_id, token=config.hub_token,
            private=config.hub_private_repo, revision=config.hub_revision,
        )  # fmt: skip
    return results
