"""Case studies as the paper's Tables 5-6: one example per domain → the domain-relational ratios and
hierarchical similarity ratios the trained relational module assigns to them.

    python -m hrkd_trainer.case_study RUN_DIR --text books="A gripping read ..." --text dvd="..." ...
    python -m hrkd_trainer.case_study RUN_DIR --jsonl examples.jsonl   # {"domain", "text", "label"?}

``RUN_DIR`` is a recipe's output folder (``student/`` and ``training_state/``), or give
``--student`` and ``--training-state`` folders. The module runs in eval mode (no dropout) on the D
examples as one batch: each domain's prototype is the mean over its example's tokens (eq. 6).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoTokenizer

from .distill_model import DistillationModel
from .modeling import MultiDomainModel


@dataclass
class CaseStudyRow:
    """One domain's example and what the module made of it.

    ``ratios``: r_{m,d} for every position m = 0..M; ``similarity``: α^H_{m,d} ``(m+1)`` for m = 1..M.
    """

    domain: str
    label: str | None
    text: str
    ratios: list[float]
    similarity: list[list[float]]


@torch.no_grad()
def case_study(
    model: DistillationModel, tokenizer, examples: Sequence[dict], max_length: int = 128
) -> list[CaseStudyRow]:
    """Ratios for one example per domain. ``examples``: dicts with ``domain``, ``text`` (and optional
    ``text_pair``, ``label``); every domain of the student exactly once."""
    if model.relational is None:
        raise ValueError("this run has no relational module (it was trained with --relational_mode off)")
    domains = model.student.domains
    given = [e["domain"] for e in examples]
    unknown = sorted(set(given) - set(domains))
    if unknown:
        raise ValueError(f"unknown domain(s) {unknown}; the student's domains are {domains}")
    if sorted(given) != sorted(domains):
        missing = [d for d in domains if d not in given]
        repeated = sorted({d for d in given if given.count(d) > 1})
        raise ValueError(
            f"a case study needs exactly one example per domain {domains}: missing {missing}, repeated {repeated}"
        )
    ordered = sorted(examples, key=lambda e: domains.index(e["domain"]))
    texts = [e["text"] for e in ordered]
    pairs = [e["text_pair"] for e in ordered] if all("text_pair" in e for e in ordered) else None
    batch = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    domain_ids = torch.arange(len(domains), device=device)
    model.eval()
    token_types = batch.get("token_type_ids")
    out = model.student(
        batch["input_ids"].to(device),
        batch["attention_mask"].to(device),
        None if token_types is None else token_types.to(device),
        domain_ids,
        output_hidden_states=True,
    )
    projected = model.project(out.hidden_states)
    ratios, similarity = model.relational_ratios(projected, batch["attention_mask"].to(device), domain_ids)
    rows = []
    for d, example in enumerate(ordered):
        rows.append(
            CaseStudyRow(
                domain=example["domain"],
                label=example.get("label"),
                text=example["text"],
                ratios=ratios[:, d].tolist(),
                similarity=[alpha[d].tolist() for alpha in similarity or ()],
            )
        )
    return rows


def load_run(run_dir: str | None, student_dir: str | None = None, state_dir: str | None = None):
    """The trained student (with its tokenizer) and its training-only modules."""
    student_dir = student_dir or os.path.join(run_dir, "student")
    state_dir = state_dir or os.path.join(run_dir, "training_state")
    if not os.path.isdir(student_dir):
        raise FileNotFoundError(
            f"no exported student at {student_dir} (a finished recipe run writes RUN_DIR/student)"
        )
    student = MultiDomainModel.from_pretrained(student_dir)
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    return DistillationModel.from_training_state(student, state_dir), tokenizer


def case_study_from_run(run_dir: str, test_split, sets: int = 1) -> list[list[CaseStudyRow]]:
    """``sets`` case studies from a run: the k-th test example of every domain, k = 0..sets-1."""
    model, tokenizer = load_run(run_dir)
    domain_names = test_split.features["domain"].names
    label_names = test_split.features["label"].names
    by_domain: dict[str, list[dict]] = {d: [] for d in model.student.domains}
    for row in test_split:
        name = domain_names[row["domain"]]
        if name in by_domain and len(by_domain[name]) < sets:
            example = {"domain": name, "text": row["text"], "label": label_names[row["label"]]}
            if "text_pair" in row:
                example["text_pair"] = row["text_pair"]
            by_domain[name].append(example)
    count = min(len(v) for v in by_domain.values())
    return [case_study(model, tokenizer, [by_domain[d][k] for d in by_domain]) for k in range(count)]


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def format_case_study(studies: Sequence[Sequence[CaseStudyRow]], width: int = 70) -> str:
    """Markdown tables in the layout of the paper's Tables 5-6."""
    lines = []
    for number, rows in enumerate(studies, start=1):
        lines += [
            f"Case study {number}: domain-relational ratios r_(m,d) over positions m = 0..M (embeddings, then "
            "each student layer) and hierarchical similarity ratios α^H_(m,d) over positions 0..m, for m = 1..M.",
            "",
            "| domain | label | text | domain-relational ratio | hierarchical similarity ratio |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            text = " ".join(row.text.split())
            text = text if len(text) <= width else text[: width - 1] + "…"
            text = text.replace("|", "\\|")
            similarity = ", ".join(_fmt(s) for s in row.similarity) or "–"
            lines.append(
                f"| {row.domain} | {row.label or '–'} | {text} | {_fmt(row.ratios)} | {similarity} |"
            )
        lines.append("")
    return "\n".join(lines)


def _parse_text(value: str) -> dict:
    domain, sep, text = value.partition("=")
    if not sep or not text:
        raise argparse.ArgumentTypeError(f"--text needs DOMAIN=TEXT, got {value!r}")
    return {"domain": domain, "text": text}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hrkd_trainer.case_study", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", nargs="?", help="a recipe's output folder (student/ and training_state/)")
    parser.add_argument("--student", help="exported student folder (default RUN_DIR/student)")
    parser.add_argument("--training-state", help="training state folder (default RUN_DIR/training_state)")
    parser.add_argument(
        "--text", action="append", type=_parse_text, default=[], help="DOMAIN=TEXT, once per domain"
    )
    parser.add_argument("--jsonl", help="a file of {domain, text, label?} lines, one per domain")
    parser.add_argument("--label", action="append", default=[], help="DOMAIN=LABEL to show next to a --text")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not args.run_dir and not (args.student and args.training_state):
        parser.error("give RUN_DIR, or both --student and --training-state")
    examples = list(args.text)
    if args.jsonl:
        with open(args.jsonl) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    row = json.loads(line)
                    if "domain" not in row or "text" not in row:
                        parser.error(f"{args.jsonl}:{number}: each line needs 'domain' and 'text'")
                    examples.append(row)
    labels = dict(item.partition("=")[::2] for item in args.label)
    for example in examples:
        example.setdefault("label", labels.get(example["domain"]))
    if not examples:
        parser.error("no examples: give --text DOMAIN=TEXT for every domain, or --jsonl")
    try:
        model, tokenizer = load_run(args.run_dir, args.student, args.training_state)
        rows = case_study(model, tokenizer, examples, args.max_length)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        print(format_case_study([rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
