"""An on-disk, memory-mapped cache of the frozen teacher's outputs (opt-in: ``--teacher_cache``).

The teacher is frozen and in eval mode, so its outputs for an example never change: one pass over the
training data stores what the losses read, and every step after it reads the cache instead of running
the teacher. Only what the losses need is stored:

* hidden states of the teacher positions the layer map uses (0 = embeddings), real tokens only:
  ``(H, len_i, F)`` per example;
* pre-softmax attention scores of the mapped teacher layers (attention loss only), real query and key
  tokens only: ``(A, heads, len_i, len_i)`` per example;
* logits ``(C,)`` (prediction loss only), always in float32 (they are tiny).

States and scores are stored in ``float16`` by default (``bfloat16`` or ``float32`` on request), each
kind in one flat file of example blocks, opened with ``numpy.memmap``: the cache is paged in by the OS,
not loaded. A step gathers its rows' blocks and pads them with zeros to the batch length; the losses
mask padded positions (``--mask_padding``, required), so the result equals the teacher's own outputs up
to the storage precision.

The cache lives in ``<root>/<key>/`` where the key hashes the cache format, the teacher's config and
weights, the tokenizer(s), the token ids, token types and domain ids of every example, the layer map
and what is stored: a change of any of them gives a new key, hence a new cache (never a stale one).
A cache counts only once its ``manifest.json`` exists, written last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from tqdm.auto import tqdm

from .assets import teacher_cache_root

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
STORAGE_DTYPES = {"float16": (np.float16, torch.float16), "bfloat16": (np.uint16, torch.bfloat16)}
STORAGE_DTYPES["float32"] = (np.float32, torch.float32)


def default_cache_root() -> Path:
    """``$HRKD_CACHE/teacher_outputs`` (default ``~/.cache/hrkd_trainer/teacher_outputs``), next to the
    data cache."""
    return teacher_cache_root()


@dataclass(frozen=True)
class CacheSpec:
    """What is cached: teacher hidden-state positions (0 = embeddings), teacher layers whose attention
    scores are kept, whether logits are kept, and the storage precision of states and scores."""

    hidden_layers: tuple[int, ...]
    attention_layers: tuple[int, ...]
    logits: bool
    dtype: str = "float16"

    def __post_init__(self):
        if self.dtype not in STORAGE_DTYPES:
            raise ValueError(f"teacher cache dtype must be one of {list(STORAGE_DTYPES)}, got {self.dtype!r}")


@dataclass
class CachedTeacherOutput:
    """The teacher side of a step read from the cache, shaped like the teacher's own outputs:
    ``hidden_states[t]`` ``(N, L, F)``, ``attention_scores[t]`` ``(N, heads, L, L)``, ``logits`` ``(N, C)``
    (zeros at padded positions)."""

    hidden_states: dict[int, torch.Tensor] = field(default_factory=dict)
    attention_scores: dict[int, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------- key
def _hash_tensor(digest, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of a model's config and every parameter and buffer (name, dtype, shape, bytes)."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        digest.update(config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        _hash_tensor(digest, name, tensor)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of a tokenizer's class, vocabulary and special tokens ("" for no tokenizer)."""
    if tokenizer is None:
        return ""
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items())
    payload = json.dumps([type(tokenizer).__name__, vocab, special, tokenizer.pad_token_id])
    return hashlib.sha256(payload.encode()).hexdigest()


def teacher_columns(dataset) -> tuple[str, ...]:
    """The columns the teacher reads: its token ids (``teacher_input_ids`` when it has its own
    tokenizer), token types, and the domain ids that pick its head."""
    prefix = "teacher_" if "teacher_input_ids" in dataset.column_names else ""
    names = (f"{prefix}input_ids", f"{prefix}token_type_ids", "domain_ids")
    return tuple(n for n in names if n in dataset.column_names)


def data_fingerprint(dataset) -> str:
    """sha256 of every example's teacher inputs, in dataset order (lengths included)."""
    digest = hashlib.sha256()
    for name in teacher_columns(dataset):
        values = dataset[name]
        digest.update(name.encode())
        if values and isinstance(values[0], list | tuple):
            lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
            digest.update(lengths.tobytes())
            digest.update(np.fromiter((t for v in values for t in v), dtype=np.int64).tobytes())
        else:
            digest.update(np.asarray(list(values), dtype=np.int64).tobytes())
    return digest.hexdigest()


def cache_key(teacher, dataset, spec: CacheSpec, tokenizers: Sequence = ()) -> str:
    """The cache's name: changes with the teacher, the tokenizer(s), the data, the layer map or
    ``spec`` (see the module docstring)."""
    parts = {
        "format": CACHE_FORMAT,
        "teacher": model_fingerprint(teacher),
        "tokenizers": [tokenizer_fingerprint(t) for t in tokenizers],
        "data": data_fingerprint(dataset),
        "spec": asdict(spec),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------- cache
def check_free_space(directory: Path, needed: int, margin: float = 1.1) -> None:
    """Refuse to start a cache that the disk cannot hold (with a 10 % margin), naming both sizes and
    the ways out."""
    free = shutil.disk_usage(directory).free
    if needed * margin > free:
        raise OSError(
            f"the teacher cache needs {needed / 1e9:.2f} GB in {directory}, but only {free / 1e9:.2f} GB are free: "
            "point --teacher_cache_dir (or $HRKD_CACHE) at a larger disk, store it in half precision with "
            "--teacher_cache_dtype bfloat16, or turn the cache off with --teacher_cache false"
        )


class TeacherOutputCache:
    """A built cache, memory-mapped read-only. Use :meth:`build_or_open` to get one."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{manifest_path} not found: {self.directory} is not a complete teacher cache"
            )
        with open(manifest_path) as handle:
            self.manifest = json.load(handle)
        self.spec = CacheSpec(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in self.manifest["spec"].items()}
        )
        self.lengths = np.asarray(self.manifest["lengths"], dtype=np.int64)
        self.hidden_size = self.manifest["hidden_size"]
        self.heads = self.manifest["heads"]
        self.num_labels = self.manifest["num_labels"]
        layout = self.layout(self.lengths, self.spec, self.hidden_size, self.heads)
        self.hidden_offsets, self.attention_offsets = layout["hidden_offsets"], layout["attention_offsets"]
        np_dtype, self.torch_dtype = STORAGE_DTYPES[self.spec.dtype]
        self.hidden = self._open("hidden.bin", np_dtype, layout["hidden_total"])
        self.attention = self._open("attention.bin", np_dtype, layout["attention_total"])
        self.logits = None
        if self.spec.logits:
            self.logits = np.memmap(
                self.directory / "logits.bin", np.float32, "r", shape=(len(self.lengths), self.num_labels)
            )

    def _open(self, name: str, dtype, total: int):
        # copy-on-write mapping: pages are shared and read lazily; nothing is ever written back
        return np.memmap(self.directory / name, dtype, "c", shape=(total,)) if total else None

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def nbytes(self) -> int:
        """Bytes on disk."""
        return sum(f.stat().st_size for f in self.directory.iterdir() if f.is_file())

    # ------------------------------------------------------------------ layout
    @staticmethod
    def layout(lengths: np.ndarray, spec: CacheSpec, hidden_size: int, heads: int) -> dict:
        """Element offsets of each example's block in the flat files (examples in dataset order)."""
        hidden_sizes = len(spec.hidden_layers) * lengths * hidden_size
        attention_sizes = len(spec.attention_layers) * heads * lengths * lengths
        hidden_offsets = np.concatenate([[0], np.cumsum(hidden_sizes)])
        attention_offsets = np.concatenate([[0], np.cumsum(attention_sizes)])
        return {
            "hidden_offsets": hidden_offsets,
            "attention_offsets": attention_offsets,
            "hidden_total": int(hidden_offsets[-1]),
            "attention_total": int(attention_offsets[-1]),
        }

    # ------------------------------------------------------------------ read
    def _block(self, storage, offsets, index: int, shape) -> torch.Tensor:
        block = np.asarray(storage[offsets[index] : offsets[index + 1]])
        if self.spec.dtype == "bfloat16":  # stored as raw 16-bit words
            return torch.from_numpy(block.view(np.int16)).view(torch.bfloat16).view(shape)
        return torch.from_numpy(block).view(shape)

    def lookup(self, indices: torch.Tensor, length: int, device: torch.device | str) -> CachedTeacherOutput:
        """The cached outputs of examples ``indices``, zero-padded to ``length`` tokens, on ``device``."""
        rows = indices.tolist()
        lengths = self.lengths[rows]
        if len(rows) and int(lengths.max()) > length:
            raise ValueError(
                f"the batch is {length} tokens long but cached example {rows[int(lengths.argmax())]} has "
                f"{int(lengths.max())}: the training data differs from the data the cache was built from"
            )
        spec, n = self.spec, len(rows)
        hidden = torch.zeros(len(spec.hidden_layers), n, length, self.hidden_size, dtype=self.torch_dtype)
        attention = torch.zeros(
            len(spec.attention_layers), n, self.heads, length, length, dtype=self.torch_dtype
        )
        for row, (index, size) in enumerate(zip(rows, lengths.tolist())):
            if spec.hidden_layers:
                shape = (len(spec.hidden_layers), size, self.hidden_size)
                hidden[:, row, :size] = self._block(self.hidden, self.hidden_offsets, index, shape)
            if spec.attention_layers:
                shape = (len(spec.attention_layers), self.heads, size, size)
                attention[:, row, :, :size, :size] = self._block(
                    self.attention, self.attention_offsets, index, shape
                )
        out = CachedTeacherOutput()
        hidden, attention = hidden.to(device, non_blocking=True), attention.to(device, non_blocking=True)
        out.hidden_states = {t: hidden[i] for i, t in enumerate(spec.hidden_layers)}
        out.attention_scores = {t: attention[i] for i, t in enumerate(spec.attention_layers)}
        if self.logits is not None:
            out.logits = torch.from_numpy(np.asarray(self.logits[rows])).to(device, non_blocking=True)
        return out

    # ------------------------------------------------------------------ build
    @classmethod
    def build_or_open(
        cls,
        root: str | os.PathLike,
        key: str,
        spec: CacheSpec,
        lengths: Sequence[int],
        run_teacher,
        batches: Sequence[Sequence[int]],
        hidden_size: int,
        heads: int,
        num_labels: int,
        process_index: int = 0,
        num_processes: int = 1,
        is_main_process: bool = True,
        wait_for_everyone=lambda: None,
        description: dict | None = None,
    ) -> TeacherOutputCache:
        """Open ``root/key`` if complete, else fill it with ``run_teacher(batch_indices)`` (which returns
        the teacher's outputs for those examples, padded to their longest) and open it.

        With several processes, each fills every ``num_processes``-th batch of the same preallocated
        files (the layout is known from the lengths), then the main process writes the manifest.

        Separate single-process runs that need the same cache at once (a study's workers) take turns
        under a file lock ``root/key.lock``: the first builds, the others wait and reuse it. Without
        it, a second builder would take the first one's files for an interrupted build, delete them
        and start over, and the first would train on rows not yet written again. (The processes of
        one multi-process launch share one build; two launches must not build one cache at once.)
        """
        if num_processes == 1:
            Path(root).mkdir(parents=True, exist_ok=True)
            with FileLock(str(Path(root) / f"{key}.lock")):
                return cls._build_or_open(root, key, spec, lengths, run_teacher, batches, hidden_size, heads,
                                          num_labels, 0, 1, is_main_process, wait_for_everyone, description)  # fmt: skip
        return cls._build_or_open(root, key, spec, lengths, run_teacher, batches, hidden_size, heads, num_labels,
                                  process_index, num_processes, is_main_process, wait_for_everyone, description)  # fmt: skip

    @classmethod
    def _build_or_open(cls, root, key, spec, lengths, run_teacher, batches, hidden_size, heads, num_labels,
                       process_index, num_processes, is_main_process, wait_for_everyone, description):  # fmt: skip
        directory = Path(root) / key
        if (directory / MANIFEST).is_file():
            cache = cls(directory)
            logger.info(
                "teacher cache: reusing %s (%d examples, %.1f MB)", directory, len(cache), cache.nbytes / 1e6
            )
            return cache
        lengths = np.asarray(lengths, dtype=np.int64)
        layout = cls.layout(lengths, spec, hidden_size, heads)
        np_dtype, torch_dtype = STORAGE_DTYPES[spec.dtype]
        files = {
            "hidden.bin": (np_dtype, layout["hidden_total"]),
            "attention.bin": (np_dtype, layout["attention_total"]),
        }
        if spec.logits:
            files["logits.bin"] = (np.float32, len(lengths) * num_labels)
        needed = sum(np.dtype(dtype).itemsize * total for dtype, total in files.values())
        if is_main_process:
            if directory.exists():  # an interrupted build: start over
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            check_free_space(directory, needed)
            logger.info(
                "teacher cache: building %s (%d examples, %.1f MB)", directory, len(lengths), needed / 1e6
            )
            for name, (dtype, total) in files.items():
                if total:
                    np.memmap(directory / name, dtype, "w+", shape=(total,)).flush()
        wait_for_everyone()
        maps = {name: np.memmap(directory / name, d, "r+", shape=(t,)) for name, (d, t) in files.items() if t}
        start = time.perf_counter()
        mine = batches[process_index::num_processes]
        progress = tqdm(mine, desc="teacher cache", unit="batch", disable=not is_main_process or not mine)
        for batch in progress:
            outputs = run_teacher(batch)
            for row, index in enumerate(batch):
                size = int(lengths[index])
                if spec.hidden_layers:
                    block = torch.stack([outputs.hidden_states[t][row, :size] for t in spec.hidden_layers])
                    cls._write(maps["hidden.bin"], layout["hidden_offsets"], index, block, torch_dtype)
                if spec.attention_layers:
                    block = torch.stack(
                        [outputs.attention_scores[t][row, :, :size, :size] for t in spec.attention_layers]
                    )
                    cls._write(maps["attention.bin"], layout["attention_offsets"], index, block, torch_dtype)
            if spec.logits:
                logits = outputs.logits.detach().float().cpu().numpy()
                flat = maps["logits.bin"]
                for row, index in enumerate(batch):
                    flat[index * num_labels : (index + 1) * num_labels] = logits[row]
        for memmap in maps.values():
            memmap.flush()
        wait_for_everyone()
        seconds = time.perf_counter() - start
        logger.info("teacher cache: %d examples in %.1f s (%.0f examples/s)", len(lengths), seconds,
                    len(lengths) / max(seconds, 1e-9))  # fmt: skip
        if is_main_process:
            manifest = {
                "format": CACHE_FORMAT,
                "key": key,
                "spec": asdict(spec),
                "lengths": lengths.tolist(),
                "hidden_size": hidden_size,
                "heads": heads,
                "num_labels": num_labels,
                "build_seconds": round(seconds, 3),
                **(description or {}),
            }
            partial = directory / (MANIFEST + ".partial")
            with open(partial, "w") as handle:
                json.dump(manifest, handle)
            os.replace(partial, directory / MANIFEST)
        wait_for_everyone()
        cache = cls(directory)
        logger.info(
            "teacher cache: built %s (%d examples, %.1f MB)", directory, len(cache), cache.nbytes / 1e6
        )
        return cache

    @staticmethod
    def _write(flat, offsets, index: int, block: torch.Tensor, torch_dtype) -> None:
        block = block.detach().to("cpu", torch_dtype).contiguous().reshape(-1)
        if torch_dtype == torch.bfloat16:  # numpy has no bfloat16: store the raw 16-bit words
            flat[offsets[index] : offsets[index + 1]] = block.view(torch.int16).numpy().view(np.uint16)
        else:
            flat[offsets[index] : offsets[index + 1]] = block.numpy()
