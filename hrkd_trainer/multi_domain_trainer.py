"""``MultiDomainTrainer``: ``transformers.Trainer`` for multi-domain models (the teacher of HRKD §2.1,
and the base of every trainer here).

It adds only what multi-domain training needs: the domain batch sampler, per-domain evaluation with
an average, saving in the export layout (training-only modules in checkpoints, via
``training_state``), the shared logging windows (``training_logs``), and a ``compute_loss`` whose
evaluation branch every subclass shares (subclasses override :meth:`training_loss`).
"""

from __future__ import annotations

import logging
import os

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME

from .collate import MultiDomainCollator, student_inputs
from .config import MultiDomainArguments
from .metrics import accuracy_metrics, average_over_domains
from .modeling import MultiDomainModel
from .sampling import DomainBatchSampler, MixedBatchSampler
from .sharded import is_sharded, load_full_state, module_path, part_state, with_prefix
from .training_logs import TrainingLogs
from .training_state import load_training_modules, read_training_modules, save_training_modules
from .vocabulary import DomainSampling

logger = logging.getLogger(__name__)


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
        #: per-window buffers averaged in log() (metrics, per-domain components, ratios)
        self.training_logs = TrainingLogs()
        self.domain_batch_sampler: DomainBatchSampler | MixedBatchSampler | None = None
        if self.train_dataset is not None:
            self._check_train_dataset(self.train_dataset)

    # ------------------------------------------------------------------ helpers
    def every_parameter_gets_gradient(self, args: MultiDomainArguments) -> bool:
        """Whether every trainable parameter gets a gradient in every step (then DDP needs no search
        for unused parameters): only when every step holds every domain, so every head is used."""
        return args.domain_sampling == DomainSampling.EVERY_DOMAIN

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
        if self.args.domain_sampling == DomainSampling.EVERY_DOMAIN:
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

    # ------------------------------------------------------------------ loss and logs
    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """Evaluation: the plain model on the student inputs; training: :meth:`training_loss`. Columns
        the model does not read (instance weights, teacher ids, cache indices) never reach it."""
        if model.training:
            loss, outputs = self.training_loss(model, inputs)
        else:
            outputs = model(**student_inputs(inputs), labels=inputs.get("labels"))
            loss = outputs.loss
        return (loss, outputs) if return_outputs else loss

    def training_loss(self, model, inputs) -> tuple[torch.Tensor, object]:
        """Fine-tuning: each domain head's cross-entropy on its rows. Returns ``(loss, outputs)``."""
        outputs = model(**student_inputs(inputs), labels=inputs["labels"])
        return outputs.loss, outputs

    @property
    def log_positions(self) -> list[str] | None:
        """Names of the weighted positions in ratio logs (None: no ratios)."""
        return None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if not any(key.startswith("eval_") for key in logs):
            logs = {**logs, **self.training_logs.flush(self.student.domains, self.log_positions)}
        super().log(logs, start_time)

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
    def _save_checkpoint(self, model, trial) -> None:
        """A checkpoint: the student in the compact layout and the training modules (see :meth:`_save`)."""
        self._saving_checkpoint = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._saving_checkpoint = False

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """Write the export (and, in checkpoints, the training modules). Under FSDP2 and ZeRO-3,
        ``Trainer.save_model`` passes the full state it gathered from the shards: that is written, as
        the local parameters are shards (:mod:`hrkd_trainer.sharded`)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        if state_dict is not None and not state_dict:  # ZeRO-3 without 16-bit gathering: Trainer passes {}
            logger.warning(
                "no export written to %s: ZeRO-3 did not gather the weights. Set zero3_save_16bit_model: true "
                "(stage3_gather_16bit_weights_on_model_save) or recover them with DeepSpeed's zero_to_fp32.py",
                output_dir,
            )
            return
        os.makedirs(output_dir, exist_ok=True)
        root, states = self.accelerator.unwrap_model(self.model), None
        if state_dict is not None:
            states = {
                name: part_state(state_dict, module_path(root, m))
                for name, m in self.training_modules().items()
            }
            state_dict = part_state(state_dict, module_path(root, self.student))
        # a checkpoint holds the encoder once: only hrkd-trainer loads it back (resume, the best snapshot)
        domain_copies = self.args.export_domain_copies and not self._saving_checkpoint
        self.student.save_pretrained(
            output_dir, tokenizer=self.processing_class, state_dict=state_dict, domain_copies=domain_copies
        )
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
        if self._saving_checkpoint:
            save_training_modules(self.training_modules(), output_dir, states)

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
        root = self.accelerator.unwrap_model(self.model)
        if not is_sharded(root):
            self.student.load_weights_from(checkpoint)
            load_training_modules(self.training_modules(), checkpoint)
            return
        # FSDP2: the full state from the export and the module file, re-sharded by torch on every process
        exported = MultiDomainModel.from_pretrained(checkpoint).state_dict()
        full = with_prefix(exported, module_path(root, self.student))
        modules = self.training_modules()
        for name, state in read_training_modules(modules, checkpoint).items():
            full.update(with_prefix(state, module_path(root, modules[name])))
        load_full_state(root, full)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        self._load_training_state(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        if self.is_deepspeed_enabled:  # the engine's own checkpoint holds every module (Trainer's route)
            return super()._load_best_model()
        self._load_training_state(self.state.best_model_checkpoint)
