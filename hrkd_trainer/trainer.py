"""Trainer classes: multi-domain fine-tuning (the teacher of §2.1) and HRKD distillation.

``MultiDomainTrainer`` adds to ``transformers.Trainer`` only what multi-domain training needs: the
domain batch sampler, per-domain evaluation with an average, and saving in the export layout.
``HRKDTrainer`` adds the frozen teacher and the distillation losses (``compute_loss``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict

import safetensors.torch
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME

from .collate import MultiDomainCollator, check_token_alignment
from .config import HRKDConfig, MultiDomainArguments
from .distill_model import DistillationModel, HiddenProjections
from .distributed import global_sum, prepare_teacher
from .layer_map import parse_layer_map
from .losses import (
    attention_mse_rows,
    hidden_mse_rows,
    hrkd_loss,
    multi_domain_kd_loss,
    per_domain_sums,
    soft_cross_entropy_rows,
)
from .metrics import accuracy_metrics, average_over_domains
from .modeling import MultiDomainModel
from .relational import RelationalBalancer, normalised_entropy, ratio_kl_to_uniform
from .sampling import DomainBatchSampler, MixedBatchSampler
from .teacher_cache import CacheSpec, TeacherOutputCache, cache_key, default_cache_root, teacher_columns

logger = logging.getLogger(__name__)

AUX_WEIGHTS_NAME = "hrkd_training_modules.safetensors"
STUDENT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "domain_ids")
#: (log key, --distill_losses name) of each component
COMPONENT_LOSSES = (("embd", "embedding"), ("attn", "attention"), ("hidn", "hidden"), ("pred", "prediction"))
RATIO_HISTORY_NAME = "ratio_history.json"
RATIO_PLOT_NAME = "ratios.png"


class StepSeeds:
    """Seeds that are a pure function of (seed, optimisation step, micro-step): every process draws the
    same ones, and a resumed run draws them again. For per-step randomness inside the loss
    (relational dropout, Meta-KD's domain corruption)."""

    def __init__(self, seed: int):
        self.seed = seed
        self._step, self._micro_step = -1, 0

    def next(self, step: int) -> int:
        if step != self._step:
            self._step, self._micro_step = step, 0
        self._micro_step += 1
        return (self.seed * 1_000_003 + step * 1_009 + self._micro_step) % (2**62)


def window_mean(values: list) -> float:
    """Mean of one logging window: floats, or 0-d tensors kept on device (no host sync per step)."""
    if torch.is_tensor(values[0]):
        return torch.stack(values).float().mean().item()
    return sum(values) / len(values)


def default_collator(args: MultiDomainArguments, tokenizer, teacher_tokenizer=None) -> MultiDomainCollator:
    """The collator both trainers use unless given one: padding settings from ``args``."""
    return MultiDomainCollator(
        tokenizer.pad_token_id,
        teacher_pad_token_id=None if teacher_tokenizer is None else teacher_tokenizer.pad_token_id,
        padding=args.padding,
        max_length=args.max_length,
        pad_to_multiple_of=args.pad_to_multiple_of,
    )


class MultiDomainTrainer(Trainer):
    """``Trainer`` for :class:`MultiDomainModel` with one sub-batch of every domain per step.

    * training batches come from :class:`DomainBatchSampler` (epoch length set by the fit domain);
    * ``eval_dataset`` may be ``{domain: dataset}``: metrics come back as ``eval_<domain>_accuracy``
      plus ``eval_avg_accuracy``, the unweighted mean over domains (use
      ``metric_for_best_model="avg_accuracy"``);
    * checkpoints and ``save_model`` write the export layout of :meth:`MultiDomainModel.save_pretrained`
      (loadable with ``AutoModel`` / ``AutoModelForSequenceClassification``); modules used only for
      training are stored next to it in checkpoints, never in a final export.
    """

    # our losses are per-batch means: Trainer must divide them by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model=None,
        args: MultiDomainArguments | None = None,
        data_collator=None,
        processing_class=None,
        compute_metrics=accuracy_metrics,
        **kwargs,
    ):
        if args is None:
            raise ValueError("MultiDomainTrainer needs args (MultiDomainArguments or HRKDConfig)")
        if data_collator is None and processing_class is None:
            raise ValueError(
                "MultiDomainTrainer needs processing_class=<the student's tokenizer> (batches are padded "
                "with its pad token) or a data_collator such as hrkd_trainer.MultiDomainCollator(pad_token_id)"
            )
        if data_collator is None:
            data_collator = default_collator(args, processing_class)
        if args.ddp_find_unused_parameters is None:
            # DDP's search for unused parameters costs a graph traversal per step: only when needed
            args.ddp_find_unused_parameters = not self.every_parameter_gets_gradient(args)
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            processing_class=processing_class,
            compute_metrics=compute_metrics,
            **kwargs,
        )
        self.model_accepts_loss_kwargs = False  # transformers < 5 equivalent of loss_is_scaled_for_ga
        self._saving_checkpoint = False
        self.domain_batch_sampler: DomainBatchSampler | MixedBatchSampler | None = None
        if self.train_dataset is not None:
            self._check_train_dataset(self.train_dataset)

    # ------------------------------------------------------------------ helpers
    def every_parameter_gets_gradient(self, args: MultiDomainArguments) -> bool:
        """Whether every trainable parameter gets a gradient in every step (then DDP needs no search
        for unused parameters): only when every step holds every domain, so every head is used."""
        return args.domain_sampling == "every-domain"

    @property
    def student(self) -> MultiDomainModel:
        """The multi-domain model being trained (the student when distilling)."""
        model = self.accelerator.unwrap_model(self.model)
        # training wrappers (DistillationModel, MetaTeacherModel) name the model they train
        return getattr(model, "trained_model", model)

    def _check_train_dataset(self, dataset: Dataset) -> None:
        missing = [c for c in ("input_ids", "domain_ids") if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"the train dataset lacks column(s) {missing}; tokenise it with "
                "hrkd_trainer.tokenize_multi_domain first"
            )
        domains = self.student.domains
        present = set(dataset.unique("domain_ids"))
        empty = [d for i, d in enumerate(domains) if i not in present]
        if empty:
            raise ValueError(
                f"the train dataset has no examples of domain(s) {empty}; every domain needs data"
            )

    def _fit_domain_id(self) -> int | None:
        name = self.args.fit_domain
        if name is None:
            return None
        domains = self.student.domains
        if name not in domains:
            raise ValueError(f"--fit_domain {name!r} is not a domain of the model ({domains})")
        return domains.index(name)

    # ------------------------------------------------------------------ data
    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("Trainer: training requires a train_dataset")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        if self.args.domain_sampling == "every-domain":
            self.domain_batch_sampler = DomainBatchSampler(
                self.train_dataset["domain_ids"],
                per_domain_batch_size=self.args.per_domain_train_batch_size,
                fit_domain=self._fit_domain_id(),
                num_processes=self.accelerator.num_processes,
                seed=seed,
                num_domains=self.student.num_domains,
            )
        else:
            self.domain_batch_sampler = MixedBatchSampler(
                self.train_dataset["domain_ids"],
                batch_size=self.args.per_domain_train_batch_size,
                mode=self.args.domain_sampling,
                seed=seed,
            )
        loader = DataLoader(
            self._training_examples(),
            batch_sampler=self.domain_batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers
            and self.args.dataloader_num_workers > 0,
        )
        return self.accelerator.prepare(loader)

    def _training_examples(self) -> Dataset:
        """The dataset the training loader reads (subclasses may add columns)."""
        return self.train_dataset

    # ------------------------------------------------------------------ evaluation
    def evaluate(
        self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if isinstance(dataset, dict) and dataset:  # one domain too: metric_for_best_model is the same
            domains = list(dataset)
            average = {
                f"{metric_key_prefix}_avg_accuracy": average_over_domains(
                    metrics, metric_key_prefix, domains, "accuracy"
                )
            }
            metrics.update(average)
            self.log(average)
        return metrics

    # ------------------------------------------------------------------ saving and loading
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        self._saving_checkpoint = _internal_call
        try:
            super().save_model(output_dir, _internal_call)
        finally:
            self._saving_checkpoint = False

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.student.save_pretrained(output_dir, tokenizer=self.processing_class)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
        modules = self.training_modules()
        if self._saving_checkpoint and modules:
            state = {
                f"{name}.{key}": value.detach().cpu().contiguous()
                for name, module in modules.items()
                for key, value in module.state_dict().items()
            }
            if state:
                safetensors.torch.save_file(state, os.path.join(output_dir, AUX_WEIGHTS_NAME))

    # ------------------------------------------------------------------ Hub
    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs,
    ):
        """Publish the student only (encoder, every domain's classifier, tokenizer) with a generated
        model card and results, as ``hub_upload.py`` does (:func:`hrkd_trainer.hub.publish_trainer`).

        The teacher, projections, relational module and optimizer state are never uploaded. The push
        is always blocking (one commit); ``endpoint`` may be passed for a non-default Hub.
        """
        from .hub import publish_trainer

        return publish_trainer(
            self, commit_message, token, revision, private, endpoint=kwargs.get("endpoint")
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """Checkpoints hold optimizer states and training-only modules: they are never pushed. With
        ``push_to_hub=True``, call :meth:`push_to_hub` after training to publish the student."""
        return None

    def training_modules(self) -> dict[str, torch.nn.Module]:
        """Modules trained alongside the model but never exported (saved in checkpoints only)."""
        return {}

    def _load_training_state(self, checkpoint: str) -> None:
        self.student.load_weights_from(checkpoint)
        modules = self.training_modules()
        path = os.path.join(checkpoint, AUX_WEIGHTS_NAME)
        if modules and any(len(m.state_dict()) for m in modules.values()):
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"{checkpoint} has no {AUX_WEIGHTS_NAME}: cannot restore the training modules"
                )
            state = safetensors.torch.load_file(path)
            for name, module in modules.items():
                prefix = f"{name}."
                module.load_state_dict(
                    {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        self._load_training_state(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        self._load_training_state(self.state.best_model_checkpoint)


class HRKDTrainer(MultiDomainTrainer):
    """Multi-domain knowledge distillation (HRKD §2.1, eq. 1-5).

    Args:
        model: the student, a :class:`MultiDomainModel`.
        teacher_model: the fine-tuned multi-domain teacher (same domains and labels). It is put in eval
            mode, frozen, and prepared with Accelerate in evaluation mode (never wrapped in DDP).
        args: an :class:`HRKDConfig`.
        teacher_processing_class: the teacher's tokenizer when it differs from the student's (then the
            datasets must carry ``teacher_input_ids``, see ``tokenize_multi_domain``).

    Every step runs the teacher once (no grad) and the student once over the super-batch and computes,
    per domain d, ``L_embd`` (eq. 1), ``L_attn`` (eq. 3, pre-softmax scores), ``L_hidn`` (eq. 4) and
    ``L_pred`` (eq. 2). With ``relational_mode="off"`` the loss is eq. 5. Otherwise (HRKD, §2.2-2.3) a
    :class:`RelationalBalancer` turns the step's per-domain prototypes into ratios r ``(M+1, D)`` and
    the loss is eq. 17 (at the scale of ``ratio_scale``); in ``learned`` mode the balancer has its own
    optimizer group. Component losses, ratios and similarity ratios are logged per domain, averaged
    over each logging window; at the end of training the ratio history is written to
    ``output_dir/ratio_history.json`` and ``ratios.png``.
    """

    _tag_names: tuple[str, ...] = ("knowledge-distillation", "hrkd", "text-classification")

    def __init__(
        self,
        model: MultiDomainModel,
        teacher_model: MultiDomainModel,
        args: HRKDConfig,
        teacher_processing_class=None,
        **kwargs,
    ):
        if not isinstance(args, HRKDConfig):
            raise TypeError(f"HRKDTrainer needs an HRKDConfig, got {type(args).__name__}")
        _check_compatible(model, teacher_model)
        self.layer_map = parse_layer_map(
            args.layer_map, model.num_hidden_layers, teacher_model.num_hidden_layers
        )
        capture_attention = args.uses("attention")
        if capture_attention:
            if (
                args.attention_head_reduction == "none"
                and model.num_attention_heads != teacher_model.num_attention_heads
            ):
                raise ValueError(
                    f"the student has {model.num_attention_heads} attention heads and the teacher "
                    f"{teacher_model.num_attention_heads}: per-head attention matching (eq. 3) needs equal counts. "
                    "Set --attention_head_reduction mean, or drop 'attention' from --distill_losses."
                )
            model.prepare_for_capture()
            teacher_model.prepare_for_capture()
        projections = HiddenProjections(
            (0, *self.layer_map.student_layers),
            model.hidden_size,
            teacher_model.hidden_size,
            args.hidden_projection,
        )
        relational = self._build_relational(args, model, teacher_model) if args.relational else None
        wrapped = DistillationModel(
            model,
            projections,
            self.layer_map.student_layers,
            capture_attention,
            relational=relational,
            prototype_mask_padding=args.prototype_mask_padding,
            ratio_gradient=args.ratio_gradient,
            **self._extra_training_modules(args, model, teacher_model),
        )
        if kwargs.get("data_collator") is None and kwargs.get("processing_class") is not None:
            kwargs["data_collator"] = default_collator(
                args, kwargs["processing_class"], teacher_processing_class
            )
        super().__init__(model=wrapped, args=args, **kwargs)
        if self.train_dataset is not None and any(args.uses(x) for x in ("embedding", "attention", "hidden")):
            check_token_alignment(self.train_dataset)
        self.teacher_model = prepare_teacher(self.accelerator, teacher_model)
        self._teacher_tokenizer = teacher_processing_class
        self.teacher_cache: TeacherOutputCache | None = None
        self._teacher = teacher_model  # unwrapped, for capture set-up
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self._component_window: list[torch.Tensor] = []
        self._ratio_window: list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = []
        self._step_seeds = StepSeeds(args.seed)

    def every_parameter_gets_gradient(self, args: HRKDConfig) -> bool:
        """Without the prediction loss the heads (and BERT's pooler) get no gradient, without the
        embedding or hidden loss some projections get none (unless the relational module reads them),
        and an ablated relational module in ``learned`` mode leaves some of its parameters unused."""
        all_losses = all(args.uses(loss) for loss in ("embedding", "hidden", "prediction"))
        relational_complete = args.relational_mode != "learned" or not args.relational_ablations
        return super().every_parameter_gets_gradient(args) and all_losses and relational_complete

    def _extra_training_modules(self, args, student, teacher) -> dict:
        """Further ``DistillationModel`` arguments of subclasses (meta-distillation's domain module)."""
        return {}

    # ------------------------------------------------------------------ relational module
    def _build_relational(self, args: HRKDConfig, student, teacher) -> RelationalBalancer:
        """The balancer, initialised from ``args.seed`` without touching the global RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            balancer = RelationalBalancer(
                num_positions=1 + len(self.layer_map.student_layers),
                num_domains=student.num_domains,
                features=teacher.hidden_size,
                heads=args.relational_heads,
                hidden_features=args.relational_hidden_size,
                dropout=args.relational_dropout,
                ablations=args.relational_ablations,
                graph_residual=args.relational_graph_residual,
            )
        if args.relational_mode == "frozen":
            balancer.requires_grad_(False)
        return balancer

    @property
    def relational(self) -> RelationalBalancer | None:
        return self.accelerator.unwrap_model(self.model).relational

    @property
    def position_names(self) -> list[str]:
        """Names of the distilled student positions: ``embeddings``, then ``layer<k>`` (1-based)."""
        return ["embeddings", *(f"layer{k}" for k in self.layer_map.student_layers)]

    def _relational_seed(self) -> int:
        """A seed for this micro-batch's relational dropout (see :class:`StepSeeds`)."""
        return self._step_seeds.next(self.state.global_step)

    def create_optimizer(self, *args, **kwargs):
        """Trainer's optimizer, with the relational module (``learned`` mode) in its own group."""
        optimizer = super().create_optimizer(*args, **kwargs)
        relational = self.relational
        if relational is None or self.args.relational_mode != "learned":
            return optimizer
        params = [p for p in relational.parameters() if p.requires_grad]
        if not params or any(g.get("hrkd_relational") for g in optimizer.param_groups):
            return optimizer  # nothing to train, or the group exists already
        ids = {id(p) for p in params}
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in ids]
        optimizer.add_param_group({
            "params": params,
            "lr": self.args.relational_learning_rate,
            "weight_decay": self.args.relational_weight_decay,
            "hrkd_relational": True,
        })  # fmt: skip
        return optimizer

    def training_modules(self) -> dict[str, torch.nn.Module]:
        model = self.accelerator.unwrap_model(self.model)
        modules = {"projections": model.projections}
        if model.relational is not None:
            modules["relational"] = model.relational
        if model.domain_transfer is not None:
            modules["domain_transfer"] = model.domain_transfer
        return modules

    def save_training_state(self, directory: str) -> None:
        """Write projections and relational module (never part of the export) for case studies."""
        if self.args.should_save:
            self.accelerator.unwrap_model(self.model).save_training_state(directory)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        student_inputs = {k: inputs[k] for k in STUDENT_INPUTS if k in inputs}
        if not model.training:  # evaluation / prediction: the plain student
            outputs = model(**student_inputs, labels=inputs.get("labels"))
            return (outputs.loss, outputs) if return_outputs else outputs.loss
        teacher = self._teacher_outputs(inputs)
        args = self.args
        if args.relational:
            student_inputs["relational_seed"] = self._relational_seed()
        student = model(**student_inputs)
        components = self.component_losses(student, teacher, inputs)
        parts = (components["embd"], components["attn"], components["hidn"], components["pred"])
        if student.ratios is None:  # eq. 5
            loss = multi_domain_kd_loss(*parts, pred_weight=args.pred_loss_weight)
        else:  # eq. 17
            loss = hrkd_loss(*parts, student.ratios, args.pred_loss_weight, args.ratio_scale)
            if args.ratio_entropy_weight:
                loss = loss + args.ratio_entropy_weight * ratio_kl_to_uniform(student.ratios)
        self._record(components, student)
        return (loss, student) if return_outputs else loss

    def _teacher_outputs(self, inputs):
        """The teacher side of a training step: from the cache when it is on, else a teacher forward."""
        if self.teacher_cache is not None and "example_index" in inputs:
            length = inputs["attention_mask"].shape[1]
            return self.teacher_cache.lookup(inputs["example_index"], length, inputs["attention_mask"].device)
        return self._teacher_forward(inputs)

    def _teacher_forward(self, inputs):
        prefix = "teacher_" if "teacher_input_ids" in inputs else ""
        with torch.no_grad():
            return self.teacher_model(
                input_ids=inputs[f"{prefix}input_ids"],
                attention_mask=inputs[f"{prefix}attention_mask"],
                token_type_ids=inputs.get(f"{prefix}token_type_ids"),
                domain_ids=inputs["domain_ids"],
                output_hidden_states=True,
                capture_layers=self.layer_map.teacher_layers if self.args.uses("attention") else (),
            )

    def component_rows(self, student, teacher, inputs) -> dict:
        """Per-example partial sums (:class:`RowLoss`): ``embd`` and ``pred`` one each, ``attn`` and
        ``hidn`` a list with one per mapped layer; None for a loss that is off."""
        args = self.args
        mask = inputs["attention_mask"]
        token_mask = mask if args.mask_padding else None
        pairs = self.layer_map.pairs
        rows: dict = dict.fromkeys(("embd", "attn", "hidn", "pred"))
        if args.uses("embedding"):
            rows["embd"] = hidden_mse_rows(student.projected[0], teacher.hidden_states[0], token_mask)
        if args.uses("hidden"):
            rows["hidn"] = [
                hidden_mse_rows(student.projected[i + 1], teacher.hidden_states[t], token_mask)
                for i, (_, t) in enumerate(pairs)
            ]
        if args.uses("attention"):
            rows["attn"] = [
                attention_mse_rows(
                    student.attention_scores[s], teacher.attention_scores[t], mask,
                    mask_queries=args.mask_padding, head_reduction=args.attention_head_reduction,
                )
                for s, t in pairs
            ]  # fmt: skip
        if args.uses("prediction"):
            rows["pred"] = soft_cross_entropy_rows(student.logits, teacher.logits, args.temperature)
        return rows

    def component_losses(self, student, teacher, inputs) -> dict[str, torch.Tensor]:
        """Per-domain losses over the *global* batch: ``embd`` (D,), ``attn`` (M, D), ``hidn`` (M, D),
        ``pred`` (D,) (zeros when off).

        Each process sums its rows per domain; the sums of every component are added up over the
        processes in one all-reduce (:func:`~hrkd_trainer.distributed.global_sum`) before the division,
        so N processes compute exactly the loss (and, after DDP's averaging, the gradient) of one process
        on the same global batch, also when the processes' batches hold different numbers of tokens.
        """
        domain_ids = inputs["domain_ids"]
        num_domains = self.student.num_domains
        layered = ("attn", "hidn")
        rows = {
            key: value if key in layered else [value]
            for key, value in self.component_rows(student, teacher, inputs).items()
            if value is not None
        }
        means = {}
        if rows:
            sums = [per_domain_sums(r, domain_ids, num_domains) for parts in rows.values() for r in parts]
            totals = global_sum(torch.stack([total for total, _ in sums]))  # (R, D)
            counts = global_sum(torch.stack([count for _, count in sums]).detach())
            split = (totals / counts.clamp_min(1.0)).split([len(parts) for parts in rows.values()])
            means = dict(zip(rows, split))
        layers = len(self.layer_map.pairs)
        out = {}
        for key in ("embd", "attn", "hidn", "pred"):
            if key in means:
                out[key] = means[key] if key in layered else means[key][0]
            else:
                shape = (layers, num_domains) if key in layered else (num_domains,)
                out[key] = torch.zeros(shape, device=domain_ids.device)
        return out

    # ------------------------------------------------------------------ logging
    def _record(self, components: dict[str, torch.Tensor], student=None) -> None:
        """Buffer this step's per-domain components (layers summed), ratios and similarity ratios on
        the device (no host synchronisation per step); ``log`` averages the window."""
        kinds = [key for key, loss in COMPONENT_LOSSES if self.args.uses(loss)]
        if kinds:
            self._component_window.append(
                torch.stack(
                    [components[k].sum(0) if components[k].dim() == 2 else components[k] for k in kinds]
                )
                .detach()
                .float()
            )  # (K, D)
        if student is not None and student.ratios is not None:
            similarity = tuple(a.detach().float() for a in student.similarity or ())
            self._ratio_window.append((student.ratios.detach().float(), similarity))

    def _component_logs(self) -> dict[str, float]:
        """Window means of the per-domain components: one transfer to the host per logging step."""
        kinds = [key for key, loss in COMPONENT_LOSSES if self.args.uses(loss)]
        means = torch.stack(self._component_window).mean(0).cpu().tolist()
        self._component_window.clear()
        return {
            f"{key}_loss/{domain}": value
            for key, row in zip(kinds, means)
            for domain, value in zip(self.student.domains, row)
        }

    def _ratio_logs(self) -> dict[str, float]:
        """Window means of the ratios, their normalised entropy and the similarity ratios."""
        names, domains = self.position_names, self.student.domains
        ratios = torch.stack([r for r, _ in self._ratio_window])  # (T, P, D)
        logs = {"ratio_entropy": torch.stack([normalised_entropy(r) for r in ratios]).mean().item()}
        for m, alphas in enumerate(zip(*(s for _, s in self._ratio_window)), start=1):
            for d, row in enumerate(torch.stack(alphas).mean(0).tolist()):
                logs.update({f"similarity/{names[m]}/{domains[d]}/{names[j]}": v for j, v in enumerate(row)})
        for m, row in enumerate(ratios.mean(0).tolist()):
            logs.update({f"ratio/{names[m]}/{domains[d]}": value for d, value in enumerate(row)})
        self._ratio_window.clear()
        return logs

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if not any(key.startswith("eval_") for key in logs):
            extra = {key: window_mean(v) for key, v in self._metrics.items()}
            self._metrics.clear()
            if self._component_window:
                extra.update(self._component_logs())
            if self._ratio_window:
                extra.update(self._ratio_logs())
            logs = {**logs, **extra}
        super().log(logs, start_time)

    def ratio_history(self) -> list[dict]:
        """``[{"step", "ratios": P×D}]`` from the logged ratios (``state.log_history``, so a resumed run
        keeps the history of the steps before the checkpoint)."""
        names, domains = self.position_names, self.student.domains
        history = []
        for entry in self.state.log_history:
            if f"ratio/{names[0]}/{domains[0]}" in entry:
                ratios = [[entry[f"ratio/{n}/{d}"] for d in domains] for n in names]
                history.append({"step": entry["step"], "ratios": ratios})
        return history

    def train(self, *args, **kwargs):
        if self.args.teacher_cache and self.teacher_cache is None:
            self.teacher_cache = self.build_teacher_cache()
        output = super().train(*args, **kwargs)
        self.save_ratio_report(self.args.output_dir)
        return output

    # ------------------------------------------------------------------ teacher cache
    def teacher_cache_spec(self) -> CacheSpec:
        """What the enabled losses read from the teacher: hidden states at position 0 (embedding loss)
        and at the mapped teacher layers (hidden loss), scores of the mapped layers, logits."""
        args, teacher_layers = self.args, tuple(self.layer_map.teacher_layers)
        hidden = ((0,) if args.uses("embedding") else ()) + (teacher_layers if args.uses("hidden") else ())
        return CacheSpec(
            hidden_layers=tuple(sorted(set(hidden))),
            attention_layers=teacher_layers if args.uses("attention") else (),
            logits=args.uses("prediction"),
            dtype=args.teacher_cache_dtype,
        )

    def _training_examples(self) -> Dataset:
        dataset = super()._training_examples()
        if self.teacher_cache is None:
            return dataset
        return dataset.add_column("example_index", list(range(len(dataset))))

    def build_teacher_cache(self) -> TeacherOutputCache:
        """Open the teacher cache of this teacher, data and layer map, building it if needed: one
        teacher pass over the training set in batches of similar lengths (split over the processes)."""
        if self.train_dataset is None:
            raise ValueError("the teacher cache is built from the train_dataset, which is not set")
        dataset, spec = self.train_dataset, self.teacher_cache_spec()
        tokenizers = [t for t in (self.processing_class, self._teacher_tokenizer) if t is not None]
        key = cache_key(self._teacher, dataset, spec, tokenizers)
        ids = dataset[teacher_columns(dataset)[0]]
        lengths = [len(x) for x in ids]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        size = self.args.per_domain_train_batch_size * self.student.num_domains
        batches = [order[i : i + size] for i in range(0, len(order), size)]

        def run_teacher(batch):
            inputs = self._prepare_inputs(self.data_collator([dataset[i] for i in batch]))
            return self._teacher_forward(inputs)

        root = self.args.teacher_cache_dir or default_cache_root()
        teacher = self._teacher
        cache = TeacherOutputCache.build_or_open(
            root, key, spec, lengths, run_teacher, batches,
            hidden_size=teacher.hidden_size, heads=teacher.num_attention_heads, num_labels=teacher.num_labels,
            process_index=self.accelerator.local_process_index,
            num_processes=int(os.environ.get("LOCAL_WORLD_SIZE", self.accelerator.num_processes)),
            is_main_process=self.accelerator.is_local_main_process,
            wait_for_everyone=self.accelerator.wait_for_everyone,
            description={"teacher": type(teacher.encoder).__name__, "examples": len(dataset)},
        )  # fmt: skip
        if len(cache) != len(dataset):
            raise ValueError(
                f"{cache.directory} holds {len(cache)} examples, the training set {len(dataset)}"
            )
        return cache

    def save_ratio_report(self, directory: str) -> None:
        """``ratio_history.json`` (ratios per logging step) and a ``ratios.png`` heatmap over training."""
        history = self.ratio_history()
        if not self.args.should_save or not history:
            return
        from .plots import plot_ratio_history

        os.makedirs(directory, exist_ok=True)
        report = {
            "positions": self.position_names,
            "domains": self.student.domains,
            "relational_mode": self.args.relational_mode,
            "ablations": list(self.args.relational_ablations),
            "history": history,
        }
        with open(os.path.join(directory, RATIO_HISTORY_NAME), "w") as handle:
            json.dump(report, handle)
        plot_ratio_history(report, os.path.join(directory, RATIO_PLOT_NAME))


def _check_compatible(student: MultiDomainModel, teacher: MultiDomainModel) -> None:
    if not isinstance(student, MultiDomainModel) or not isinstance(teacher, MultiDomainModel):
        raise TypeError(
            "HRKDTrainer needs MultiDomainModel student and teacher (see MultiDomainModel.from_encoder)"
        )
    if student.domains != teacher.domains:
        raise ValueError(
            f"student domains {student.domains} differ from teacher domains {teacher.domains}; "
            "they must be the same, in the same order"
        )
    if student.label_names != teacher.label_names:
        raise ValueError(
            f"student labels {student.label_names} differ from teacher labels {teacher.label_names}"
        )
