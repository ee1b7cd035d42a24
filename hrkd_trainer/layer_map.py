"""Student → teacher layer maps (which teacher layer each student layer imitates).

Layers are numbered as in ``hidden_states`` of a HuggingFace encoder: position 0 is the embedding
output and position ``m`` (1-based) is the output of transformer block ``m``. Attention of student
block ``m`` is matched with attention of teacher block ``n`` where ``(m, n)`` is a pair of the map.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LayerMap:
    """An ordered list of ``(student_layer, teacher_layer)`` pairs, both 1-based.

    The embedding layers (position 0) are always paired with each other and are not listed.
    """

    pairs: tuple[tuple[int, int], ...]

    @property
    def student_layers(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.pairs)

    @property
    def teacher_layers(self) -> tuple[int, ...]:
        return tuple(t for _, t in self.pairs)

    def teacher_for(self, student_layer: int) -> int:
        for s, t in self.pairs:
            if s == student_layer:
                return t
        raise KeyError(f"student layer {student_layer} is not in the layer map {self.describe()}")

    def describe(self) -> str:
        return ",".join(f"{s}:{t}" for s, t in self.pairs)

    def validate(self, num_student_layers: int, num_teacher_layers: int) -> None:
        """Raise a ``ValueError`` naming the offending pair when a layer does not exist."""
        for s, t in self.pairs:
            if not 1 <= s <= num_student_layers:
                raise ValueError(
                    f"layer map pair {s}:{t} names student layer {s}, but the student has "
                    f"{num_student_layers} layers (valid: 1..{num_student_layers}). "
                    "Fix --layer_map or use --layer_map uniform."
                )
            if not 1 <= t <= num_teacher_layers:
                raise ValueError(
                    f"layer map pair {s}:{t} needs teacher layer {t}, but the teacher has only "
                    f"{num_teacher_layers} layers. Use a deeper teacher, fix --layer_map, or use "
                    "--layer_map uniform."
                )
        students = [s for s, _ in self.pairs]
        if len(set(students)) != len(students):
            raise ValueError(f"layer map {self.describe()} lists a student layer twice")


def uniform_layer_map(num_student_layers: int, num_teacher_layers: int) -> LayerMap:
    """TinyBERT's "uniform" strategy: student block m imitates teacher block ``floor(m·N/M)``.

    With N divisible by M this is block ``m·N/M`` (e.g. 4 ← 12: 3, 6, 9, 12), as in TinyBERT and the
    HRKD release; otherwise the floor keeps the last student block on the last teacher block.
    """
    if num_student_layers < 1:
        raise ValueError(f"the student needs at least one layer, got {num_student_layers}")
    if num_teacher_layers < num_student_layers:
        raise ValueError(
            f"uniform layer map needs a teacher at least as deep as the student: teacher has "
            f"{num_teacher_layers} layers, student {num_student_layers}. Give an explicit --layer_map."
        )
    pairs = tuple(
        (m, (m * num_teacher_layers) // num_student_layers) for m in range(1, num_student_layers + 1)
    )
    return LayerMap(pairs)


def parse_layer_map(spec: str | Sequence, num_student_layers: int, num_teacher_layers: int) -> LayerMap:
    """Build a :class:`LayerMap` from ``"uniform"``, ``"1:3,2:6"``, ``"[[1,3],[2,6]]"`` or a list of pairs.

    The result is validated against the two models' depths.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "uniform":
            layer_map = uniform_layer_map(num_student_layers, num_teacher_layers)
            layer_map.validate(num_student_layers, num_teacher_layers)
            return layer_map
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"--layer_map {spec!r} is not valid JSON: {err}") from err
        else:
            raw = []
            for item in text.split(","):
                parts = item.strip().split(":")
                if len(parts) != 2:
                    raise ValueError(
                        f"--layer_map item {item!r} is not 'student:teacher' (example: 1:3,2:6,3:9,4:12)"
                    )
                raw.append(parts)
    else:
        raw = list(spec)
    try:
        pairs = tuple((int(s), int(t)) for s, t in raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--layer_map {spec!r} must hold integer student:teacher pairs") from err
    if not pairs:
        raise ValueError("--layer_map is empty: give 'uniform' or at least one student:teacher pair")
    layer_map = LayerMap(tuple(sorted(pairs)))
    layer_map.validate(num_student_layers, num_teacher_layers)
    return layer_map
