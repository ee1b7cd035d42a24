#!/usr/bin/env python
"""Step-time overhead of HRKD's relational module over uniform multi-domain KD, in one process.

Builds the VADER quick-start setting (teacher, 3-layer student, 16 examples per domain per step, max
length 64), then times full training steps (teacher forward, student forward and backward, optimizer
step) for each relational mode on the *same* batches, interleaving the modes round by round so that
machine noise hits them alike. Reports the median step time per mode and its ratio to ``off``, and
the relational module's parameter count. Writes ``--out`` (JSON) when given.

    python benchmarks/relational_overhead.py --teacher runs/vader/teacher --steps 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from transformers import AutoTokenizer

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel, tokenize_multi_domain
from hrkd_trainer.data import load_vader
from hrkd_trainer.data.common import domain_names, label_names, per_domain_head
from hrkd_trainer.results import machine_description

MODES = ("off", "frozen", "learned")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, help="a fine-tuned VADER teacher (RUN_DIR/teacher)")
    parser.add_argument("--student_layers", type=int, default=3)
    parser.add_argument("--per_domain_batch_size", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per mode")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out")
    args = parser.parse_args()

    data = load_vader()
    train = per_domain_head(data["train"], 256)
    domains, labels = domain_names(data), label_names(data)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    train = tokenize_multi_domain(train, tokenizer, args.max_length)
    trainers = {}
    for mode in MODES:
        config = HRKDConfig(
            output_dir=f"/tmp/hrkd-overhead/{mode}", per_domain_train_batch_size=args.per_domain_batch_size,
            max_length=args.max_length, report_to="none", use_cpu=args.device == "cpu", learning_rate=5e-4,
            distill_losses=["embedding", "hidden", "prediction"], relational_mode=mode, disable_tqdm=True,
            max_steps=args.steps + args.warmup, lr_scheduler_type="constant", seed=42,
        )  # fmt: skip
        student = MultiDomainModel.from_encoder(
            args.teacher, domains, labels, num_hidden_layers=args.student_layers
        )
        teacher = MultiDomainModel.from_pretrained(args.teacher)
        trainer = HRKDTrainer(
            model=student, teacher_model=teacher, args=config, train_dataset=train,
            processing_class=tokenizer,
        )  # fmt: skip
        trainer.create_optimizer_and_scheduler(num_training_steps=config.max_steps)
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1
        trainers[mode] = trainer
    loader = trainers["off"].get_train_dataloader()
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == args.steps + args.warmup:
            break
    times = {mode: [] for mode in MODES}
    synchronize = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for number, batch in enumerate(batches):
        for mode in MODES:
            trainer = trainers[mode]
            batch_on_device = {k: v.to(trainer.args.device) for k, v in batch.items()}
            synchronize()
            begin = time.perf_counter()
            trainer.training_step(trainer.model, batch_on_device)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad()
            synchronize()
            if number >= args.warmup:
                times[mode].append(time.perf_counter() - begin)
    median = {mode: statistics.median(v) for mode, v in times.items()}
    relational = trainers["learned"].relational
    result = {
        "median_step_seconds": median,
        "ratio_to_off": {mode: median[mode] / median["off"] for mode in MODES},
        "relational_parameters": sum(p.numel() for p in relational.parameters()),
        "student_parameters": trainers["off"].student.num_parameters(),
        "steps": args.steps,
        "rows_per_step": args.per_domain_batch_size * len(domains),
        "machine": machine_description(torch.device(args.device)),
        "command": " ".join(sys.argv),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
