#!/usr/bin/env python
"""The GPU check: the paper-size speed benchmark and one short HRKD run per shipped Accelerate config,
each killed after its first checkpoint, resumed, exported and loaded in a fresh process.

    bash benchmarks/gpu_check.sh                  # installs what it needs, then runs this (one CUDA GPU, < 8 min)
    python benchmarks/gpu_check.py                # the same without installing
    python benchmarks/gpu_check.py --device cpu   # the parts a CPU can run; the others are reported as skipped

Writes ``OUT/gpu_check_<device>.json`` and ``.md`` (default ``benchmarks/results``):

* ``speed``: ``benchmarks/speed.py --sizes paper`` (BERT-base shapes → TinyBERT-4L-312, 4 domains × 32,
  length 128) in bf16 on CUDA, every variant with steps/s and peak memory, and the end-to-end run with
  and without the teacher-output cache;
* ``engines``: for ``multi_gpu`` (DDP), ``deepspeed_zero2``, ``deepspeed_zero3`` and ``fsdp`` (FSDP2), one
  process each: ``recipes/vader.py`` on a small VADER sample is killed once its first distillation
  checkpoint exists, resumed with ``--resume_from_checkpoint true``, and its exported student is loaded
  with ``AutoModelForSequenceClassification`` in a new process and checked against the accuracy the run
  reported. DeepSpeed configs need ``pip install deepspeed``; DeepSpeed and FSDP need CUDA (Accelerate
  runs FSDP only on GPU-like devices), so on a CPU they are skipped with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ("multi_gpu", "deepspeed_zero2", "deepspeed_zero3", "fsdp")
#: a fresh process loads one domain's export and compares its test accuracy with the run's report
LOAD_CHECK = r"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
run, domain = sys.argv[1], sys.argv[2]
model = AutoModelForSequenceClassification.from_pretrained(f"{run}/student", subfolder=domain).eval()
tokenizer = AutoTokenizer.from_pretrained(f"{run}/student", subfolder=domain)
rows = [json.loads(line) for line in open(f"{run}/test_rows.jsonl") if json.loads(line)["domain"] == domain]
right = 0
with torch.no_grad():
    for start in range(0, len(rows), 32):
        chunk = rows[start:start + 32]
        batch = tokenizer([r["text"] for r in chunk], padding=True, truncation=True, max_length=64, return_tensors="pt")
        predicted = model(**batch).logits.argmax(-1).tolist()
        right += sum(int(p == r["label"]) for p, r in zip(predicted, chunk))
print(json.dumps({"rows": len(rows), "accuracy": right / max(1, len(rows)), "class": type(model).__name__}))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda if available")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--skip_speed", action="store_true")
    parser.add_argument("--speed_steps", type=int, default=10)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--work", help="run folders (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def skip_reason(config: str, device: str) -> str | None:
    if config.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        return "DeepSpeed is not installed (pip install deepspeed)"
    if config != "multi_gpu" and device != "cuda":
        return "needs CUDA: on a CPU Accelerate runs this config as plain data parallelism"
    return None


def recipe_command(config: str, run: str, device: str, *extra: str) -> list[str]:
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    return [
        accelerate, "launch", "--config_file", os.path.join(ROOT, "recipes", "accelerate", f"{config}.yaml"),
        "--num_processes", "1", os.path.join(ROOT, "recipes", "vader.py"), "--output_dir", run,
        "--max_train_samples_per_domain", "96", "--max_eval_samples_per_domain", "64", "--max_length", "64",
        "--teacher_num_train_epochs", "1", "--max_steps", "16", "--save_strategy", "steps", "--save_steps", "4",
        "--eval_strategy", "no", "--baseline", "false", "--speed_batches", "1", "--case_study_examples", "0",
        "--disable_tqdm", "true", "--report_to", "none", *(["--bf16", "true"] if device == "cuda" else ["--use_cpu", "true"]),
        *extra,
    ]  # fmt: skip


def engine_check(config: str, device: str, work: str) -> dict:
    """Kill after the first distillation checkpoint, resume, then load the export in a new process."""
    reason = skip_reason(config, device)
    if reason:
        return {"status": "skipped", "reason": reason}
    run, log_path = os.path.join(work, config), os.path.join(work, f"{config}.log")
    with open(log_path, "w") as log:
        return _kill_resume_load(config, device, run, log, log_path)


def read_json(path: str):
    with open(path) as handle:
        return json.load(handle)


def _kill_resume_load(config: str, device: str, run: str, log, log_path: str) -> dict:
    begin = time.time()
    process = subprocess.Popen(
        recipe_command(config, run, device), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    checkpoints = os.path.join(run, "student_checkpoints")
    while process.poll() is None and not (
        os.path.isdir(checkpoints) and any(n.startswith("checkpoint-") for n in os.listdir(checkpoints))
    ):
        time.sleep(0.2)
    if process.poll() is not None:
        return {
            "status": "failed",
            "reason": f"the run ended (exit {process.returncode}) before a checkpoint",
            "log": log_path,
        }
    time.sleep(1.0)  # let the checkpoint finish writing
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = time.time() - begin
    resumed = subprocess.run(
        recipe_command(config, run, device, "--resume_from_checkpoint", "true"),
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    log.flush()
    with open(log_path) as handle:
        text = handle.read()
    entry = {"seconds": time.time() - begin, "seconds_to_kill": first, "log": log_path,
             "resumed_from": next((line.split("resuming from ")[-1].strip() for line in text.splitlines() if "resuming from" in line), None)}  # fmt: skip
    if resumed.returncode or not os.path.exists(os.path.join(run, "results.json")):
        return {**entry, "status": "failed", "reason": f"the resumed run exited {resumed.returncode}"}
    results = read_json(os.path.join(run, "results.json"))
    write_test_rows(run)
    loads = {}
    for domain in results["domains"]:
        done = subprocess.run([sys.executable, "-c", LOAD_CHECK, run, domain], capture_output=True, text=True)
        if done.returncode:
            return {**entry, "status": "failed", "reason": f"fresh load of {domain}: {done.stderr[-500:]}"}
        loads[domain] = json.loads(done.stdout.strip().splitlines()[-1])
    reported = results["student"]["accuracy"]
    agree = all(abs(loads[d]["accuracy"] - reported[d]) <= 0.02 for d in loads)
    return {**entry, "status": "passed" if agree and entry["resumed_from"] else "failed", "fresh_load": loads,
            "reported_accuracy": {d: reported[d] for d in loads}}  # fmt: skip


def write_test_rows(run: str) -> None:
    """The run's test rows (the recipe's split, capped as it was) for the fresh-process load."""
    from hrkd_trainer.data import load_vader
    from hrkd_trainer.data.common import per_domain_head

    test = per_domain_head(load_vader()["test"], 64)
    names = test.features["domain"].names if hasattr(test.features["domain"], "names") else None
    with open(os.path.join(run, "test_rows.jsonl"), "w") as handle:
        for row in test:
            domain = names[row["domain"]] if names else row["domain"]
            handle.write(json.dumps({"text": row["text"], "label": row["label"], "domain": domain}) + "\n")


def speed_check(args, work: str) -> dict:
    out = os.path.join(work, "speed.json")
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "speed.py"), "--sizes", "paper", "--device", args.device,
               "--steps", str(args.speed_steps), "--warmup", "2", "--cache_epochs", "2", "--out", out,
               *(["--bf16"] if args.device == "cuda" else [])]  # fmt: skip
    begin = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        return {"status": "failed", "reason": done.stderr[-1500:]}
    report = read_json(out)
    variants = report["step_benchmark"]["variants"]
    return {
        "status": "passed", "seconds": time.time() - begin, "bf16": report.get("bf16"), "command": " ".join(command[1:]),
        "variants": {k: {"steps_per_second": v["steps_per_second"], "peak_memory_bytes": v["peak_memory_bytes"],
                         "throughput_vs_research_loop": v["throughput_vs_reference"]} for k, v in variants.items()},
        "cache_run": report.get("cache_run"), "machine": report["machine"],
    }  # fmt: skip


def markdown(report: dict) -> str:
    lines = [
        f"# GPU check ({report['device']})",
        "",
        f"Command: `{report['command']}`; {report['seconds']:.0f} s.",
        "",
    ]
    speed = report.get("speed")
    if speed and speed["status"] == "passed":
        lines += ["## Speed at paper sizes" + (" (bf16)" if speed["bf16"] else ""), "",
                  "| variant | steps/s | peak memory (MB) | × research loop |", "|---|---|---|---|"]  # fmt: skip
        for name, v in speed["variants"].items():
            memory = f"{v['peak_memory_bytes'] / 1e6:.0f}" if v["peak_memory_bytes"] else "–"
            lines.append(
                f"| {name} | {v['steps_per_second']:.2f} | {memory} | {v['throughput_vs_research_loop']:.2f} |"
            )
        cache = speed.get("cache_run")
        if cache:
            lines += ["", f"End to end, {cache['epochs']} epochs: without the cache {cache['without cache']['total_seconds']:.1f} s, "
                      f"with it {cache['with cache']['total_seconds']:.1f} s ({cache['speedup']:.2f}×)."]  # fmt: skip
        lines.append("")
    elif speed:
        lines += [f"Speed: {speed['status']}: {speed.get('reason', '')}", ""]
    lines += ["## Engines: kill after the first checkpoint, resume, export, fresh load", "",
              "| config | status | resumed from | fresh-load accuracy vs reported | note |", "|---|---|---|---|---|"]  # fmt: skip
    for config, entry in report["engines"].items():
        loads = entry.get("fresh_load", {})
        agree = ", ".join(
            f"{d} {100 * loads[d]['accuracy']:.1f}/{100 * entry['reported_accuracy'][d]:.1f}" for d in loads
        )
        resumed = os.path.basename(entry.get("resumed_from") or "") or "–"
        lines.append(
            f"| {config} | {entry['status']} | {resumed} | {agree or '–'} | {entry.get('reason', '')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="hrkd-gpu-check-")
    os.makedirs(work, exist_ok=True)
    begin = time.time()
    report = {"device": args.device, "command": " ".join(["python", *sys.argv]), "work": work, "engines": {}}
    if not args.skip_speed:
        report["speed"] = speed_check(args, work)
        print(f"speed: {report['speed']['status']}", flush=True)
    for config in args.configs:
        report["engines"][config] = engine_check(config, args.device, work)
        print(
            f"{config}: {report['engines'][config]['status']} {report['engines'][config].get('reason', '')}",
            flush=True,
        )
    report["seconds"] = time.time() - begin
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"gpu_check_{args.device}")
    with open(path + ".json", "w") as handle:
        json.dump(report, handle, indent=2)
    with open(path + ".md", "w") as handle:
        handle.write(markdown(report))
    print(markdown(report))
    failed = [c for c, e in report["engines"].items() if e["status"] == "failed"]
    return 1 if failed or report.get("speed", {}).get("status") == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
