"""``HRKDTrainer``: multi-domain knowledge distillation (HRKD §2.1-2.3) as Trainer hooks.

``compute_loss`` has one path for every weighting: teacher signal (``teacher``: live or cached) →
student forward → per-domain component losses over the global batch (``components``) → the loss
weighting (``weighting``: eq. 5 or eq. 17). Logging windows, the ratio history and the checkpointed
training modules come from ``training_logs`` and ``training_state``.
"""

from __future__ import annotations

import logging

import torch
from datasets import Dataset

from .collate import STUDENT_INPUTS, check_token_alignment, student_inputs
from .components import component_losses, component_rows
from .config import HRKDConfig
from .distill_model import DistillationModel, HiddenProjections
from .distributed import global_sum, prepare_teacher
from .layer_map import parse_layer_map
from .model_card import BASE_TAGS
from .modeling import MultiDomainModel
from .multi_domain_trainer import MultiDomainTrainer, StepSeeds, default_collator
from .relational import RelationalBalancer
from .sharded import full_state, is_sharded
from .teacher import CachedTeacher, LiveTeacher, build_teacher_cache, teacher_cache_spec
from .teacher_cache import CacheSpec, TeacherOutputCache
from .training_logs import ratio_history, window_mean, write_ratio_report
from .training_state import AUX_WEIGHTS_NAME
from .vocabulary import DistillLoss, HeadReduction, HiddenProjection, ProjectionInit, RelationalMode
from .weighting import LossWeighting, RatioOutput, StepView, build_weighting

logger = logging.getLogger(__name__)

#: names importable from here since release 0.1
__all__ = [
    "AUX_WEIGHTS_NAME",
    "STUDENT_INPUTS",
    "HRKDTrainer",
    "MultiDomainTrainer",
    "StepSeeds",
    "default_collator",
    "window_mean",
]


class HRKDTrainer(MultiDomainTrainer):
    """Multi-domain knowledge distillation (HRKD §2.1, eq. 1-5; §2.2-2.3, eq. 6-17).

    Args:
        model: the student, a :class:`MultiDomainModel`.
        teacher_model: the fine-tuned multi-domain teacher (same domains and labels). It is put in eval
            mode, frozen, and prepared with Accelerate in evaluation mode (never wrapped in DDP).
        args: an :class:`HRKDConfig`.
        teacher_processing_class: the teacher's tokenizer when it differs from the student's (then the
            datasets must carry ``teacher_input_ids``, see ``tokenize_multi_domain``).
        weighting: a :class:`~hrkd_trainer.weighting.LossWeighting` to use instead of the one ``args``
            selects (uniform for ``relational_mode="off"``, else the relational graph).

    Every step gets the teacher signal once (a no-grad teacher forward, or the teacher-output cache),
    runs the student once over the super-batch, computes per domain d ``L_embd`` (eq. 1), ``L_attn``
    (eq. 3, pre-softmax scores), ``L_hidn`` (eq. 4) and ``L_pred`` (eq. 2) over the global batch, and
    lets the weighting turn them into the loss: eq. 5 (uniform) or eq. 17 (ratios r ``(M+1, D)`` of
    the relational module, at the scale of ``ratio_scale``; in ``learned`` mode in its own optimizer
    group). Component losses, ratios and similarity ratios are logged per domain, averaged over each
    logging window; at the end of training the ratio history is written to
    ``output_dir/ratio_history.json`` and ``ratios.png``.
    """

    _tag_names: tuple[str, ...] = BASE_TAGS[:3]

    def __init__(
        self,
        model: MultiDomainModel,
        teacher_model: MultiDomainModel,
        args: HRKDConfig,
        teacher_processing_class=None,
        weighting: LossWeighting | None = None,
        **kwargs,
    ):
        if not isinstance(args, HRKDConfig):
            raise TypeError(f"HRKDTrainer needs an HRKDConfig, got {type(args).__name__}")
        _check_compatible(model, teacher_model)
        self.layer_map = parse_layer_map(
            args.layer_map, model.num_hidden_layers, teacher_model.num_hidden_layers
        )
        capture_attention = args.uses(DistillLoss.ATTENTION)
        if capture_attention:
            if (
                args.attention_head_reduction == HeadReduction.NONE
                and model.num_attention_heads != teacher_model.num_attention_heads
            ):
                raise ValueError(
                    f"the student has {model.num_attention_heads} attention heads and the teacher "
                    f"{teacher_model.num_attention_heads}: per-head attention matching (eq. 3) needs equal counts. "
                    "Set --attention_head_reduction mean, or drop 'attention' from --distill_losses."
                )
            model.prepare_for_capture()
            teacher_model.prepare_for_capture()
        positions = (0, *self.layer_map.student_layers)
        projections = HiddenProjections(
            positions, model.hidden_size, teacher_model.hidden_size, args.hidden_projection
        )
        if weighting is None:
            weighting = build_weighting(args, len(positions), model.num_domains, teacher_model.hidden_size)
        wrapped = DistillationModel(
            model, projections, self.layer_map.student_layers, capture_attention, weighting=weighting,
            prototype_mask_padding=args.prototype_mask_padding, ratio_gradient=args.ratio_gradient,
            **self._extra_training_modules(args, model, teacher_model),
        )  # fmt: skip
        if kwargs.get("data_collator") is None and kwargs.get("processing_class") is not None:
            kwargs["data_collator"] = default_collator(
                args, kwargs["processing_class"], teacher_processing_class
            )
        super().__init__(model=wrapped, args=args, **kwargs)
        if self.train_dataset is not None and any(
            args.uses(x) for x in (DistillLoss.EMBEDDING, DistillLoss.ATTENTION, DistillLoss.HIDDEN)
        ):
            check_token_alignment(self.train_dataset)
        self.teacher_model = prepare_teacher(self.accelerator, teacher_model, shard=args.shard_teacher)
        self._teacher_tokenizer = teacher_processing_class
        self._teacher = teacher_model  # unwrapped, for capture set-up and the cache key
        capture = self.layer_map.teacher_layers if capture_attention else ()
        self.live_teacher = LiveTeacher(self.teacher_model, capture)
        self.teacher_cache: TeacherOutputCache | None = None
        self._step_seeds = StepSeeds(args.seed)

    def every_parameter_gets_gradient(self, args: HRKDConfig) -> bool:
        """Without the prediction loss the heads (and BERT's pooler) get no gradient, without the
        embedding or hidden loss some projections get none (unless the relational module reads them),
        and an ablated relational module in ``learned`` mode leaves some of its parameters unused."""
        all_losses = all(
            args.uses(loss) for loss in (DistillLoss.EMBEDDING, DistillLoss.HIDDEN, DistillLoss.PREDICTION)
        )
        relational_complete = args.relational_mode != RelationalMode.LEARNED or not args.relational_ablations
        return super().every_parameter_gets_gradient(args) and all_losses and relational_complete

    def _extra_training_modules(self, args, student, teacher) -> dict:
        """Further ``DistillationModel`` arguments of subclasses (meta-distillation's domain module)."""
        return {}

    # ------------------------------------------------------------------ parts
    @property
    def teacher(self) -> MultiDomainModel:
        """The teacher model (unwrapped)."""
        return self._teacher

    @property
    def loss_weighting(self) -> LossWeighting:
        return self.accelerator.unwrap_model(self.model).weighting

    @property
    def relational(self) -> RelationalBalancer | None:
        return self.accelerator.unwrap_model(self.model).relational

    @property
    def position_names(self) -> list[str]:
        """Names of the distilled student positions: ``embeddings``, then ``layer<k>`` (1-based)."""
        return ["embeddings", *(f"layer{k}" for k in self.layer_map.student_layers)]

    @property
    def log_positions(self) -> list[str]:
        return self.position_names

    def _relational_seed(self) -> int:
        """A seed for this micro-batch's relational dropout (see :class:`StepSeeds`)."""
        return self._step_seeds.next(self.state.global_step)

    def create_optimizer(self, *args, **kwargs):
        """Trainer's optimizer, with the weighting's own parameters (``learned`` mode) in their own group."""
        optimizer = super().create_optimizer(*args, **kwargs)
        group = self.loss_weighting.optimizer_group()
        if group is None or any(g.get("hrkd_relational") for g in optimizer.param_groups):
            return optimizer  # nothing to train, or the group exists already
        ids = {id(p) for p in group["params"]}
        for existing in optimizer.param_groups:
            existing["params"] = [p for p in existing["params"] if id(p) not in ids]
        optimizer.add_param_group(group)
        return optimizer

    def training_modules(self) -> dict[str, torch.nn.Module]:
        model = self.accelerator.unwrap_model(self.model)
        modules = {"projections": model.projections}
        if model.relational is not None:
            modules["relational"] = model.relational  # the 0.1 checkpoint name
        elif len(model.weighting.state_dict()):
            modules["weighting"] = model.weighting  # e.g. loss-progress averages, group-DRO weights
        if model.domain_transfer is not None:
            modules["domain_transfer"] = model.domain_transfer
        return modules

    def save_training_state(self, directory: str) -> None:
        """Write projections and relational module (never part of the export) for case studies. Under
        FSDP2 / ZeRO-3 the modules are gathered first: every process must call this."""
        root = self.accelerator.unwrap_model(self.model)
        gathered = full_state(root) if is_sharded(root) else None
        if self.args.should_save:
            root.save_training_state(directory, gathered)

    # ------------------------------------------------------------------ loss
    def training_loss(self, model, inputs):
        """Teacher signal → student forward → per-domain components → the weighting's loss."""
        teacher = self._teacher_outputs(inputs)
        extra = {"relational_seed": self._relational_seed()} if self.loss_weighting.needs_step_seed else {}
        student = model(**student_inputs(inputs), **extra)
        components = self.component_losses(student, teacher, inputs)
        weighting = self.loss_weighting
        weighting.observe_step(
            StepView(components, student, inputs, self.student, self.layer_map.student_layers,
                     self.state.global_step, global_sum)
        )  # fmt: skip
        weighted = weighting(components, _ratio_output(student))
        keys = [loss.key for loss in DistillLoss if self.args.uses(loss)]
        self.training_logs.add_components(components, keys)
        self.training_logs.add_ratios(weighted.ratios, weighted.similarity)
        return weighted.loss, student

    def _teacher_outputs(self, inputs):
        """The teacher side of a training step: from the cache when it is on, else a teacher forward."""
        if self.teacher_cache is not None:
            return CachedTeacher(self.teacher_cache, self._teacher_forward)(inputs)
        return self._teacher_forward(inputs)

    def _teacher_forward(self, inputs):
        return self.live_teacher(inputs)

    def component_rows(self, student, teacher, inputs) -> dict:
        """Per-example partial sums of every enabled loss (:func:`hrkd_trainer.components.component_rows`)."""
        return component_rows(
            student, teacher, inputs["attention_mask"], self.args, self.layer_map.pairs, inputs.get("labels")
        )

    def component_losses(self, student, teacher, inputs) -> dict[str, torch.Tensor]:
        """Per-domain losses over the *global* batch: ``embd`` (D,), ``attn`` (M, D), ``hidn`` (M, D),
        ``pred`` (D,) (zeros when off); see :func:`hrkd_trainer.components.component_losses`."""
        rows = self.component_rows(student, teacher, inputs)
        return component_losses(
            rows, inputs["domain_ids"], self.student.num_domains, len(self.layer_map.pairs),
            self.args.hard_label_weight,
        )  # fmt: skip

    # ------------------------------------------------------------------ ratios report
    def ratio_history(self) -> list[dict]:
        """``[{"step", "ratios": P×D}]`` from the logged ratios (a resumed run keeps the earlier steps)."""
        return ratio_history(self.state.log_history, self.position_names, self.student.domains)

    def save_ratio_report(self, directory: str) -> None:
        """``ratio_history.json`` (ratios per logging step) and a ``ratios.png`` heatmap over training."""
        history = self.ratio_history()
        if not self.args.should_save or not history:
            return
        report = {
            "positions": self.position_names,
            "domains": self.student.domains,
            "relational_mode": str(self.args.relational_mode),
            "ablations": [str(a) for a in self.args.relational_ablations],
            "history": history,
        }
        write_ratio_report(directory, report)

    def train(self, *args, **kwargs):
        resuming = kwargs.get("resume_from_checkpoint") or (args and args[0])
        if self.args.projection_init == ProjectionInit.LSTSQ and not resuming:  # a checkpoint holds them
            self.fit_projections()
        if self.args.teacher_cache and self.teacher_cache is None:
            self.teacher_cache = self.build_teacher_cache()
        output = super().train(*args, **kwargs)
        self.save_ratio_report(self.args.output_dir)
        return output

    @torch.no_grad()
    def fit_projections(self) -> None:
        """``--projection_init lstsq``: each learned projection set to the least-squares map from the
        student's to the teacher's states on the real tokens of the first training rows (both models
        in eval mode; no random number is drawn)."""
        root = self.accelerator.unwrap_model(self.model)
        projections = root.projections
        if projections.mode != HiddenProjection.LINEAR or self.train_dataset is None:
            return
        dataset, rows = self.train_dataset, min(len(self.train_dataset), self.args.projection_init_examples)
        pairs = [(0, 0), *self.layer_map.pairs]
        states: list[tuple[list, list]] = [([], []) for _ in pairs]
        was_training = self.student.training
        self.student.eval()
        batch_size = self.args.per_domain_train_batch_size * self.student.num_domains
        for start in range(0, rows, batch_size):
            inputs = self._prepare_inputs(
                self.data_collator([dataset[i] for i in range(start, min(rows, start + batch_size))])
            )
            student = self.student(**student_inputs(inputs), output_hidden_states=True)
            teacher = self._teacher_forward(inputs)
            real = inputs["attention_mask"].bool()
            for (s, t), (xs, ys) in zip(pairs, states):
                xs.append(student.hidden_states[s][real].float().cpu())
                ys.append(teacher.hidden_states[t][real].float().cpu())
        self.student.train(was_training)
        for position, (xs, ys) in zip((0, *self.layer_map.student_layers), states):
            projections.fit(position, torch.cat(xs), torch.cat(ys))
        logger.info("projections: least-squares start from %d training rows", rows)

    # ------------------------------------------------------------------ teacher cache
    def teacher_cache_spec(self) -> CacheSpec:
        return teacher_cache_spec(self.args, self.layer_map.teacher_layers)

    def _training_examples(self) -> Dataset:
        dataset = super()._training_examples()
        if self.teacher_cache is None:
            return dataset
        return dataset.add_column("example_index", list(range(len(dataset))))

    def build_teacher_cache(self) -> TeacherOutputCache:
        """Open the teacher cache of this teacher, data and layer map, building it if needed
        (:func:`hrkd_trainer.teacher.build_teacher_cache`)."""
        if self.train_dataset is None:
            raise ValueError("the teacher cache is built from the train_dataset, which is not set")
        dataset = self.train_dataset

        def run_batch(rows):
            return self._teacher_forward(self._prepare_inputs(self.data_collator([dataset[i] for i in rows])))

        return build_teacher_cache(
            self._teacher, dataset, self.teacher_cache_spec(), [self.processing_class, self._teacher_tokenizer],
            run_batch, self.args.per_domain_train_batch_size * self.student.num_domains, self.accelerator,
            root=self.args.teacher_cache_dir,
        )  # fmt: skip


def _ratio_output(student):
    """The ratios the student wrapper's forward computed, as the weighting's input."""
    if getattr(student, "ratios", None) is None:
        return None
    return RatioOutput(student.ratios, tuple(student.similarity or ()))


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
