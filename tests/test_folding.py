"""The fused remedies (lightning_sig.nn.folding): hand-computed values of ScaleAndPenalize, and the
folded forward + l2 term equal to the layer-by-layer definition (eq. 1, Sec. 2.2)."""
import pytest
import torch
import torch.nn.functional as F

from lightning_sig.nn.folding import ScaleAndPenalize, run_folded_penalized
from lightning_sig.nn.convnets import TABLE2, TABLE3, SigmoidConvNet, init_parameters


def test_scale_and_penalize_hand_numbers():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([[3.0]], requires_grad=True)
    sa, sb, penalty = ScaleAndPenalize.apply([2.0, 0.5], 0.1, a, b)
    assert sa.tolist() == [2.0, 4.0] and sb.tolist() == [[1.5]]
    assert penalty.item() == pytest.approx(0.05 * (1 + 4 + 9), rel=1e-7)  # r/2·Σθ²
    # upstream gradients: 1 on every scaled coordinate, 3 on the penalty (e.g. a loss scale)
    torch.autograd.backward([sa, sb, penalty], [torch.ones(2), torch.ones(1, 1),
                                                torch.tensor(3.0)])
    # ∂/∂θ = s·1 + r·θ·3
    assert a.grad.tolist() == pytest.approx([2 + 0.3 * 1, 2 + 0.3 * 2], rel=1e-7)
    assert b.grad.item() == pytest.approx(0.5 + 0.3 * 3, rel=1e-7)


def test_scale_and_penalize_r_zero_gives_zero_penalty_and_pure_scaling():
    a = torch.tensor([1.0, -2.0], requires_grad=True)
    sa, penalty = ScaleAndPenalize.apply([4.0], 0.0, a)
    assert penalty.item() == 0.0 and sa.tolist() == [4.0, -8.0]
    (sa * torch.tensor([1.0, 10.0])).sum().backward()
    assert a.grad.tolist() == [4.0, 40.0]


def _reference(net, x, y, r):
    """CE + r/2·Σθ² with α applied layer by layer (ScaledActivation.forward), in float64 sums."""
    logits = net.classifier(net.features(x))
    params = [p for n, p in net.named_parameters() if p.requires_grad and "log_alpha" not in n]
    penalty = 0.5 * r * sum((p.double() ** 2).sum() for p in params)
    return logits, penalty


@pytest.mark.parametrize("family, alpha, r, spec", [
    ("tanh", 2.0, 0.01, TABLE3), ("arctan", 0.5, 0.1, TABLE3), ("relu", 1.0, 0.01, TABLE3),
    ("sigmoid", 3.0, 0.0, TABLE2), ("tanh", 1.0, 0.05, TABLE2), ("softsign", 4.0, 0.02, TABLE3)])
def test_fused_equals_layerwise(family, alpha, r, spec):
    torch.manual_seed(0)
    net = SigmoidConvNet(spec, family, alpha)
    init_parameters(net, "normal", 0.3)
    x, y = torch.rand(5, 3, 32, 32), torch.randint(0, 10, (5,))
    logits, penalty = net.forward_penalized(x, r)
    assert penalty.grad_fn is not None and "ScaleAndPenalize" in type(penalty.grad_fn).__name__
    (F.cross_entropy(logits, y) + penalty).backward()
    fused = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    ref_logits, ref_penalty = _reference(net, x, y, r)
    (F.cross_entropy(ref_logits, y) + ref_penalty.float()).backward()
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6)
    assert penalty.item() == pytest.approx(ref_penalty.item(), rel=1e-6, abs=1e-12)
    for got, want in zip(fused, (p.grad for p in net.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_plain_net_takes_no_extra_node():
    net = SigmoidConvNet(TABLE3, "tanh", 1.0)
    logits, penalty = net.forward_penalized(torch.rand(2, 3, 32, 32), 0.0)
    assert penalty.item() == 0.0 and penalty.grad_fn is None
    assert "ScaleAndPenalize" not in str(logits.grad_fn.next_functions)


@pytest.mark.parametrize("case", ["learnable_alpha", "frozen_bias"])
def test_fallbacks_equal_reference(case):
    """Learnable α (a tensor scale) and frozen parameters use the unfused path, same values."""
    torch.manual_seed(1)
    net = SigmoidConvNet(TABLE3, "tanh", 2.0, learnable_alpha=case == "learnable_alpha")
    init_parameters(net, "normal", 0.3)
    if case == "frozen_bias":
        net.features[0].bias.requires_grad_(False)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    logits, penalty = net.forward_penalized(x, 0.1)
    assert "ScaleAndPenalize" not in type(penalty.grad_fn).__name__
    ref_logits, ref_penalty = _reference(net, x, y, 0.1)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-6)
    assert penalty.item() == pytest.approx(ref_penalty.item(), rel=1e-6)


def test_run_folded_penalized_without_parameters_returns_zero():
    out, penalty = run_folded_penalized([torch.nn.Flatten()], torch.ones(2, 3, 4), 0.5)
    assert out.shape == (2, 12) and penalty.item() == 0.0
