"""The fused remedies (lightning_sig.nn.folding): hand-computed values of ScaleAndPenalize, and the
folded forward + l2 term equal to the layer-by-layer definition (eq. 1, Sec. 2.2)."""
import pytest
import torch
import torch.nn.functional as F

from lightning_sig.nn.folding import ScaleAndPenalize, run_folded_penalized
from lightning_sig.nn.convnets import TABLE2, TABLE3, SigmoidConvNet, init_parameters
from tests.tolerances import EPS32, assert_close_scaled, reduction_ulps

pytestmark = pytest.mark.numerics  # .ci/run reruns these under each ATEN_CPU_CAPABILITY


def test_scale_and_penalize_hand_numbers():
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([[3.0]], requires_grad=True)
    sa, sb, penalty = ScaleAndPenalize.apply([2.0, 0.5], 0.1, a, b)
    assert sa.tolist() == [2.0, 4.0] and sb.tolist() == [[1.5]]
    # r/2·Σθ²: a few float32 roundings (two norms, squares, a sum, ·r/2) of exact small integers
    assert_close_scaled(penalty, 0.05 * (1 + 4 + 9), ulps=6, eps=EPS32, msg="penalty")
    # upstream gradients: 1 on every scaled coordinate, 3 on the penalty (e.g. a loss scale)
    torch.autograd.backward([sa, sb, penalty], [torch.ones(2), torch.ones(1, 1),
                                                torch.tensor(3.0)])
    # ∂/∂θ = s·1 + r·θ·3
    # float32 s·1 + r·θ·3: r = 0.1 and the products round (<= 3 roundings, and r itself)
    assert_close_scaled(a.grad, [2 + 0.3 * 1, 2 + 0.3 * 2], ulps=4, eps=EPS32, msg="a.grad")
    assert_close_scaled(b.grad, [[0.5 + 0.3 * 3]], ulps=4, eps=EPS32, msg="b.grad")


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
    # Fused vs layer by layer: the same function in two float32 orders. <= 14 affine layers
    # (Table 2) with dot products of <= 48 terms (3·3·3 conv taps, 3·4·4 flat features); the
    # backward doubles the chain and a weight gradient sums over 5·32·32 positions. Per tensor,
    # scaled by max|expected|: a near-zero gradient entry errs by the size of its summed terms
    # (relu, Table 3, on an AVX2 EPYC: 2.31e-7, 0.4 % of the entry, broke a bare atol of 1e-7).
    assert_close_scaled(logits, ref_logits, ulps=reduction_ulps(48, stages=14), msg="logits")
    # Σθ² of nonnegative terms, one float32 norm per tensor (<= 8·3·4·4 = 384 entries) against
    # a float64 sum: a relative bound.
    assert_close_scaled(penalty, ref_penalty, ulps=reduction_ulps(384, stages=2), msg="penalty")
    grad_ulps = reduction_ulps(48, stages=28) + reduction_ulps(5 * 32 * 32)
    for (name, p), got in zip(net.named_parameters(), fused):
        assert_close_scaled(got, p.grad, ulps=grad_ulps, msg=name)


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
    # as in test_fused_equals_layerwise: Table 3's 10 affine layers, dot products <= 48 terms
    assert_close_scaled(logits, ref_logits, ulps=reduction_ulps(48, stages=10), msg="logits")
    assert_close_scaled(penalty, ref_penalty, ulps=reduction_ulps(384, stages=2), msg="penalty")


def test_run_folded_penalized_without_parameters_returns_zero():
    out, penalty = run_folded_penalized([torch.nn.Flatten()], torch.ones(2, 3, 4), 0.5)
    assert out.shape == (2, 12) and penalty.item() == 0.0
