"""Golden values and properties of the distillation losses (eq. 1-5)."""

import math

import pytest
import torch

from hrkd_trainer.losses import (
    RowLoss,
    attention_mse_rows,
    hidden_mse_rows,
    hrkd_loss,
    multi_domain_kd_loss,
    per_domain_mean,
    soft_cross_entropy_rows,
)


def test_hidden_mse_golden_with_and_without_mask():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])  # (1, 3, 2)
    teacher = torch.tensor([[[0.0, 0.0], [3.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    rows = hidden_mse_rows(student, teacher, mask)
    # real tokens: (1 + 4) + (0 + 4) = 9 over 2 tokens x 2 features
    assert rows.total.tolist() == [9.0] and rows.count.tolist() == [4.0]
    rows = hidden_mse_rows(student, teacher, None)
    # all positions, padding included: 9 + 81 + 81 = 171 over 6 elements
    assert rows.total.tolist() == [171.0] and rows.count.tolist() == [6.0]


def test_hidden_mse_equals_torch_mse_without_padding():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    rows = hidden_mse_rows(s, t, torch.ones(3, 5))
    assert torch.allclose(rows.total.sum() / rows.count.sum(), torch.nn.functional.mse_loss(s, t))


def test_hidden_mse_shape_mismatch_is_clear():
    with pytest.raises(ValueError, match="hidden-state shapes differ"):
        hidden_mse_rows(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))


def test_attention_mse_golden_padded_keys_add_no_error():
    neg = torch.finfo(torch.float32).min
    # one example, one head, 2 real tokens + 1 padded
    student = torch.tensor([[[[1.0, 2.0, neg], [3.0, 1.0, neg], [5.0, 5.0, neg]]]])
    teacher = torch.tensor([[[[0.0, 2.0, neg], [1.0, 1.0, neg], [0.0, 0.0, neg]]]])
    mask = torch.tensor([[1, 1, 0]])
    rows = attention_mse_rows(student, teacher, mask, mask_queries=True)
    # real query rows, real keys: (1)^2 + 0 + (2)^2 + 0 = 5 over 1 head x 2 x 2
    assert rows.total.tolist() == [5.0] and rows.count.tolist() == [4.0]
    rows = attention_mse_rows(student, teacher, mask, mask_queries=False)
    # padded query row kept (as the release): + 25 + 25, masked keys zero; over 1 x 3 x 3
    assert rows.total.tolist() == [55.0] and rows.count.tolist() == [9.0]
    assert all(math.isfinite(v) for v in rows.total.tolist())


def test_attention_mse_is_mean_of_per_head_mse():
    torch.manual_seed(1)
    s, t = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    rows = attention_mse_rows(s, t, torch.ones(2, 4))
    per_head = torch.stack([torch.nn.functional.mse_loss(s[:, h], t[:, h]) for h in range(3)]).mean()
    assert torch.allclose(rows.total.sum() / rows.count.sum(), per_head)


def test_attention_head_mismatch_error_and_mean_reduction():
    s, t = torch.randn(1, 2, 3, 3), torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError, match="attention_head_reduction mean"):
        attention_mse_rows(s, t, torch.ones(1, 3))
    rows = attention_mse_rows(s, t, torch.ones(1, 3), head_reduction="mean")
    expected = torch.nn.functional.mse_loss(s.mean(1), t.mean(1))
    assert torch.allclose(rows.total / rows.count, expected)


def test_soft_cross_entropy_golden():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # p_T = (0.75, 0.25)
    rows = soft_cross_entropy_rows(student, teacher, temperature=1.0)
    assert rows.total.item() == pytest.approx(math.log(2.0))  # −Σ p_T log 0.5
    # temperature 2: p_T ∝ (sqrt 3, 1); student still uniform → still log 2
    assert soft_cross_entropy_rows(student, teacher, 2.0).total.item() == pytest.approx(math.log(2.0))
    student = torch.tensor([[math.log(3.0), 0.0]])
    # equal distributions: CE = entropy of (0.75, 0.25)
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert soft_cross_entropy_rows(student, teacher).total.item() == pytest.approx(entropy)
    with pytest.raises(ValueError):
        soft_cross_entropy_rows(student, teacher, 0.0)


def test_per_domain_mean_groups_rows():
    rows = RowLoss(torch.tensor([1.0, 3.0, 10.0, 2.0]), torch.tensor([1.0, 1.0, 2.0, 2.0]))
    out = per_domain_mean(rows, torch.tensor([0, 0, 2, 2]), 4)
    assert out.tolist() == [2.0, 0.0, 3.0, 0.0]


def test_multi_domain_kd_loss_eq5_and_eq17():
    embd = torch.tensor([1.0, 2.0])
    attn = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    hidn = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    pred = torch.tensor([4.0, 8.0])
    # eq. 5: Σ_d embd + Σ_m (attn + hidn) + γ pred = 3 + (1.5 + 1.5 + 3 + 3) + 0.5·12
    assert multi_domain_kd_loss(embd, attn, hidn, pred, pred_weight=0.5).item() == pytest.approx(18.0)
    ratios = torch.tensor([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    # eq. 17 with γ/D = 1/2: 0.25·1 + 0.75·2 + 0.5·1.5 + 0.5·1.5 + 1·3 + 0 + 0.5·12
    value = multi_domain_kd_loss(embd, attn, hidn, pred, pred_weight=0.5, ratios=ratios).item()
    assert value == pytest.approx(0.25 + 1.5 + 0.75 + 0.75 + 3.0 + 6.0)
    with pytest.raises(ValueError):
        multi_domain_kd_loss(embd, attn, hidn, pred, ratios=torch.ones(2, 2))


def test_hrkd_loss_eq17_golden_and_its_two_scales():
    embd = torch.tensor([1.0, 2.0])
    attn = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    hidn = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    pred = torch.tensor([4.0, 8.0])
    ratios = torch.tensor([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    # eq. 17 as written, γ = 1 → γ/D = 1/2: 0.25·1 + 0.75·2 + 0.5·1.5 + 0.5·1.5 + 1·3 + 0·3 + ½·12
    as_written = 0.25 + 1.5 + 0.75 + 0.75 + 3.0 + 6.0
    assert hrkd_loss(embd, attn, hidn, pred, ratios, 1.0, "sum").item() == pytest.approx(as_written)
    # 'mean' scale: D times eq. 17
    assert hrkd_loss(embd, attn, hidn, pred, ratios, 1.0, "mean").item() == pytest.approx(2 * as_written)
    # uniform ratios: 'mean' is eq. 5 exactly, 'sum' is eq. 5 / D
    uniform = torch.full((3, 2), 0.5)
    eq5 = multi_domain_kd_loss(embd, attn, hidn, pred, pred_weight=1.0)
    assert torch.equal(hrkd_loss(embd, attn, hidn, pred, uniform, 1.0, "mean"), eq5)
    assert hrkd_loss(embd, attn, hidn, pred, uniform, 1.0, "sum").item() == pytest.approx(eq5.item() / 2)
    with pytest.raises(ValueError, match="ratio_scale"):
        hrkd_loss(embd, attn, hidn, pred, uniform, 1.0, "max")


def test_loss_is_permutation_equivariant_over_domains():
    torch.manual_seed(3)
    embd, pred = torch.rand(3), torch.rand(3)
    attn, hidn = torch.rand(2, 3), torch.rand(2, 3)
    perm = torch.tensor([2, 0, 1])
    a = multi_domain_kd_loss(embd, attn, hidn, pred)
    b = multi_domain_kd_loss(embd[perm], attn[:, perm], hidn[:, perm], pred[perm])
    assert torch.allclose(a, b)


# ---------------------------------------------------------------------------- Hinton's hard + soft loss
def test_kd_kl_golden_and_its_t_squared_factor():
    from hrkd_trainer.losses import kd_kl_rows

    teacher, student = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    for t in (1.0, 2.0):
        p = [math.exp(2 / t) / (math.exp(2 / t) + 1), 1 / (math.exp(2 / t) + 1)]
        kl = sum(pi * math.log(pi / 0.5) for pi in p)  # against the uniform student
        assert kd_kl_rows(student, teacher, t).total.item() == pytest.approx(t * t * kl, rel=1e-6)
    assert kd_kl_rows(teacher, teacher, 0.5).total.abs().item() < 1e-6  # 0 when the student matches
    # the gradient is eq. 2's times t² (they differ by the teacher's entropy only)
    logits = torch.randn(4, 3, requires_grad=True)
    target = torch.randn(4, 3)
    kd_kl_rows(logits, target, 0.5).total.sum().backward()
    grad_kl, logits.grad = logits.grad.clone(), None
    soft_cross_entropy_rows(logits, target, 0.5).total.sum().backward()
    assert torch.allclose(grad_kl, 0.25 * logits.grad, atol=1e-6)


def test_hard_labels_count_only_labelled_rows_and_mix_with_alpha():
    from hrkd_trainer.losses import hard_label_rows, hard_soft_prediction

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    rows = hard_label_rows(logits, torch.tensor([0, 0, -100]))  # the last row is transfer text
    ce = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(2.0))]
    assert rows.total.tolist() == pytest.approx([*ce, 0.0]) and rows.count.tolist() == [1.0, 1.0, 0.0]
    soft, hard = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])
    assert hard_soft_prediction(soft, hard, 0.0).tolist() == [1.0, 2.0]
    assert hard_soft_prediction(soft, hard, 1.0).tolist() == [3.0, 0.0]
    assert hard_soft_prediction(soft, hard, 0.25).tolist() == [1.5, 1.5]
    with pytest.raises(ValueError, match="alpha"):
        hard_soft_prediction(soft, hard, 1.5)


def test_the_prediction_component_mixes_per_domain_over_the_labelled_rows():
    from types import SimpleNamespace

    from hrkd_trainer import HRKDConfig
    from hrkd_trainer.components import component_losses, component_rows
    from hrkd_trainer.losses import hard_label_rows, kd_kl_rows

    args = HRKDConfig(output_dir="x", distill_losses=["prediction"], prediction_loss="hinton",
                      hard_label_weight=0.3, temperature=2.0, report_to="none")  # fmt: skip
    student = SimpleNamespace(logits=torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [0.5, -0.5]]))
    teacher = SimpleNamespace(logits=torch.tensor([[3.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    labels, domains = torch.tensor([0, -100, 1, -100]), torch.tensor([0, 0, 1, 1])
    rows = component_rows(student, teacher, torch.ones(4, 2), args, [], labels)
    pred = component_losses(rows, domains, 2, 0, args.hard_label_weight)["pred"]
    soft = kd_kl_rows(student.logits, teacher.logits, 2.0).total
    hard = hard_label_rows(student.logits, labels).total
    expected = [0.3 * hard[0] + 0.7 * (soft[0] + soft[1]) / 2, 0.3 * hard[2] + 0.7 * (soft[2] + soft[3]) / 2]
    assert pred.tolist() == pytest.approx([e.item() for e in expected], rel=1e-6)
    with pytest.raises(ValueError, match="needs --prediction_loss hinton"):
        HRKDConfig(output_dir="x", hard_label_weight=0.5, report_to="none")
    with pytest.raises(ValueError, match="--hard_label_weight"):
        HRKDConfig(output_dir="x", prediction_loss="hinton", hard_label_weight=2.0, report_to="none")
