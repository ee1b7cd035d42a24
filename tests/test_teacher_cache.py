"""The teacher-output cache: exact reads, training equal to the uncached run, invalidation."""

from __future__ import annotations

import json
import os
import types

import pytest
import torch

from hrkd_trainer import HRKDConfig, HRKDTrainer, MultiDomainModel, tokenize_multi_domain
from hrkd_trainer.teacher_cache import MANIFEST, CacheSpec, TeacherOutputCache, cache_key

from .conftest import DOMAINS, LABELS, common

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def make_trainer(tmp_path, name, teacher_dir, bert_student_dir, train, tokenizer, **kw):
    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    student = MultiDomainModel.from_encoder(bert_student_dir, DOMAINS, LABELS, seed=0, **NO_DROPOUT)
    values = dict(learning_rate=3e-3, max_steps=4, teacher_cache_dir=str(tmp_path / "cache"))
    values.update(kw)
    config = HRKDConfig(**common(tmp_path, name, **values))
    return HRKDTrainer(
        model=student, teacher_model=teacher, args=config, train_dataset=train, processing_class=tokenizer
    )


def one_batch(trainer):
    trainer.teacher_cache = trainer.teacher_cache or (
        trainer.build_teacher_cache() if trainer.args.teacher_cache else None
    )
    loader = trainer.get_train_dataloader()
    return next(iter(loader))


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-6), ("float16", 2e-3), ("bfloat16", 2e-2)])
def test_cached_outputs_equal_the_teachers_at_real_tokens(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path, dtype, tolerance
):
    train, _ = tokenized
    trainer = make_trainer(tmp_path, "c", teacher_dir, bert_student_dir, train, tokenizer,
                           teacher_cache=True, teacher_cache_dtype=dtype)  # fmt: skip
    batch = one_batch(trainer)
    assert "example_index" in batch
    live = trainer._teacher_forward(batch)
    cached = trainer._teacher_outputs(batch)
    mask = batch["attention_mask"].bool()
    spec = trainer.teacher_cache.spec
    assert spec.hidden_layers == (0, *trainer.layer_map.teacher_layers)
    assert spec.attention_layers == trainer.layer_map.teacher_layers and spec.logits
    for t in spec.hidden_layers:
        got = cached.hidden_states[t].float()
        assert torch.allclose(got[mask], live.hidden_states[t][mask], atol=tolerance * 10, rtol=tolerance)
        assert (got[~mask] == 0).all()  # padding is not stored
    keys = mask[:, None, None, :] & mask[:, None, :, None]
    for t in spec.attention_layers:
        got, want = cached.attention_scores[t].float(), live.attention_scores[t]
        assert torch.allclose(
            got.expand_as(want)[keys.expand_as(want)],
            want[keys.expand_as(want)],
            atol=tolerance * 10,
            rtol=tolerance,
        )
    assert torch.allclose(cached.logits, live.logits, atol=1e-6)
    # the step's loss (every component, per domain) is the teacher's up to the storage precision
    trainer.model.train()
    with torch.no_grad():
        torch.manual_seed(0)
        with_cache = trainer.compute_loss(trainer.model, batch)
        trainer.teacher_cache = None  # the same step with the live teacher
        torch.manual_seed(0)
        without = trainer.compute_loss(trainer.model, batch)
    assert with_cache.item() == pytest.approx(without.item(), rel=tolerance * 5)


def test_cached_training_follows_the_uncached_run_and_reuses_the_cache(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    train, _ = tokenized
    plain = make_trainer(tmp_path, "plain", teacher_dir, bert_student_dir, train, tokenizer)
    plain.train()
    cached = make_trainer(tmp_path, "cached", teacher_dir, bert_student_dir, train, tokenizer,
                          teacher_cache=True, teacher_cache_dtype="float32")  # fmt: skip
    cached.train()
    losses = [[e["loss"] for e in t.state.log_history if "loss" in e] for t in (plain, cached)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    directory = cached.teacher_cache.directory
    assert directory.parent == tmp_path / "cache" and (directory / MANIFEST).is_file()
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["examples"] == len(train) and len(manifest["lengths"]) == len(train)
    assert manifest["lengths"] == [len(x) for x in train["input_ids"]]  # real tokens only
    # a second run with the same teacher, data and map reuses the files instead of rebuilding them
    stamp = (directory / MANIFEST).stat().st_mtime_ns
    again = make_trainer(tmp_path, "again", teacher_dir, bert_student_dir, train, tokenizer,
                         teacher_cache=True, teacher_cache_dtype="float32")  # fmt: skip
    again.train()
    assert again.teacher_cache.directory == directory
    assert (directory / MANIFEST).stat().st_mtime_ns == stamp
    # the cache and its build lock
    assert sorted(os.listdir(tmp_path / "cache")) == [directory.name, f"{directory.name}.lock"]


def test_key_changes_with_teacher_tokenizer_data_and_layer_map(teacher_dir, tokenized, tokenizer, tmp_path):
    train, _ = tokenized
    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    spec = CacheSpec((0, 2, 4), (2, 4), True)
    base = cache_key(teacher, train, spec, [tokenizer])
    assert cache_key(teacher, train, spec, [tokenizer]) == base  # deterministic
    assert cache_key(teacher, train, CacheSpec((0, 1, 2), (1, 2), True), [tokenizer]) != base  # layer map
    assert cache_key(teacher, train, CacheSpec((0, 2, 4), (2, 4), True, "bfloat16"), [tokenizer]) != base
    changed = train.map(
        lambda row, i: {"input_ids": [*row["input_ids"][:-1], 4]} if i == 7 else {}, with_indices=True
    )
    assert cache_key(teacher, changed, spec, [tokenizer]) != base  # one token of one example
    relabelled = train.map(
        lambda row, i: {"domain_ids": (row["domain_ids"] + 1) % 3} if i == 0 else {}, with_indices=True
    )
    assert cache_key(teacher, relabelled, spec, [tokenizer]) != base  # the head the teacher uses
    other_tokenizer = type(tokenizer)(vocab={**tokenizer.get_vocab(), "extra": len(tokenizer)})
    assert cache_key(teacher, train, spec, [other_tokenizer]) != base
    with torch.no_grad():
        next(teacher.parameters()).view(-1)[0] += 1e-3
    assert cache_key(teacher, train, spec, [tokenizer]) != base  # one teacher weight


def test_an_interrupted_build_is_rebuilt_and_bad_settings_are_refused(
    teacher_dir, bert_student_dir, tokenized, tokenizer, tmp_path
):
    train, _ = tokenized
    trainer = make_trainer(tmp_path, "i", teacher_dir, bert_student_dir, train, tokenizer, teacher_cache=True)
    cache = trainer.build_teacher_cache()
    (cache.directory / MANIFEST).unlink()  # as if the build had been killed before its last write
    with pytest.raises(FileNotFoundError, match="not a complete teacher cache"):
        TeacherOutputCache(cache.directory)
    rebuilt = trainer.build_teacher_cache()
    assert rebuilt.directory == cache.directory and len(rebuilt) == len(train)
    with pytest.raises(ValueError, match="mask_padding"):
        HRKDConfig(**common(tmp_path, "bad", teacher_cache=True, mask_padding=False))
    with pytest.raises(ValueError, match="teacher_cache_dtype"):
        HRKDConfig(**common(tmp_path, "bad", teacher_cache=True, teacher_cache_dtype="int8"))
    # a batch longer than the cached example it names: the data is not the cache's
    with pytest.raises(ValueError, match="differs from the data the cache was built from"):
        rebuilt.lookup(torch.tensor([int(rebuilt.lengths.argmax())]), int(rebuilt.lengths.max()) - 1, "cpu")


def test_with_two_tokenizers_the_key_follows_the_teachers_ids(teacher_dir, tiny_data, tokenizer):
    from hrkd_trainer.teacher_cache import teacher_columns

    teacher = MultiDomainModel.from_pretrained(teacher_dir)
    other = type(tokenizer)(vocab={**tokenizer.get_vocab(), "extra": len(tokenizer)})
    data = tokenize_multi_domain(tiny_data["train"], tokenizer, 32, teacher_tokenizer=other)
    assert teacher_columns(data) == ("teacher_input_ids", "teacher_token_type_ids", "domain_ids")
    spec = CacheSpec((0, 2), (), True)
    base = cache_key(teacher, data, spec, [tokenizer, other])
    student_side = data.map(
        lambda row, i: {"input_ids": [2] * len(row["input_ids"])} if i == 0 else {}, with_indices=True
    )
    assert cache_key(teacher, student_side, spec, [tokenizer, other]) == base  # the teacher sees the same
    teacher_side = data.map(
        lambda row, i: {"teacher_input_ids": [2] * len(row["input_ids"])} if i == 0 else {}, with_indices=True
    )
    assert cache_key(teacher, teacher_side, spec, [tokenizer, other]) != base


def test_a_cache_the_disk_cannot_hold_is_refused_before_it_is_written(tmp_path):
    from hrkd_trainer.teacher_cache import check_free_space

    check_free_space(tmp_path, 1000)  # fits
    with pytest.raises(OSError, match=r"needs 1000000000.00 GB .* --teacher_cache_dtype"):
        check_free_space(tmp_path, 10**18)


def test_two_runs_needing_one_cache_at_once_build_it_once(tmp_path):
    """Two workers of a study reach the same cache together: the second waits under the lock and reuses
    the first's complete cache (before the lock it deleted the first's files as an interrupted build,
    and the first trained on rows not yet written again)."""
    import threading
    import time

    spec = CacheSpec(hidden_layers=(0,), attention_layers=(), logits=True, dtype="float32")
    lengths = [3, 5, 2, 4]
    calls = []

    def run_teacher(batch):
        calls.append(list(batch))
        time.sleep(0.05)  # slow enough for the two builds to overlap without the lock
        width = max(lengths[i] for i in batch)
        rows = torch.tensor([[float(i + 1)] for i in batch])
        hidden = rows.view(-1, 1, 1).expand(len(batch), width, 8).contiguous()
        return types.SimpleNamespace(
            hidden_states={0: hidden}, attention_scores={}, logits=rows.expand(-1, 2)
        )

    caches = []

    def build():
        caches.append(TeacherOutputCache.build_or_open(
            tmp_path, "k", spec, lengths, run_teacher, [[0, 1], [2, 3]], hidden_size=8, heads=2, num_labels=2,
        ))  # fmt: skip

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 2, "the teacher ran over the data once, not once per worker"
    for cache in caches:
        out = cache.lookup(torch.tensor([0, 1, 2, 3]), 5, "cpu")
        assert out.logits[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
        assert (
            out.hidden_states[0][1, :5, 0].tolist() == [2.0] * 5 and out.hidden_states[0][2, 2:, 0].sum() == 0
        )
