"""HRKD steps with the student sharded by torch's FSDP2, on CPU processes over gloo (issue 18).

    python tests/sharded_worker.py ... --out ONE                      # one process, nothing sharded
    torchrun --nproc_per_node 2 tests/sharded_worker.py ... --shard --out TWO

Accelerate (1.15) applies its FSDP plugin only to GPU-like devices: on CPU ``accelerate launch
--config_file recipes/accelerate/fsdp.yaml`` runs plain DDP. So this worker shards the way
Accelerate's ``fsdp2_prepare_model`` does (``fully_shard`` on every transformer block, then on the
root, the trained ``DistillationModel``), trains with the trainer's own loss and batches, and then
uses the trainer's saving and restoring code on the shards:

* ``full_state`` gathers with ``get_model_state_dict(full_state_dict=True, cpu_offload=True)``, the call
  ``accelerator.get_state_dict`` makes under FSDP2, and ``trainer._save(dir, state_dict=...)`` writes
  the export and the training modules from it, as ``Trainer.save_model`` does under FSDP;
* ``trainer._load_training_state(dir)`` restores the shards from that checkpoint (resume, best model).

Rank 0 writes ``OUT/report.json`` and ``OUT/final.pt`` (the gathered state after training).
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from datasets import load_from_disk
from transformers import AutoTokenizer

from hrkd_trainer import HRKDConfig, HRKDTrainer
from hrkd_trainer.sharded import full_state, is_sharded, shard_for_inference
from tests.ddp_worker import teacher_and_student


def shard(model, student) -> None:
    from torch.distributed.fsdp import fully_shard

    for layer in student.encoder.encoder.layer:
        fully_shard(layer)
    fully_shard(model)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("teacher", "student", "train", "out"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--per_domain_batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--shard", action="store_true")
    parser.add_argument("--shard_teacher", action="store_true", help="also shard the frozen teacher (FSDP2)")
    args = parser.parse_args()

    teacher, student = teacher_and_student(args.teacher, args.student)
    config = HRKDConfig(
        output_dir=os.path.join(args.out, "run"), per_domain_train_batch_size=args.per_domain_batch,
        max_steps=args.steps, learning_rate=5e-3, relational_mode="learned", relational_graph_residual=True,
        save_strategy="no", report_to="none", seed=0, disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    trainer = HRKDTrainer(
        model=student, teacher_model=teacher, args=config, train_dataset=load_from_disk(args.train),
        processing_class=AutoTokenizer.from_pretrained(args.teacher),
    )  # fmt: skip
    model = trainer.model  # the DistillationModel: student, projections, relational module
    if args.shard:
        shard(model, student)
    if args.shard_teacher:  # what prepare_teacher does under FSDP2 with --shard_teacher
        shard_for_inference(trainer.teacher_model)
    # plain SGD: the update is linear in the gradient, so equal gradients give equal weights up to float
    # rounding (Adam divides by sqrt(v) and turns a rounding-level gradient into a full lr-sized step)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    initial = {k: v.detach().clone() for k, v in full_state(model).items()}  # collective; a copy
    batches = iter(trainer.get_train_dataloader())  # each process gets its slice of every domain
    model.train()
    losses = []
    for _ in range(args.steps):
        loss = trainer.compute_loss(model, next(batches))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())

    gathered = full_state(model)  # collective
    export = os.path.join(args.out, "export")
    trainer._saving_checkpoint = True  # a checkpoint: the student (compact layout) + training modules
    trainer._save(export, state_dict=gathered if args.shard else None)
    trainer._saving_checkpoint = False  # the final export: one AutoModel-loadable copy per domain
    trainer._save(os.path.join(args.out, "full"), state_dict=gathered if args.shard else None)
    # what the recipes write after training
    trainer.save_training_state(os.path.join(args.out, "training_state"))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()

    with torch.no_grad():  # spoil every local shard, then restore from the checkpoint
        for parameter in model.parameters():
            parameter.add_(1.0)
    trainer._load_training_state(export)
    restored = full_state(model)

    if trainer.args.process_index == 0:
        local = next(model.parameters())
        report = {
            "processes": torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
            "sharded": is_sharded(model),
            "parameter_type": type(local).__name__,
            "teacher_sharded": is_sharded(trainer.teacher_model),
            "teacher_training": trainer.teacher_model.training,
            "teacher_requires_grad": any(p.requires_grad for p in trainer.teacher_model.parameters()),
            "losses": losses,
            "restored_max_difference": max((restored[k] - gathered[k]).abs().max().item() for k in gathered),
            "restored_keys_match": sorted(restored) == sorted(gathered),
        }
        with open(os.path.join(args.out, "report.json"), "w") as handle:
            json.dump(report, handle)
        torch.save(gathered, os.path.join(args.out, "final.pt"))
        torch.save(initial, os.path.join(args.out, "initial.pt"))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
