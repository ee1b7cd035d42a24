"""One HRKD run, launched alone (``python tests/ddp_worker.py``) or with ``accelerate launch
--num_processes N``: what ``test_distributed.py`` compares between one and two processes.

Every process writes ``OUT/rank<r>.json`` with the first step's loss and ratios, the eval metrics,
the number of predictions each domain's evaluation saw, and how the teacher and the student are
wrapped. The main process also writes the initial and trained parameters (student and training modules) to
``OUT/params.pt``.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from datasets import load_from_disk
from torch.nn.parallel import DistributedDataParallel
from transformers import AutoTokenizer

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel
from hrkd_trainer.metrics import accuracy_metrics
from hrkd_trainer.modeling import load_multi_domain


class RecordingTrainer(HRKDTrainer):
    """Keeps the loss and ratios of the first training step (the same on every process)."""

    first_step: dict | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if model.training and self.first_step is None:
            self.first_step = {
                "loss": loss.item(),
                "ratios": None if outputs.ratios is None else outputs.ratios.tolist(),
                "local_rows": int(inputs["input_ids"].shape[0]),
                "local_length": int(inputs["input_ids"].shape[1]),
            }
        return (loss, outputs) if return_outputs else loss


def teacher_and_student(teacher_dir: str, student_dir: str):
    """The fine-tuned teacher and a fresh student without dropout (runs are compared across processes)."""
    teacher = load_multi_domain(teacher_dir)
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    student = MultiDomainModel.from_encoder(
        student_dir, teacher.domains, teacher.label_names, seed=0, **no_dropout
    )
    return teacher, student


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("teacher", "student", "train", "dev", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--per_domain_batch", type=int, required=True)
    parser.add_argument("--max_steps", type=int, default=6)
    parser.add_argument("--relational_mode", default="learned")
    parser.add_argument("--loss_weighting", default="auto")
    parser.add_argument("--weighting_step_size", type=float, default=0.01)
    args = parser.parse_args()

    teacher, student = teacher_and_student(args.teacher, args.student)
    config = HRKDConfig(
        output_dir=os.path.join(args.out, "run"),
        per_domain_train_batch_size=args.per_domain_batch,
        per_device_eval_batch_size=3,  # 16 dev examples per domain: the last batch is padded over 2 ranks
        max_steps=args.max_steps,
        learning_rate=5e-3,
        warmup_steps=0,
        relational_mode=args.relational_mode,
        loss_weighting=args.loss_weighting,
        weighting_step_size=args.weighting_step_size,
        relational_graph_residual=True,  # ratios that differ from 1/D, so that the check means something
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        disable_tqdm=True,
    )
    train = load_from_disk(args.train)
    dev = {domain: load_from_disk(os.path.join(args.dev, domain)) for domain in teacher.domains}
    seen: dict[str, int] = {}

    def metrics(prediction):
        seen[str(len(seen))] = len(prediction.label_ids)
        return accuracy_metrics(prediction)

    trainer = RecordingTrainer(
        model=student,
        teacher_model=teacher,
        args=config,
        train_dataset=train,
        eval_dataset=dev,
        compute_metrics=metrics,
        processing_class=AutoTokenizer.from_pretrained(args.teacher),
    )
    wrapped = trainer.accelerator.unwrap_model(trainer.model)
    initial = {k: v.detach().clone() for k, v in wrapped.state_dict().items()}
    trainer.train()
    evaluation = trainer.evaluate()
    rank = trainer.accelerator.process_index
    report = {
        "rank": rank,
        "num_processes": trainer.accelerator.num_processes,
        "first_step": trainer.first_step,
        "eval": {k: v for k, v in evaluation.items() if k.endswith("accuracy")},
        "eval_predictions": dict(zip(teacher.domains, seen.values())),
        "teacher_wrapper": type(trainer.teacher_model).__name__,
        "model_wrapper": type(trainer.model_wrapped).__name__,
        "teacher_in_ddp": isinstance(trainer.teacher_model, DistributedDataParallel),
        "teacher_requires_grad": any(p.requires_grad for p in trainer.teacher_model.parameters()),
        "find_unused_parameters": getattr(trainer.model_wrapped, "find_unused_parameters", None),
        "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e],
        "weighting_state": {k: v.tolist() for k, v in trainer.loss_weighting.state_dict().items()},
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as handle:
        json.dump(report, handle)
    if trainer.accelerator.is_main_process:
        state = {k: v.detach().cpu().contiguous() for k, v in wrapped.state_dict().items()}
        torch.save({"initial": initial, "final": state}, os.path.join(args.out, "params.pt"))
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
