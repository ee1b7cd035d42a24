#!/usr/bin/env python
"""Steps per second and peak memory of hrkd-trainer's training modes against a research-style loop.

One process builds every variant on the same teacher/student shapes and the same real VADER
batches (4 domains × B examples per step), then times full optimisation steps round-robin (each round
runs every variant on the same batch), so that machine noise hits them alike. Variants:

* ``research-loop``: the reference point, TinyBERT-style multi-domain KD written as a plain PyTorch
  loop the way the released code does it: every batch padded to 128 tokens, every domain's sub-batch
  through teacher and student separately, eager attention with scores and hidden states of *every*
  layer, losses over every padded position, AdamW and gradient clipping by hand;
* ``student-only``: fine-tuning the student alone with ``MultiDomainTrainer`` (no teacher);
* ``uniform-kd``: ``HRKDTrainer``, eq. 5 (relational module off);
* ``hrkd-frozen`` / ``hrkd-learned``: eq. 17 with the relational module frozen / trained;
* ``hrkd-learned+cache``: the same with ``--teacher_cache`` (the teacher's outputs read from disk).

hrkd-trainer variants use dynamic padding, SDPA in unmapped layers, scores only in mapped layers and
no teacher graph. The relational module's forward time and the teacher's forward time are timed
separately inside the steps. A second measurement trains ``uniform-kd``-style HRKD for
``--cache_epochs`` epochs end to end with ``Trainer.train`` with and without the cache (cache build
included) and reports total wall time and peak memory.

Memory: on CUDA, the peak of ``torch.cuda.max_memory_allocated`` during a variant's steps; on CPU, the
rise of the process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``) above the RSS
before its steps, after returning freed heap to the OS: the step's own memory (activations,
gradients, optimizer state growth), since every variant's models stay resident in the process. The
two end-to-end cache runs each run in a fresh child process, whose peak RSS is its own.

    python benchmarks/speed.py                      # CPU sizes (MiniLM-L6 shape → 3 layers), ~10 min on 2 cores
    python benchmarks/speed.py --sizes paper        # BERT-base → TinyBERT-4 (312), 4 domains × 32, length 128
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import torch
from torch.nn import functional as F
from transformers import AutoTokenizer, BertConfig, BertModel

from hrkd_trainer import (
    HRKDConfig,
    HRKDTrainer,
    MultiDomainArguments,
    MultiDomainModel,
    MultiDomainTrainer,
    tokenize_multi_domain,
)
from hrkd_trainer.assets import offline_minilm_path
from hrkd_trainer.capture import AttentionScoreCapture
from hrkd_trainer.collate import MultiDomainCollator
from hrkd_trainer.data import load_vader
from hrkd_trainer.data.common import domain_names, label_names, per_domain_head
from hrkd_trainer.layer_map import uniform_layer_map
from hrkd_trainer.results import machine_description

SIZES = {
    # the quick start's shapes: MiniLM-L6 teacher, its first 3 layers as the student
    "cpu": {
        "teacher": {
            "num_hidden_layers": 6,
            "hidden_size": 384,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
        },
        "student": {
            "num_hidden_layers": 3,
            "hidden_size": 384,
            "num_attention_heads": 12,
            "intermediate_size": 1536,
        },
        "per_domain_batch_size": 16,
        "max_length": 128,
    },
    # the paper's: BERT-base teacher, TinyBERT-4 (312) student, 32 per domain, length 128
    "paper": {
        "teacher": {
            "num_hidden_layers": 12,
            "hidden_size": 768,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        },
        "student": {
            "num_hidden_layers": 4,
            "hidden_size": 312,
            "num_attention_heads": 12,
            "intermediate_size": 1200,
        },
        "per_domain_batch_size": 32,
        "max_length": 128,
    },
}
VARIANTS = (
    "research-loop",
    "student-only",
    "uniform-kd",
    "hrkd-frozen",
    "hrkd-learned",
    "hrkd-learned+cache",
    "uniform-noise",
    "loss-progress",
    "group-dro",
    "gradient-alignment",
    "gradient-alignment-every-step",
)
#: variants that are an adaptive weighting with other settings than its defaults
ADAPTIVE_SETTINGS = {"gradient-alignment-every-step": ("gradient-alignment", {"weighting_every": 1})}
#: the weighting strategies of hrkd_trainer.weighting.adaptive, run like uniform KD otherwise
ADAPTIVE = ("uniform-noise", "loss-progress", "group-dro", "gradient-alignment")
REFERENCE = "research-loop"


# ---------------------------------------------------------------------------------------------- memory
class Memory:
    """Peak memory of a block of work (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._trim = None
        if not self.cuda:
            try:
                self._trim = ctypes.CDLL("libc.so.6").malloc_trim
            except OSError:
                self._trim = None

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        return 0

    @contextmanager
    def peak(self, into: list):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            yield
            torch.cuda.synchronize()
            into.append(torch.cuda.max_memory_allocated())
            return
        if self._trim is not None:
            self._trim(0)
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        base = self._status("VmRSS:")
        yield
        into.append(self._status("VmHWM:") - base)


# ---------------------------------------------------------------------------------------------- models
def save_random_encoder(path: str, shape: dict, vocab_size: int, seed: int, tokenizer) -> str:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=512, **shape)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def multi_domain(path: str, domains, labels, seed: int) -> MultiDomainModel:
    return MultiDomainModel.from_encoder(path, domains, labels, seed=seed)


# ---------------------------------------------------------------------------------------------- research loop
class ResearchLoop:
    """TinyBERT-style multi-domain KD as the released code writes it (see the module docstring)."""

    def __init__(self, teacher: MultiDomainModel, student: MultiDomainModel, device, lr: float = 5e-4):
        self.teacher, self.student = teacher.to(device).eval(), student.to(device).train()
        self.teacher.requires_grad_(False)
        self.teacher.prepare_for_capture()
        self.student.prepare_for_capture()
        self.map = uniform_layer_map(student.num_hidden_layers, teacher.num_hidden_layers)
        self.fit = torch.nn.ModuleList(
            torch.nn.Linear(student.hidden_size, teacher.hidden_size)
            for _ in range(1 + student.num_hidden_layers)
        ).to(device)
        params = list(self.student.parameters()) + list(self.fit.parameters())
        self.params = params
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)

    @staticmethod
    def _run(model, batch, grad: bool):
        layers = range(1, model.num_hidden_layers + 1)  # every layer's scores, as the research code
        with torch.set_grad_enabled(grad), AttentionScoreCapture(model.encoder, layers) as capture:
            encoded = model.encoder(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"), output_hidden_states=True,
            )  # fmt: skip
            logits = model._classify(
                encoded, batch["input_ids"], batch["attention_mask"], batch["domain_ids"]
            )
        return logits, dict(capture.scores), encoded.hidden_states

    def step(self, domain_batches: list[dict]) -> float:
        total = 0.0
        for batch in domain_batches:  # one sub-batch per domain, one after the other
            t_logits, t_scores, t_hidden = self._run(self.teacher, batch, grad=False)
            s_logits, s_scores, s_hidden = self._run(self.student, batch, grad=True)
            loss = F.mse_loss(self.fit[0](s_hidden[0]), t_hidden[0])
            for m, (s, t) in enumerate(self.map.pairs, start=1):
                zero = lambda x: torch.where(x <= -100, torch.zeros_like(x), x)  # noqa: E731
                loss = loss + F.mse_loss(zero(s_scores[s]), zero(t_scores[t]))
                loss = loss + F.mse_loss(self.fit[m](s_hidden[s]), t_hidden[t])
            targets = F.softmax(t_logits, dim=-1)
            loss = loss + (-targets * F.log_softmax(s_logits, dim=-1)).sum(-1).mean()
            total = total + loss
        self.optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return float(total.detach())


# ---------------------------------------------------------------------------------------------- trainers
def make_trainer(
    kind: str,
    teacher_dir,
    student_dir,
    domains,
    labels,
    train,
    tokenizer,
    device,
    workdir,
    lr,
    b,
    max_length,
    bf16: bool = False,
):
    common = dict(
        output_dir=os.path.join(workdir, kind), per_domain_train_batch_size=b, max_length=max_length, bf16=bf16,
        report_to="none", use_cpu=device.type == "cpu", learning_rate=lr, lr_scheduler_type="constant",
        disable_tqdm=True, max_steps=10_000, seed=42, save_strategy="no",
    )  # fmt: skip
    student = multi_domain(student_dir, domains, labels, seed=0)
    if kind == "student-only":
        trainer = MultiDomainTrainer(
            model=student,
            args=MultiDomainArguments(**common),
            train_dataset=train,
            processing_class=tokenizer,
        )
    else:
        weighting, settings = ADAPTIVE_SETTINGS.get(kind, (kind if kind in ADAPTIVE else "auto", {}))
        mode = (
            "frozen"
            if kind == "hrkd-frozen"
            else "off"
            if kind == "uniform-kd" or weighting != "auto"
            else "learned"
        )
        config = HRKDConfig(
            **common, relational_mode=mode, loss_weighting=weighting, teacher_cache=kind.endswith("+cache"),
            teacher_cache_dir=os.path.join(workdir, "teacher_cache"), **settings,
        )  # fmt: skip
        teacher = multi_domain(teacher_dir, domains, labels, seed=1)
        trainer = HRKDTrainer(
            model=student, teacher_model=teacher, args=config, train_dataset=train, processing_class=tokenizer
        )
        if config.teacher_cache:
            trainer.teacher_cache = trainer.build_teacher_cache()
    trainer.create_optimizer_and_scheduler(num_training_steps=common["max_steps"])
    trainer.model.to(device).train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer


@contextmanager
def timed_method(obj, name: str, into: list, synchronize):
    """Accumulate the wall time of ``obj.name(...)`` calls into ``into[-1]``."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        synchronize()
        begin = time.perf_counter()
        out = original(*args, **kwargs)
        synchronize()
        into[-1] += time.perf_counter() - begin
        return out

    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        setattr(obj, name, original)


# ---------------------------------------------------------------------------------------------- main
def step_benchmark(args, sizes, data, tokenizer, teacher_dir, student_dir, device, workdir) -> dict:
    domains, labels = domain_names(data), label_names(data)
    b, max_length = sizes["per_domain_batch_size"], sizes["max_length"]
    train = tokenize_multi_domain(
        per_domain_head(data["train"], args.examples_per_domain), tokenizer, max_length
    )
    trainers = {
        kind: make_trainer(kind, teacher_dir, student_dir, domains, labels, train, tokenizer, device, workdir, args.lr, b, max_length, args.bf16)
        for kind in args.variants
        if kind != REFERENCE
    }  # fmt: skip
    research = ResearchLoop(
        multi_domain(teacher_dir, domains, labels, seed=1),
        multi_domain(student_dir, domains, labels, seed=0),
        device,
    )
    pad128 = MultiDomainCollator(tokenizer.pad_token_id, padding="max_length", max_length=max_length)
    batches = []
    for batch in trainers["hrkd-learned+cache"].get_train_dataloader():  # the same rows for every variant
        batches.append(batch)
        if len(batches) == args.steps + args.warmup + 1:
            break
    if len(batches) < args.steps + args.warmup + 1:
        raise SystemExit(
            f"--examples_per_domain {args.examples_per_domain} gives {len(batches)} batches of {b} per domain; "
            f"--steps {args.steps} + --warmup {args.warmup} + 1 (memory) need {args.steps + args.warmup + 1}: "
            f"raise it to at least {b * (args.steps + args.warmup + 1)}"
        )
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    memory = Memory(device)
    variants = tuple(args.variants)
    times = {k: [] for k in variants}
    peaks = {k: [] for k in variants}
    relational_seconds = {k: [] for k in variants}
    teacher_seconds = {k: [] for k in variants}
    padded_tokens = {k: [] for k in variants}
    for number, batch in enumerate(batches):
        rows = [
            {k: v[i].tolist() for k, v in batch.items() if k != "example_index"}
            for i in range(len(batch["input_ids"]))
        ]
        for kind in (
            variants[number % len(variants) :] + variants[: number % len(variants)]
        ):  # rotate the order
            relational_seconds[kind].append(0.0)
            teacher_seconds[kind].append(0.0)
            if kind == REFERENCE:
                features = [{k: [t for t, m in zip(r[k], r["attention_mask"]) if m] if k in ("input_ids", "token_type_ids") else r[k] for k in r if k != "attention_mask"} for r in rows]  # fmt: skip
                domain_batches = []
                for d in range(len(domains)):
                    part = pad128([f for f in features if f["domain_ids"] == d])
                    domain_batches.append({k: v.to(device) for k, v in part.items()})
                padded_tokens[kind].append(sum(x["input_ids"].numel() for x in domain_batches))

                def run(domain_batches=domain_batches):
                    with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):  # forward in bf16
                        research.step(domain_batches)
            else:
                trainer = trainers[kind]
                inputs = {
                    k: v.to(device)
                    for k, v in batch.items()
                    if kind.endswith("+cache") or k != "example_index"
                }
                padded_tokens[kind].append(inputs["input_ids"].numel())

                def run(trainer=trainer, inputs=inputs):
                    trainer.training_step(trainer.model, inputs)
                    trainer.optimizer.step()
                    trainer.optimizer.zero_grad()
                    trainer.state.global_step += 1  # as Trainer does (gradient-alignment scores every k-th)

            target = trainers.get(kind)
            wrapped = (
                target.accelerator.unwrap_model(target.model) if isinstance(target, HRKDTrainer) else None
            )
            memory_round = number == len(batches) - 1  # the last round measures memory, untimed
            context = memory.peak(peaks[kind]) if memory_round else contextlib.nullcontext()
            with context:
                synchronize()
                begin = time.perf_counter()
                if wrapped is not None:
                    with timed_method(wrapped, "relational_ratios", relational_seconds[kind], synchronize), \
                            timed_method(target, "_teacher_forward", teacher_seconds[kind], synchronize):  # fmt: skip
                        run()
                else:
                    run()
                synchronize()
                elapsed = time.perf_counter() - begin
            if args.warmup <= number < len(batches) - 1:
                times[kind].append(elapsed)
        print(
            f"round {number + 1}/{len(batches)}: "
            + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in variants if times[k]),
            flush=True,
        )
    rows_per_step = b * len(domains)
    skip = args.warmup
    result = {}
    for kind in variants:
        median = statistics.mean(times[kind])  # every variant ran the same batches: their mean is comparable
        result[kind] = {
            "mean_step_seconds": median,
            "steps_per_second": 1 / median,
            "examples_per_second": rows_per_step / median,
            "peak_memory_bytes": max(peaks[kind]) if peaks[kind] else None,
            "relational_forward_seconds": statistics.median(relational_seconds[kind][skip:-1]),
            "teacher_forward_seconds": statistics.median(teacher_seconds[kind][skip:-1]),
            "mean_padded_tokens_per_step": statistics.mean(padded_tokens[kind]),
        }
    reference = result[REFERENCE]
    for kind in variants:
        result[kind]["throughput_vs_reference"] = (
            reference["mean_step_seconds"] / result[kind]["mean_step_seconds"]
        )
        if reference["peak_memory_bytes"]:
            result[kind]["memory_vs_reference"] = (result[kind]["peak_memory_bytes"] or 0) / reference[
                "peak_memory_bytes"
            ]
    for kind in [k for k in ("hrkd-learned", "hrkd-frozen", *ADAPTIVE, *ADAPTIVE_SETTINGS) if k in variants]:
        result[kind]["step_time_vs_uniform_kd"] = (
            result[kind]["mean_step_seconds"] / result["uniform-kd"]["mean_step_seconds"]
        )
    cache = trainers["hrkd-learned+cache"].teacher_cache
    return {"variants": result, "rows_per_step": rows_per_step, "steps": args.steps, "warmup": args.warmup,
            "cache_megabytes": cache.nbytes / 1e6, "cache_build_seconds": cache.manifest["build_seconds"]}  # fmt: skip


def cache_run_child(
    args, sizes, data, tokenizer, teacher_dir, student_dir, device, workdir, cached: bool
) -> dict:
    """One ``--cache_epochs`` run of HRKD (learned) with ``Trainer.train``, in its own process."""
    domains, labels = domain_names(data), label_names(data)
    b, max_length = sizes["per_domain_batch_size"], sizes["max_length"]
    train = tokenize_multi_domain(
        per_domain_head(data["train"], args.cache_examples_per_domain), tokenizer, max_length
    )
    config = HRKDConfig(
        output_dir=os.path.join(workdir, f"epochs-{cached}"), per_domain_train_batch_size=b, max_length=max_length,
        report_to="none", use_cpu=device.type == "cpu", learning_rate=args.lr, num_train_epochs=args.cache_epochs, bf16=args.bf16,
        disable_tqdm=True, seed=42, save_strategy="no", logging_steps=10_000, relational_mode="learned",
        teacher_cache=cached, teacher_cache_dir=os.path.join(workdir, f"epochs-cache-{time.time_ns()}"),
    )  # fmt: skip
    trainer = HRKDTrainer(
        model=multi_domain(student_dir, domains, labels, seed=0),
        teacher_model=multi_domain(teacher_dir, domains, labels, seed=1),
        args=config, train_dataset=train, processing_class=tokenizer,
    )  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    begin = time.perf_counter()
    trainer.train()  # the cache, when on, is built inside train(): its cost is included
    seconds = time.perf_counter() - begin
    return {
        "total_seconds": seconds,
        "steps": trainer.state.global_step,
        "train_loss": trainer.state.log_history[-1].get("train_loss"),
        "peak_cuda_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        "cache_build_seconds": trainer.teacher_cache.manifest["build_seconds"] if cached else None,
        "cache_megabytes": trainer.teacher_cache.nbytes / 1e6 if cached else None,
    }


def cache_run(args, workdir) -> dict:
    """``--cache_epochs`` epochs end to end without and with the cache, each in a fresh process (same
    models and data), so that each run's peak memory is its own (peak RSS from ``wait4``)."""
    out = {}
    for name, flag in (("without cache", "without"), ("with cache", "with")):
        result = os.path.join(workdir, f"cache-run-{flag}.json")
        command = [sys.executable, os.path.abspath(__file__), "--sizes", args.sizes, "--lr", str(args.lr),
                   "--cache_epochs", str(args.cache_epochs), "--cache_examples_per_domain", str(args.cache_examples_per_domain),
                   "--device", args.device, *(["--bf16"] if args.bf16 else []), "--_cache_child", flag, "--_workdir", workdir, "--out", result]  # fmt: skip
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            raise RuntimeError(f"cache run {flag} failed ({status}): {' '.join(command)}")
        with open(result) as handle:
            out[name] = json.load(handle)
        out[name]["peak_rss_bytes"] = usage.ru_maxrss * 1024
        print(f"{args.cache_epochs} epochs {name}: {out[name]['total_seconds']:.1f}s", flush=True)
    out["speedup"] = out["without cache"]["total_seconds"] / out["with cache"]["total_seconds"]
    out["epochs"] = args.cache_epochs
    out["examples_per_domain"] = args.cache_examples_per_domain
    return out


def cuda(run: dict) -> str:
    return "" if run.get("peak_cuda_bytes") is None else f"{run['peak_cuda_bytes'] / 1e6:.0f}"


def markdown(report: dict) -> str:
    steps = report["step_benchmark"]["variants"]
    unit = (
        "MB above resident (peak RSS rise)" if report["machine"]["device"] == "cpu" else "MB (peak allocated)"
    )
    lines = [
        f"Sizes `{report['sizes']}`, {report['step_benchmark']['rows_per_step']} examples per step, "
        f"mean over the same {report['step_benchmark']['steps']} batches, {report['machine']['device']} "
        f"({report['machine'].get('gpu', report['machine'].get('platform'))}).",
        "",
        f"| variant | ms / step | steps / s | throughput × research loop | padded tokens / step | teacher fwd ms | relational fwd ms | peak memory, {unit} | memory × research loop |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in steps.items():
        memory = row["peak_memory_bytes"]
        lines.append(
            f"| {kind} | {1000 * row['mean_step_seconds']:.0f} | {row['steps_per_second']:.2f} | "
            f"**{row['throughput_vs_reference']:.2f}×** | {row['mean_padded_tokens_per_step']:.0f} | "
            f"{1000 * row['teacher_forward_seconds']:.0f} | {1000 * row['relational_forward_seconds']:.1f} | "
            f"{'' if memory is None else f'{memory / 1e6:.0f}'} | {row.get('memory_vs_reference', float('nan')):.2f} |"
        )
    lines += ["", f"HRKD (learned) step time / uniform KD: **{steps['hrkd-learned']['step_time_vs_uniform_kd']:.3f}** "
              f"(frozen: {steps['hrkd-frozen']['step_time_vs_uniform_kd']:.3f})."]  # fmt: skip
    others = [kind for kind in (*ADAPTIVE, *ADAPTIVE_SETTINGS) if kind in steps]
    if others:
        lines += ["", "Other weightings, step time / uniform KD: " + ", ".join(
            f"{kind} **{steps[kind]['step_time_vs_uniform_kd']:.3f}**" for kind in others) + "."]  # fmt: skip
    cache = report.get("cache_run")
    if cache:
        a, b = cache["without cache"], cache["with cache"]
        lines += [
            "",
            f"{cache['epochs']} epochs of HRKD (learned), {cache['examples_per_domain']} examples per domain, `Trainer.train` end to end:",
            "",
            "| run | total s | steps | cache build s | cache MB on disk | peak RSS of the process, MB | peak CUDA MB |",
            "|---|---|---|---|---|---|---|",
            f"| without cache | {a['total_seconds']:.1f} | {a['steps']} | | | {a['peak_rss_bytes'] / 1e6:.0f} | {cuda(a)} |",
            f"| with cache | {b['total_seconds']:.1f} | {b['steps']} | {b['cache_build_seconds']:.1f} | {b['cache_megabytes']:.0f} | {b['peak_rss_bytes'] / 1e6:.0f} | {cuda(b)} |",
            "",
            f"Speed-up of the cache over the whole run: **{cache['speedup']:.2f}×**.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", choices=list(SIZES), default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--examples_per_domain", type=int, default=400, help="training rows the steps draw from"
    )
    parser.add_argument(
        "--cache_epochs", type=int, default=10, help="epochs of the end-to-end cache run (0: skip)"
    )
    parser.add_argument("--cache_examples_per_domain", type=int, default=96)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument(
        "--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
        help="variants to time (the research loop, uniform-kd and the three hrkd variants are always included)",
    )  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 mixed precision (forward passes; losses and ratios stay fp32)",
    )
    parser.add_argument("--out", default=None, help="JSON path (a .md table is written next to it)")
    parser.add_argument("--_cache_child", choices=["with", "without"], help=argparse.SUPPRESS)
    parser.add_argument("--_workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    required = (
        REFERENCE,
        "uniform-kd",
        "hrkd-frozen",
        "hrkd-learned",
        "hrkd-learned+cache",
    )  # the ratios' terms
    args.variants = [v for v in VARIANTS if v in args.variants or v in required]
    device = torch.device(args.device)
    sizes = SIZES[args.sizes]
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(offline_minilm_path())
    data = load_vader()
    workdir = args._workdir or tempfile.mkdtemp(prefix="hrkd-speed-")
    teacher_dir, student_dir = os.path.join(workdir, "teacher"), os.path.join(workdir, "student")
    if args._cache_child:  # one end-to-end cache run, in its own process (see cache_run)
        cached = args._cache_child == "with"
        child = cache_run_child(
            args, sizes, data, tokenizer, teacher_dir, student_dir, device, workdir, cached
        )
        with open(args.out, "w") as handle:
            json.dump(child, handle)
        return 0
    save_random_encoder(teacher_dir, sizes["teacher"], len(tokenizer), 1, tokenizer)
    save_random_encoder(student_dir, sizes["student"], len(tokenizer), 2, tokenizer)
    report = {
        "sizes": args.sizes,
        "bf16": args.bf16,
        "shapes": sizes,
        "machine": machine_description(device),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "step_benchmark": step_benchmark(
            args, sizes, data, tokenizer, teacher_dir, student_dir, device, workdir
        ),
    }
    if args.cache_epochs:
        report["cache_run"] = cache_run(args, workdir)
    table = markdown(report)
    print(table)
    out = args.out or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "results", f"speed_{args.sizes}_{device.type}.json"
    )
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(report, handle, indent=2)
    with open(os.path.splitext(out)[0] + ".md", "w") as handle:
        handle.write(table)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
